"""Counting and listing the sentences of a substitution set with a budget.

With ``c_p`` distinct candidates at position ``p`` and at most ``budget`` changed positions, the
set holds ``sum_{j <= budget} e_j(c_1, ..., c_L)`` sentences (``e_j``: elementary symmetric
polynomials; ``e_0 = 1`` is the original). Python integers keep the count exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations, product


def count_sentences(counts: Sequence[int], budget: int | None) -> int:
    """Number of sentences with at most ``budget`` positions changed (None: no limit)."""
    if budget is None:
        total = 1
        for c in counts:
            total *= 1 + c
        return total
    depth = min(budget, len(counts))
    e = [1] + [0] * depth
    for c in counts:
        if c:
            for j in range(depth, 0, -1):
                e[j] += e[j - 1] * c
    return sum(e)


def enumerate_sentences(
    original: Sequence[int], candidates: Sequence[Sequence[int]], budget: int | None
) -> Iterator[list[int]]:
    """Every sentence of the set: the original first, then one change, two changes, ...

    ``original``: token ids ``[length]``; ``candidates[p]``: the candidate ids of position p.
    """
    changeable = [p for p, cands in enumerate(candidates) if cands]
    depth = len(changeable) if budget is None else min(budget, len(changeable))
    yield list(original)
    for size in range(1, depth + 1):
        for positions in combinations(changeable, size):
            for choice in product(*(candidates[p] for p in positions)):
                sentence = list(original)
                for p, token in zip(positions, choice, strict=True):
                    sentence[p] = token
                yield sentence
