"""The tensors of a batch of sentences and their substitution candidates."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch


@dataclass
class EncodedBatch:
    """Token and candidate ids of a batch, padded with the vocabulary's ``pad_id``.

    token_ids:      ``[batch, length]`` long.
    mask:           ``[batch, length]`` float32, 1 on real tokens, 0 on padding.
    candidate_ids:  ``[batch, length, candidates]`` long; ``candidates`` is the largest number
                    of candidates at any position of the batch (at least 1).
    candidate_mask: ``[batch, length, candidates]`` bool, True on real candidates.
    tokens:         the token strings of each sentence (characters at the char level).
    """

    token_ids: torch.Tensor
    mask: torch.Tensor
    candidate_ids: torch.Tensor
    candidate_mask: torch.Tensor
    tokens: list[list[str]]

    @classmethod
    def from_rows(cls, rows: list[list[tuple[int, list[int]]]], pad: int,
                  tokens: list[list[str]]) -> EncodedBatch:
        """Pad ``rows`` (per sentence, per position: ``(token_id, candidate_ids)``) with ``pad``."""
        length = max(len(r) for r in rows)
        width = max(1, max(len(c) for row in rows for _, c in row))
        token_ids = np.full((len(rows), length), pad, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.float32)
        candidate_ids = np.full((len(rows), length, width), pad, dtype=np.int64)
        candidate_mask = np.zeros((len(rows), length, width), dtype=bool)
        for b, row in enumerate(rows):
            token_ids[b, : len(row)] = [token_id for token_id, _ in row]
            mask[b, : len(row)] = 1.0
            for p, (_, cands) in enumerate(row):
                if cands:
                    candidate_ids[b, p, : len(cands)] = cands
                    candidate_mask[b, p, : len(cands)] = True
        return cls(token_ids=torch.from_numpy(token_ids), mask=torch.from_numpy(mask),
                   candidate_ids=torch.from_numpy(candidate_ids),
                   candidate_mask=torch.from_numpy(candidate_mask), tokens=tokens)

    def to(self, device: torch.device | str) -> EncodedBatch:
        return replace(
            self,
            token_ids=self.token_ids.to(device),
            mask=self.mask.to(device),
            candidate_ids=self.candidate_ids.to(device),
            candidate_mask=self.candidate_mask.to(device),
        )

    def __len__(self) -> int:
        return self.token_ids.shape[0]

    @property
    def num_candidates(self) -> torch.Tensor:
        """``[batch, length]`` long: candidates per position."""
        return self.candidate_mask.sum(dim=-1)
