"""Batches of encoded sentences, grouped by length so that little padding is bounded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from robusttext.perturb import EncodedBatch, PerturbationSpace, Vocabulary
from robusttext.train.data import Example


def token_lengths(examples: Sequence[Example], space: PerturbationSpace) -> list[int]:
    """Number of tokens of each sentence at the space's level."""
    return [len(space.split(e.text)[0]) for e in examples]


def batch_order(lengths: Sequence[int], batch_size: int, shuffle: bool,
                seed: int = 0, pool: int = 50) -> list[list[int]]:
    """Index lists of the batches. Shuffled: a seeded permutation cut into pools of
    ``pool * batch_size``, each sorted by length and cut into batches, the batches shuffled.
    Not shuffled: in order."""
    n = len(lengths)
    if not shuffle:
        return [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    batches = []
    step = pool * batch_size
    for start in range(0, n, step):
        chunk = sorted(order[start : start + step], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def iterate_batches(
    examples: Sequence[Example],
    space: PerturbationSpace,
    vocab: Vocabulary,
    order: list[list[int]],
    device: torch.device | str = "cpu",
) -> Iterator[tuple[list[int], EncodedBatch, torch.Tensor]]:
    """``(indices, encoded batch, labels [batch] long)`` on ``device`` for each index list."""
    for indices in order:
        chosen = [examples[i] for i in indices]
        batch = space.encode([e.text for e in chosen], vocab).to(device)
        labels = torch.tensor([e.label for e in chosen], dtype=torch.long, device=device)
        yield indices, batch, labels
