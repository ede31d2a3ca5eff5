"""Certify the shipped Fashion-MNIST model (DM-small, CROWN-IBP-trained at eps 0.1) on the test set.

    python examples/vision/certify_shipped.py [--data DIR] [--eps 0.1] [--limit N] [--pgd-steps 20]

Prints clean accuracy, PGD-20 accuracy and IBP-verified accuracy on the 10,000 test images
(``--methods ibp,crown-ibp`` adds CROWN-IBP, several times slower on a CPU), and the figures
recorded in the checkpoint when it was made. To stay fast on a CPU, PGD attacks every correctly
classified image that no method certified and a 5% sample of the certified ones (a cross-check
of the certificates); ``--attack-verified-fraction 1`` attacks all. The same as
``robusttext vision certify --checkpoint fmnist-dm-small --methods ibp
--attack-verified-fraction 0.05``.
"""

from __future__ import annotations

import argparse
import time

import torch

from robusttext.vision.cli import format_metrics
from robusttext.vision.data import load_images
from robusttext.vision.evaluate import evaluate
from robusttext.vision.io import SHIPPED_MODELS, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist", help="IDX folder or hub id")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--limit", type=int, help="only the first N test images")
    parser.add_argument("--pgd-steps", type=int, default=20, help="0 skips the attack")
    parser.add_argument(
        "--methods", default="ibp", help="bound methods, e.g. ibp,crown-ibp (CROWN-IBP is slower)"
    )
    parser.add_argument(
        "--attack-verified-fraction",
        type=float,
        default=0.05,
        help="PGD attacks every correct uncertified image and this fraction of certified ones",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    torch.manual_seed(0)
    model, _, meta = load_model(SHIPPED_MODELS / "fmnist-dm-small", expected="dm-small")
    test = load_images(args.data, "test").subset(args.limit)
    started = time.time()
    result = evaluate(
        model,
        test,
        args.eps,
        pgd_steps=args.pgd_steps,
        methods=tuple(m for m in args.methods.split(",") if m),
        batch_size=args.batch_size,
        attack_verified_fraction=args.attack_verified_fraction,
    )
    metrics = result.metrics()
    metrics["seconds"] = round(time.time() - started, 1)
    print(format_metrics(metrics))
    recorded = meta.get("metrics", {}).get("test_pgd20")
    if recorded and args.limit is None and args.eps == recorded["eps"] and args.pgd_steps == 20:
        print("\nrecorded when shipped (PGD-20, every correct image attacked):")
        print(format_metrics({k: v for k, v in recorded.items() if k.endswith("accuracy")}))


if __name__ == "__main__":
    main()
