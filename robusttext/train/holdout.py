"""A validation split held out from the training phrases, for choosing the epoch and settings.

SST-2's training set holds the phrases of a parse tree as well as its sentence: most training
examples are sub-phrases of longer ones, so a random split of the phrases would leak (a held-out
sentence would have its halves, with their labels, in training). ``holdout_split`` therefore
holds out whole *root* phrases, those contained in no other training phrase (the sentences):

1. a phrase is a root when its token sequence is no contiguous part of another phrase's;
2. ``fraction`` of the roots, drawn with ``seed``, form the validation set;
3. training keeps every phrase that is part of a root left in training (or is one), and drops
   the others, which only a held-out root contains.

A sub-phrase shared by a held-out root and a training root (a common phrase such as "the
film") stays in training: it is training data of the other sentence, as it would be for any dev
sentence. Token sequences are compared by their tokens (``split``); ``n``-grams are hashed
(Python's 64-bit tuple hash), so a collision could at most keep or drop one phrase wrongly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from robusttext.errors import RobustTextError
from robusttext.train.data import Example


@dataclass
class HoldoutSplit:
    """``train`` and ``validation`` examples; ``dropped``: phrases found only inside held-out
    roots (in neither set); ``roots``: how many root phrases there were."""

    train: list[Example]
    validation: list[Example]
    dropped: int
    roots: int

    def describe(self) -> str:
        return (f"validation split: {len(self.validation)} held-out root phrases of "
                f"{self.roots}; {len(self.train)} training phrases kept, {self.dropped} "
                "sub-phrases of held-out roots dropped")


def _spans(tokens: tuple[str, ...], proper: bool):
    """Hashes of the contiguous token spans of ``tokens`` (the whole one too unless
    ``proper``)."""
    n = len(tokens)
    for i in range(n):
        for j in range(i + 1, n + 1):
            if proper and i == 0 and j == n:
                continue
            yield hash(tokens[i:j])


def holdout_split(examples: Sequence[Example], fraction: float, seed: int,
                  split: Callable[[str], list[str]]) -> HoldoutSplit:
    """Hold out ``fraction`` of the root phrases of ``examples`` (see the module docstring)."""
    if not 0.0 < fraction < 1.0:
        raise RobustTextError(f"validation_fraction must lie in (0, 1), got {fraction}")
    tokens = [tuple(split(e.text)) for e in examples]
    inside: set[int] = set()
    for t in tokens:
        inside.update(_spans(t, proper=True))
    roots = sorted({t for t in tokens if hash(t) not in inside})
    held = set(random.Random(seed).sample(roots, max(1, round(fraction * len(roots)))))
    if len(held) == len(roots):
        raise RobustTextError("the validation split would hold out every training sentence")
    kept: set[int] = set()
    for t in roots:
        if t not in held:
            kept.update(_spans(t, proper=False))
    train, validation, seen_held, dropped = [], [], set(), 0
    for example, t in zip(examples, tokens):
        if t in held:
            if t not in seen_held:  # one copy of each held-out sentence
                validation.append(example)
                seen_held.add(t)
            else:
                dropped += 1
        elif hash(t) in kept:
            train.append(example)
        else:
            dropped += 1
    return HoldoutSplit(train, validation, dropped, len(roots))


__all__ = ["HoldoutSplit", "holdout_split"]
