"""Certify the shipped Fashion-MNIST model (DM-small, CROWN-IBP-trained at eps 0.1) on the test set.

    python examples/vision/certify_shipped.py [--data DIR] [--eps 0.1] [--limit N] [--pgd-steps 20]

Prints clean accuracy, PGD-20 accuracy and IBP-verified accuracy on the 10,000 test images
(``--method ibp,crown-ibp`` adds CROWN-IBP, several times slower on a CPU), then the figures
recorded in the checkpoint when it was shipped, for the same methods, labelled with the engine
version they were measured with (its CROWN-IBP figure predates an engine fix: rerun with
``--method ibp,crown-ibp`` for the current one). To stay fast on a CPU, PGD attacks every
correctly classified image that no method certified and a 5% sample of the certified ones (a
cross-check of the certificates); ``--attack-verified-fraction 1`` attacks all. It runs
``robusttext vision certify`` with these defaults; any of its flags given here win.
"""

from __future__ import annotations

import sys

from robusttext.cli import build_parser, main
from robusttext.vision.cli import certify_names, format_metrics, resolve_checkpoint
from robusttext.vision.io import load_model

DEFAULTS = ["vision", "certify", "--model", "fmnist-dm-small", "--eps", "0.1",
            "--method", "ibp", "--attack-verified-fraction", "0.05", "--batch-size", "1000"]


def certify_shipped(flags: list[str]) -> int:
    """Run ``robusttext vision certify`` with DEFAULTS then ``flags``; after a full run at the
    recorded settings, print the figures recorded in the checkpoint, labelled with the engine
    they were measured with, for the methods this run computed."""
    argv = DEFAULTS + flags
    status = main(argv)
    args = build_parser(argv).parse_args(argv)
    name, _ = certify_names(args)
    _, _, meta = load_model(resolve_checkpoint(name))
    recorded = meta.get("metrics", {}).get("test_pgd20")
    if (status == 0 and recorded and args.limit is None and args.eps == recorded["eps"]
            and args.pgd_steps == 20):
        methods = [m.replace("-", "_") for m in args.method]
        shown = {k: v for k, v in recorded.items() if k in ("clean_accuracy", "pgd_accuracy")
                 or any(k == f"{m}_verified_accuracy" for m in methods)}
        note = meta.get("provenance", {}).get("engine_note", "no note of the engine")
        print("\nrecorded when the model was shipped (PGD-20, every correct image attacked); "
              f"{note}:")
        print(format_metrics(shown))
    return status


if __name__ == "__main__":
    sys.exit(certify_shipped(sys.argv[1:]))
