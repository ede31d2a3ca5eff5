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


def enumerate_edits(
    candidates: Sequence[Sequence[int]], budget: int | None
) -> Iterator[tuple[tuple[int, int], ...]]:
    """Every rewrite of the set as its edits ``((position, token id), ...)``: no edit first (the
    original), then one change, two changes, ... up to ``budget`` (None: no limit); positions
    in increasing order. ``candidates[p]``: the candidate ids of position p.

    The one enumerator of robusttext: ``enumerate_sentences`` and the exhaustive checks of
    certify and training list their rewrites through it."""
    changeable = [p for p, cands in enumerate(candidates) if cands]
    depth = len(changeable) if budget is None else min(budget, len(changeable))
    for size in range(depth + 1):
        for positions in combinations(changeable, size):
            for tokens in product(*(candidates[p] for p in positions)):
                yield tuple(zip(positions, tokens))


def enumerate_sentences(
    original: Sequence[int], candidates: Sequence[Sequence[int]], budget: int | None
) -> Iterator[list[int]]:
    """Every sentence of the set: the original first, then one change, two changes, ...

    ``original``: token ids ``[length]``; ``candidates[p]``: the candidate ids of position p.
    """
    for edits in enumerate_edits(candidates, budget):
        sentence = list(original)
        for p, token in edits:
            sentence[p] = token
        yield sentence
