"""The tensors of a batch of sentences and their substitution candidates."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
