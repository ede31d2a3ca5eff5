"""Sound at any magnitude (issue 31, class 5): CROWN through softmax with logits around 1e3-1e6
and attention masks at -1e4 or the dtype's minimum (as ``transformers`` adds them), float32 and
float64. The expectation is the model's own output at sampled points of the box (corners
included), with a tolerance relative to the output alone, not to the logits' magnitude: the
softmax's lines were built in shifted coordinates (``exp(x - m)``) and their cancellation at
``|x|`` of 1e6 left the bound up to 1,270 times that tolerance below the model's outputs."""

import pytest
import torch
import torch.nn as nn

from robusttext.bounds import METHODS, Box, compute_bounds
from robusttext.bounds.engine import linear_bounds
from tests.oracles import sample_box


class Logits(nn.Module):
    """``head(softmax(first(x) * scale + offset + mask))``; ``attention``: the scores are
    ``q(x) k(x)^T`` instead, and the softmax weights ``v(x)``."""

    def __init__(self, scale, offset, mask, attention=False):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.k, self.v = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)
        self.head = nn.Linear(16 if attention else 4, 2)
        self.scale, self.offset, self.attention = scale, offset, attention
        self.register_buffer("mask", mask)

    def forward(self, x):
        if self.attention:  # x [batch, 4 tokens, 4]
            scores = self.first(x) @ self.k(x).transpose(-1, -2) * self.scale
            weights = torch.softmax(scores + self.offset + self.mask, -1)
            return self.head((weights @ self.v(x)).flatten(1))
        return self.head(torch.softmax(self.first(x) * self.scale + self.offset + self.mask, -1))


def _check(model, box, dtype, method):
    points = sample_box(box.lower, box.upper, n=300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outs = model(points.flatten(0, 1)).view(points.shape[0], points.shape[1], -1)
        if method == "crown alone":  # CROWN without the interval bound's intersection
            lower, upper = linear_bounds(model, box, "crown")
        else:
            lower, upper = compute_bounds(model, box, method)
    tol = (1e-5 if dtype == torch.float32 else 1e-11) * (1 + outs.abs())
    gap = torch.maximum(lower - outs, outs - upper)
    return (gap > tol).sum().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offset", [1e3, 1e4, 1e6])
@pytest.mark.parametrize("mask", [0.0, -1e4, "min"])
@pytest.mark.parametrize("method", [*METHODS[1:], "crown alone"])
def test_softmax_of_large_logits_is_sound(dtype, offset, mask, method):
    masked = torch.finfo(dtype).min if mask == "min" else mask
    model = Logits(1.0, offset, torch.tensor([0, 0, masked, 0], dtype=dtype)).to(dtype).eval()
    centre = 0.5 * torch.randn(3, 4, dtype=dtype, generator=torch.Generator().manual_seed(3))
    for eps in (1e-3, 1e-2, 0.1):
        assert _check(model, Box(centre - eps, centre + eps), dtype, method) == 0, eps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask", [-1e4, "min"])
@pytest.mark.parametrize("method", ["crown", "crown-ibp"])
def test_masked_attention_at_large_magnitudes_is_sound(dtype, mask, method):
    masked = torch.finfo(dtype).min if mask == "min" else mask
    model = Logits(10.0, 1e4, torch.tensor([0, 0, masked, 0], dtype=dtype),
                   attention=True).to(dtype).eval()
    centre = 0.5 * torch.randn(2, 4, 4, dtype=dtype, generator=torch.Generator().manual_seed(4))
    for eps in (1e-3, 1e-2):
        assert _check(model, Box(centre - eps, centre + eps), dtype, method) == 0, eps
