"""Save a word-level perturbation space restricted to the vocabulary of a training set.

The file (``PerturbationSpace.to_json``) needs neither WordNet nor the neighbour file at
training time, so a run on a machine without them (a GPU box) reads it with ``--space-file``.

    python examples/sentiment/save_space.py --sources wordnet --out runs/spaces/wordnet.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from robusttext.train import TrainConfig, build_space, load_training_examples
from robusttext.train.trainer import build_vocabulary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="../shared/data/sst2/train.tsv")
    parser.add_argument("--sources", nargs="+", default=["wordnet"])
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    config = TrainConfig(model="word-cnn", train=args.train, sources=args.sources,
                         min_count=args.min_count, budget=None)
    space = build_space(config)
    examples = load_training_examples(config.train)
    vocab = build_vocabulary(examples, space, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        restricted = space.restrict_to(vocab)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(restricted.to_json()))
    print(f"{args.out}: {space.describe()}, vocabulary {len(vocab)}")


if __name__ == "__main__":
    main()
