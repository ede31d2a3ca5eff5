"""Certify the shipped Fashion-MNIST model (DM-small, CROWN-IBP-trained at eps 0.1) on the test set.

    python examples/vision/certify_shipped.py [--data DIR] [--eps 0.1] [--limit N] [--pgd-steps 20]

Prints clean accuracy, PGD-20 accuracy and IBP-verified accuracy on the 10,000 test images
(``--methods ibp,crown-ibp`` adds CROWN-IBP, several times slower on a CPU), and the figures
recorded in the checkpoint when it was made. To stay fast on a CPU, PGD attacks every correctly
classified image that no method certified and a 5% sample of the certified ones (a cross-check
of the certificates); ``--attack-verified-fraction 1`` attacks all. It runs
``robusttext vision certify`` with these defaults; any of its flags given here win.
"""

from __future__ import annotations

import sys

from robusttext.cli import build_parser, main
from robusttext.vision.cli import format_metrics, resolve_checkpoint
from robusttext.vision.io import load_model

DEFAULTS = ["vision", "certify", "--checkpoint", "fmnist-dm-small", "--eps", "0.1",
            "--methods", "ibp", "--attack-verified-fraction", "0.05", "--batch-size", "1000"]


def certify_shipped(flags: list[str]) -> int:
    argv = DEFAULTS + flags
    status = main(argv)
    args = build_parser(argv).parse_args(argv)
    _, _, meta = load_model(resolve_checkpoint(args.checkpoint))
    recorded = meta.get("metrics", {}).get("test_pgd20")
    if (status == 0 and recorded and args.limit is None and args.eps == recorded["eps"]
            and args.pgd_steps == 20):
        print("\nrecorded when shipped (PGD-20, every correct image attacked):")
        print(format_metrics({k: v for k, v in recorded.items() if k.endswith("accuracy")}))
    return status


if __name__ == "__main__":
    sys.exit(certify_shipped(sys.argv[1:]))
