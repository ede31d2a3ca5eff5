"""Layers chosen to be easy to certify."""

from __future__ import annotations

import torch
import torch.nn as nn


class CenterNorm(nn.Module):
    """Layer normalisation without the division by the standard deviation:
    ``(x - mean(x)) * weight + bias`` over the last dimension.

    It is linear in ``x``, so its bounds are exact for one layer; Transformers that use it in
    place of ``nn.LayerNorm`` are much easier to certify (Xu et al. 2020).
    """

    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., size]`` -> same shape."""
        return (x - x.mean(-1, keepdim=True)) * self.weight + self.bias
