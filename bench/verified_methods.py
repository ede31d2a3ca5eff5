"""Verified accuracy of saved text models on the SST-2 dev set, one line per bound method.

    python bench/verified_methods.py runs/gpu/char-enkey-b3 --methods ibp budget-ibp
    python bench/verified_methods.py char-flips --budgets 1 2 3 any

Each model is evaluated in its own perturbation space (the one its checkpoint carries) at the
given budgets (``any``: every position may change). Prints clean accuracy, verified accuracy per
budget and the seconds the evaluation took, on one thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from robusttext.data import load_examples
from robusttext.methods import TEXT_METHODS
from robusttext.text import load_text_model
from robusttext.train.evaluate import evaluate

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="checkpoint folders or shipped model names")
    parser.add_argument("--methods", nargs="+", default=["ibp", "budget-ibp"],
                        choices=TEXT_METHODS)
    parser.add_argument("--budgets", nargs="+", default=["1", "2", "3", "any"])
    parser.add_argument("--data", default=str(DEV))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [None if b == "any" else int(b) for b in args.budgets]
    examples = load_examples(args.data)
    print(f"# {len(examples)} sentences from {args.data}; torch {torch.__version__}, "
          f"{platform.machine()}, {args.threads} thread(s)")
    print("| model | method | clean | " + " | ".join(f"verified {b}" for b in args.budgets)
          + " | seconds |")
    print("|---|---|---|" + "---|" * len(budgets) + "---|")
    for name in args.models:
        bundle = load_text_model(name)
        for method in args.methods:
            start = time.perf_counter()
            result = evaluate(bundle.model, bundle.vocab, bundle.space, examples,
                              budgets=budgets, method=method)
            seconds = time.perf_counter() - start
            verified = [100 * result["verified_accuracy"][str(b)] for b in budgets]
            print(f"| {name} | {method} | {100 * result['clean_accuracy']:.2f} | "
                  + " | ".join(f"{v:.2f}" for v in verified) + f" | {seconds:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
