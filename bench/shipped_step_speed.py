"""Certified-training step time of a shipped text model on real sentences: a batch of SST-2
dev sentences, the model's own perturbation space, one step of ``robust_loss`` (k 0.5, eps 1)
forward and backward, no optimiser update. Where ``bench/train_step_speed.py`` times seeded
synthetic sets (8 random candidates per position), this times the sets the shipped models
train on (one substitute per character for ``char-enkey``, the counter-fitted table for the
word models).

    python bench/shipped_step_speed.py --model char-enkey --budget 1
    python bench/shipped_step_speed.py --model word-counterfitted-lstm --start 800

Sentences: the dev set sorted by length, ``--batch`` of them from position ``--start`` (the
longest are near 872). Prints the shapes and the least and median process CPU seconds of
``--repeats`` steps after a first one, one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from robusttext.text.io import load_text_model
from robusttext.train.batches import iterate_batches
from robusttext.train.data import load_training_examples
from robusttext.train.loss import robust_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="word-counterfitted-lstm")
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--method", default="ibp")
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--start", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_text_model(args.model)
    model, vocab, space = bundle.model, bundle.vocab, bundle.space
    examples = sorted(load_training_examples(args.data), key=lambda e: len(e.text))
    chosen = examples[args.start: args.start + args.batch]
    (_, batch, labels), = iterate_batches(chosen, space, vocab, [list(range(len(chosen)))])
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        loss, _ = robust_loss(model, batch, labels, args.budget, 0.5, args.method, 1.0)
        loss.backward()

    step()
    times = []
    for _ in range(args.repeats):
        began = time.process_time()
        step()
        times.append(time.process_time() - began)
    print(f"{args.model}: batch {tuple(batch.token_ids.shape)}, candidates "
          f"{batch.candidate_ids.shape[-1]}, budget {args.budget}, {args.method}; CPU s per "
          f"step: least {min(times):.3f}, median {statistics.median(times):.3f} "
          f"({torch.__version__}, 1 thread)")


if __name__ == "__main__":
    main()
