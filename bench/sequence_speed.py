"""Bound cost on the BiLSTM and Transformer sentiment models, as a ratio to a forward pass.

For each model it times, at batch 32 and sentences of 20 tokens (SST-2 dev sentences average
19.5 words): a forward pass ``model(ids, mask)``, IBP and CROWN-IBP lower bounds on the
2-class margin over a budget-3 substitution set (``margin_lower_bounds`` of ``body_problem``,
as certification and training call it: the LSTM is unrolled over the batch length), and one
certified-training step (IBP bound + clean forward + backward). Medians of ``--repeats`` runs
after a warm-up (tracing).

The substitution set is synthetic and seeded: 8 candidate slots per position, each real with
probability 0.25 (about 2 candidates per token; counter-fitted neighbours give 1.8 on SST-2).

    python bench/sequence_speed.py          # 1 thread: the table of bench/sequence_results.md
    python bench/sequence_speed.py --threads 2 --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from robusttext.bounds import SubstitutionSet, margin_matrix
from robusttext.bounds.specs import margin_lower_bounds
from robusttext.text import BiLSTM, TransformerClassifier
from robusttext.text.bounds import body_problem

VOCAB = 15_000
CANDIDATES = 8


def models(length: int) -> dict[str, torch.nn.Module]:
    """The benchmarked models (sizes of the example configurations: 64-d embeddings)."""
    torch.manual_seed(0)
    return {
        "lstm (max_length 64)": BiLSTM(VOCAB, embed_dim=64, hidden=64, max_length=64),
        f"lstm (max_length {length})": BiLSTM(VOCAB, embed_dim=64, hidden=64, max_length=length),
        "transformer (CenterNorm)": TransformerClassifier(VOCAB, embed_dim=64, hidden=64),
        "transformer (LayerNorm)": TransformerClassifier(VOCAB, embed_dim=64, hidden=64,
                                                         norm="layernorm"),
    }


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: tracing, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model: torch.nn.Module, batch: int, length: int, budget: int,
            repeats: int) -> dict[str, float]:
    """Seconds per call of each measured operation."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (batch, length), generator=generator)
    mask = torch.ones(batch, length)
    cand_ids = torch.randint(1, VOCAB, (batch, length, CANDIDATES), generator=generator)
    cand_mask = torch.rand(batch, length, CANDIDATES, generator=generator) < 0.25
    labels = torch.randint(0, 2, (batch,), generator=generator)
    C = margin_matrix(labels, 2)
    emb = model.embedding

    def bound(method):
        subs = SubstitutionSet(emb(ids), emb(cand_ids), cand_mask, budget)
        return margin_lower_bounds(body_problem(model.body, subs, C, mask), method)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    def train_step():
        model.zero_grad()
        loss = bound("ibp").mean() + model(ids, mask).mean()
        loss.backward()

    model.eval()
    return {
        "forward": timed(no_grad(lambda: model(ids, mask)), repeats),
        "ibp": timed(no_grad(lambda: bound("ibp")), repeats),
        "crown-ibp": timed(no_grad(lambda: bound("crown-ibp")), repeats),
        "train step": timed(train_step, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
          f"{args.length} tokens, budget {args.budget}, {CANDIDATES} candidate slots")
    print("| model | forward ms | IBP ms | IBP x | CROWN-IBP ms | CROWN-IBP x | "
          "IBP train step ms |")
    print("|---|---|---|---|---|---|---|")
    for name, model in models(args.length).items():
        t = measure(model, args.batch, args.length, args.budget, args.repeats)
        f = t["forward"]
        print(f"| {name} | {1e3 * f:.1f} | {1e3 * t['ibp']:.0f} | {t['ibp'] / f:.1f} | "
              f"{1e3 * t['crown-ibp']:.0f} | {t['crown-ibp'] / f:.1f} | "
              f"{1e3 * t['train step']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
