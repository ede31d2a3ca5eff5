"""The exact robust accuracy of shipped text models at one character flip, computed from strings.

Independent of the perturbation space's own enumeration: every sentence is rewritten by indexing
its string (each letter replaced in turn by each of its substitutes in the model's keyboard map),
each rewrite is tokenised and looked up in the model's vocabulary as a user's input would be, and
the model is run on all of them. A sentence counts as robust when it is classified correctly and
no rewrite changes that. The figure must equal the ``exhaustive`` column of
``robusttext certify --budget 1`` for a model whose space is the one-flip set.

    python bench/one_flip_strings.py --model word-enkey word-flips char-enkey \
        --data ../shared/data/sst2/dev.tsv
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from robusttext.perturb import tokenize
from robusttext.text import load_text_model
from robusttext.train import load_training_examples


def one_flip_rewrites(sentence: str, keyboard: dict[str, tuple[str, ...]]) -> list[str]:
    """``sentence`` first, then each string one substitution away from it."""
    rewrites = [sentence]
    for i, char in enumerate(sentence):
        rewrites.extend(sentence[:i] + other + sentence[i + 1:] for other in keyboard.get(char, ()))
    return rewrites


@torch.no_grad()
def robust_accuracy(name: str, data: str) -> tuple[float, float, int]:
    """(clean accuracy, exact robust accuracy at one flip, rewrites run) of model ``name``."""
    bundle = load_text_model(name)
    (source,) = bundle.space.sources
    char_level = bundle.space.level == "char"
    robust = correct = runs = 0
    examples = load_training_examples(data)
    for example in tqdm(examples, desc=name, leave=False, disable=None):
        text = " ".join(tokenize(example.text, bundle.space.tokenizer))
        rewrites = one_flip_rewrites(text, source.keyboard)
        tokens = [list(r) if char_level else r.split(" ") for r in rewrites]
        width = max(map(len, tokens))
        ids = torch.zeros(len(tokens), width, dtype=torch.long)
        mask = torch.zeros(len(tokens), width)
        for row, words in enumerate(tokens):
            ids[row, : len(words)] = torch.tensor(bundle.vocab.ids(words))
            mask[row, : len(words)] = 1.0
        predictions = bundle.model(ids, mask).argmax(-1)
        runs += len(rewrites)
        correct += int(predictions[0] == example.label)
        robust += int(bool((predictions == example.label).all()))
    return correct / len(examples), robust / len(examples), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    for name in args.model:
        clean, robust, runs = robust_accuracy(name, args.data)
        print(f"{name}: clean {100 * clean:.2f}, exact robust at one flip {100 * robust:.2f} "
              f"({runs} strings run)")


if __name__ == "__main__":
    main()
