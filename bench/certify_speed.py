"""Certification speed: the 872 SST-2 dev sentences with a character CNN at budgets 1, 2, 3.

Uses the shipped ``char-flips`` model when it is installed, else a randomly initialised CharCNN
of the issue-5 size (150-d embeddings, 100 filters of width 5) over the characters of the dev
set, with one-character QWERTY flips (the project's keyboard map). Prints the time spent on the
bounds, the attack and the enumeration separately, with the accuracies.

    python bench/certify_speed.py                          # IBP, exact, budgets 1,2,3
    python bench/certify_speed.py --threads 2              # torch's default on this machine
    python bench/certify_speed.py --method crown-ibp --enumerate-limit 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from robusttext.certify import certify
from robusttext.certify.report import format_table
from robusttext.data import load_examples
from robusttext.perturb import CharacterFlips, PerturbationSpace, Vocabulary
from robusttext.text import CharCNN, load_text_model, shipped_model_path

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"


def model_for(examples, use_shipped: bool):
    """(model, vocab, space, description)."""
    if use_shipped and shipped_model_path("char-flips").is_dir():
        bundle = load_text_model("char-flips")
        return bundle.model, bundle.vocab, bundle.space, "shipped char-flips model"
    torch.manual_seed(0)
    space = PerturbationSpace(CharacterFlips("qwerty"), budget=3, level="char")
    chars = sorted({c for e in examples for c in space.split(e.text)[0]}
                   | {c for v in space.sources[0].keyboard.values() for c in v})
    vocab = Vocabulary(chars)
    model = CharCNN(len(vocab), embed_dim=150, filters=100, width=5).eval()
    return model, vocab, space, "randomly initialised CharCNN (150-d, 100 filters of width 5)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEV))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--budgets", default="1,2,3")
    parser.add_argument("--method", default="ibp")
    parser.add_argument("--relaxation", default="exact")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--enumerate-limit", type=int, default=0,
                        help="enumerate sets of at most N sentences (default 0: off)")
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--proposals", type=int, default=16)
    parser.add_argument("--random", action="store_true",
                        help="use a random CharCNN even when the shipped model is installed")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine extra threads "
                             "wait on each other)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    examples = load_examples(args.data, limit=args.limit)
    model, vocab, space, description = model_for(examples, not args.random)
    budgets = [int(b) for b in args.budgets.split(",")]
    start = time.perf_counter()
    result = certify(model, vocab, space, examples, budgets=budgets, method=args.method,
                     relaxation=args.relaxation, batch_size=args.batch_size,
                     enumerate_limit=args.enumerate_limit, beam_width=args.beam_width,
                     proposals=args.proposals, device=args.device, progress=None)
    total = time.perf_counter() - start
    bounds = sum(s.bounds_seconds for s in result.summaries)
    attack = result.summaries[-1].attack_seconds  # one search serves every budget
    enumeration = sum(s.exhaustive_seconds for s in result.summaries)
    print(f"{description}; {len(examples)} sentences from {args.data}")
    where = (torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else
             f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
             f"({platform.processor() or platform.machine()})")
    print(f"{space.describe()}; {args.method}, {args.relaxation}; batch {args.batch_size}; "
          f"torch {torch.__version__}, {args.device}: {where}")
    print(format_table(result))
    print(f"bounds, all budgets: {bounds:.1f} s; attack (beam {args.beam_width}, "
          f"{args.proposals} proposals, up to budget {max(budgets)}): {attack:.1f} s; "
          f"enumeration: {enumeration:.1f} s; total wall time {total:.1f} s "
          f"(setup {result.settings['setup_seconds']:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": description, "n": len(examples), "bounds_seconds": bounds,
            "attack_seconds": attack, "enumeration_seconds": enumeration, "total": total,
            "summary": result.to_json()["summary"]}, indent=1))


if __name__ == "__main__":
    main()
