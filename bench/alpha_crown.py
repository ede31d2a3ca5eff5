"""alpha-CROWN beside CROWN (and the default method) on the shipped models: verified accuracy,
mean margin lower bound and process CPU time.

Text models (char-flips, word-wordnet, word-counterfitted) are certified on the SST-2 dev
sentences (``--limit`` first ones, in file order) at the budget of the space each was trained
for; fmnist-dm-small on the first ``--images`` Fashion-MNIST test images at its ``eps_eval``.
Every method bounds the same batches; a sentence (image) counts as verified when it is
classified correctly and every margin lower bound is > 0. Intermediate bounds are CROWN's for
both ``crown`` and ``alpha-crown`` (alpha-CROWN recomputes them: its time includes them).

    python bench/alpha_crown.py                                  # every shipped model
    python bench/alpha_crown.py --models char-flips --limit 200 --steps 20,50
    python bench/alpha_crown.py --models fmnist-dm-small --images 100
    python bench/alpha_crown.py --models transformer-synthetic --sequences 8 --length 16

``transformer-synthetic`` is a seeded, untrained Transformer body on ``bench/peer_speed.py``'s
synthetic substitution set (no shipped sequence model exists): its margins show what the
optimisation does on attention and its ReLU layers, its verified count means little. The BiLSTM
has no ReLU (sigmoid and tanh only), so alpha-CROWN returns CROWN's bound on it.

Prints one markdown row per model and method, with the command line, torch version, machine,
date and load average above the table. One thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from robusttext.bounds import LinfBall, TokenSubstitutionSet, compute_bounds, margin_matrix
from robusttext.bounds.specs import margin_lower_bounds
from robusttext.data import load_examples
from robusttext.text.bounds import body_problem, pick_method

TEXT_MODELS = ("char-flips", "word-wordnet", "word-counterfitted")
VISION_MODELS = ("fmnist-dm-small",)
DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"


def methods_of(steps: list[int], default: str) -> list[tuple[str, str, int]]:
    """(row name, engine method, alpha steps) for the default method, CROWN and alpha-CROWN."""
    rows = [(f"{default} (default)", default, 0), ("crown", "crown", 0)]
    return rows + [(f"alpha-crown {s} steps", "alpha-crown", s) for s in steps]


def text_rows(name: str, limit: int, batch_size: int, steps: list[int], data: Path):
    from robusttext.text import load_text_model

    bundle = load_text_model(name)
    model, vocab, space = bundle.model.eval(), bundle.vocab, bundle.space
    examples = load_examples(str(data))[:limit]
    budget = space.budget
    default = pick_method("auto", model.body)
    rows = methods_of(steps, default)
    totals = {row: {"verified": 0, "seconds": 0.0, "margins": []} for row, _, _ in rows}
    correct = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = space.encode([e.text for e in chunk], vocab)
        labels = torch.tensor([e.label for e in chunk])
        with torch.no_grad():
            right = model(batch.token_ids, batch.mask.float()).argmax(1) == labels
        correct += int(right.sum())
        table = model.embedding.weight
        for row, method, alpha_steps in rows:
            with torch.no_grad():
                subs = TokenSubstitutionSet(table, batch.token_ids, batch.candidate_ids,
                                            batch.candidate_mask, budget)
                C = margin_matrix(labels, 2).to(subs.center)
                began = time.process_time()
                problem = body_problem(model.body, subs, C, batch.mask.to(subs.center))
                lower = margin_lower_bounds(problem, method, alpha_steps)
                totals[row]["seconds"] += time.process_time() - began
            totals[row]["verified"] += int((right & (lower > 0).all(1)).sum())
            totals[row]["margins"].append(lower.min(1).values)
    return len(examples), correct, f"budget {budget}", rows, totals


def vision_rows(name: str, limit: int, batch_size: int, steps: list[int]):
    from robusttext.shipped import shipped_model_path
    from robusttext.vision.data import load_images
    from robusttext.vision.io import load_model

    model, _, meta = load_model(shipped_model_path(name, "vision"))
    eps = meta["training"]["config"]["eps_eval"]
    data = load_images("fashion-mnist", "test").subset(limit)
    rows = methods_of(steps, "crown-ibp")
    totals = {row: {"verified": 0, "seconds": 0.0, "margins": []} for row, _, _ in rows}
    correct = 0
    for start in range(0, len(data), batch_size):
        images = data.images[start:start + batch_size]
        labels = data.labels[start:start + batch_size]
        with torch.no_grad():
            right = model(images).argmax(1) == labels
            correct += int(right.sum())
            ball = LinfBall(images, eps, lower=0.0, upper=1.0)
            C = margin_matrix(labels, 10)
            for row, method, alpha_steps in rows:
                began = time.process_time()
                lower, _ = compute_bounds(model, ball, method, C=C, bound_upper=False,
                                          alpha_steps=alpha_steps)
                totals[row]["seconds"] += time.process_time() - began
                totals[row]["verified"] += int((right & (lower > 0).all(1)).sum())
                totals[row]["margins"].append(lower.min(1).values)
    return len(data), correct, f"eps {eps}", rows, totals


def transformer_rows(limit: int, length: int, steps: list[int]):
    """A seeded, untrained Transformer on peer_speed's synthetic substitution set: margins only
    (its "verified" count is that of an untrained model)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peer_speed import VOCAB, substitution_set

    from robusttext.text import TransformerClassifier

    torch.manual_seed(0)
    model = TransformerClassifier(VOCAB, embed_dim=64, hidden=64).eval()
    subs, mask, C = substitution_set(model.embedding, limit, length, 3, 0.05)
    with torch.no_grad():
        logits = model.body(subs.center, mask)
    labels = C[:, 0].argmax(1)  # margin_matrix's +1 column is the label
    right = logits.argmax(1) == labels
    rows = methods_of(steps, "crown-ibp")
    totals = {}
    for row, method, alpha_steps in rows:
        with torch.no_grad():
            began = time.process_time()
            lower = margin_lower_bounds(body_problem(model.body, subs, C, mask), method,
                                        alpha_steps)
            seconds = time.process_time() - began
        totals[row] = {"verified": int((right & (lower > 0).all(1)).sum()), "seconds": seconds,
                       "margins": [lower.min(1).values]}
    return limit, int(right.sum()), f"synthetic, length {length}, budget 3", rows, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(TEXT_MODELS + VISION_MODELS))
    parser.add_argument("--limit", type=int, default=872, help="SST-2 dev sentences")
    parser.add_argument("--images", type=int, default=100, help="Fashion-MNIST test images")
    parser.add_argument("--steps", default="20", help="alpha-CROWN steps, a comma list")
    parser.add_argument("--sequences", type=int, default=8,
                        help="synthetic sentences for transformer-synthetic")
    parser.add_argument("--length", type=int, default=16,
                        help="their length (every token real)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vision-batch", type=int, default=10)
    parser.add_argument("--data", default=str(DEV))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",")]
    print(f"`python {' '.join(sys.argv)}`: torch {torch.__version__}, {args.threads} "
          f"thread(s), {os.cpu_count()} CPUs ({platform.machine()}), "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average "
          f"{os.getloadavg()[0]:.1f}")
    print()
    print("| model | set | examples | clean | method | verified | mean margin lower bound "
          "(min over classes) | CPU s | CPU s per example |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        if name == "transformer-synthetic":
            n, correct, where, rows, totals = transformer_rows(args.sequences, args.length, steps)
        elif name in VISION_MODELS:
            n, correct, where, rows, totals = vision_rows(name, args.images, args.vision_batch,
                                                          steps)
        else:
            n, correct, where, rows, totals = text_rows(name, args.limit, args.batch_size,
                                                        steps, Path(args.data))
        for row, _, _ in rows:
            t = totals[row]
            margins = torch.cat(t["margins"])
            print(f"| {name} | {where} | {n} | {100 * correct / n:.2f} | {row} | "
                  f"{100 * t['verified'] / n:.2f} | {margins.mean().item():.4g} | "
                  f"{t['seconds']:.1f} | {t['seconds'] / n:.3f} |", flush=True)


if __name__ == "__main__":
    main()
