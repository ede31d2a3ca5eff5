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


def _box(seed: int, straddle: bool | str):
    """``straddle``: True (signs mixed), False (all positive), ``"x>=0"`` or ``"y>=0"`` (that
    operand non-negative, the other mixed: the four-matmul form of the interval)."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(1, I * K + K * J, generator=gen, dtype=torch.float64)
    if straddle is False:
        centre = centre.abs() + 1.0
    width = torch.rand(1, I * K + K * J, generator=gen, dtype=torch.float64) * 2
    lo, hi = centre - width / 2, centre + width / 2
    if straddle in ("x>=0", "y>=0"):
        part = slice(0, I * K) if straddle == "x>=0" else slice(I * K, None)
        shift = lo[:, part].amin().clamp(max=0)
        lo[:, part], hi[:, part] = lo[:, part] - shift, hi[:, part] - shift
        other = slice(I * K, None) if straddle == "x>=0" else slice(0, I * K)
        assert (lo[:, part] >= 0).all() and (lo[:, other] < 0).any() and (hi[:, other] > 0).any()
    return lo, hi


def _vertices(lo, hi):
    choices = torch.tensor(list(itertools.product([0.0, 1.0], repeat=lo.shape[1])),
                           dtype=lo.dtype)
    return lo + choices * (hi - lo)


@pytest.mark.parametrize("heads", [False, True])
@pytest.mark.parametrize("seed,straddle", [(0, True), (1, True), (2, False), (3, True),
                                           (4, "x>=0"), (5, "y>=0"), (6, "x>=0"), (7, "y>=0")])
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


@pytest.mark.parametrize("nonneg", ["x", "y", "neither"])
def test_interval_matches_a_scalar_loop_over_corners(nonneg):
    """Each output ``sum_k X_ik Y_kj`` has independent terms, so its exact interval is the sum
    of each scalar product's corner extremes, here looped in Python, on batched, broadcast
    operands (the four-matmul form where one operand is non-negative)."""
    from robusttext.bounds.rules.products import exact_matmul_interval

    gen = torch.Generator().manual_seed(11)
    lx = torch.randn(3, 2, 4, 5, generator=gen, dtype=torch.float64)
    ly = torch.randn(3, 1, 5, 6, generator=gen, dtype=torch.float64)
    if nonneg == "x":
        lx = lx.abs()
    if nonneg == "y":
        ly = ly.abs()
    ux = lx + torch.rand(lx.shape, generator=gen, dtype=lx.dtype)
    uy = ly + torch.rand(ly.shape, generator=gen, dtype=ly.dtype)
    lower, upper = exact_matmul_interval(lx, ux, ly, uy)
    assert lower.shape == upper.shape == (3, 2, 4, 6)
    for b, h, i, j in itertools.product(range(3), range(2), range(4), range(6)):
        lo_sum = hi_sum = 0.0
        for k in range(5):
            xs = (lx[b, h, i, k].item(), ux[b, h, i, k].item())
            ys = (ly[b, 0, k, j].item(), uy[b, 0, k, j].item())
            products = [x * y for x in xs for y in ys]
            lo_sum, hi_sum = lo_sum + min(products), hi_sum + max(products)
        assert lower[b, h, i, j].item() == pytest.approx(lo_sum, rel=1e-12, abs=1e-12)
        assert upper[b, h, i, j].item() == pytest.approx(hi_sum, rel=1e-12, abs=1e-12)


def test_interval_overflowing_in_the_matmul_form_falls_back_to_corners():
    """float32 products of +-0.75 of the largest finite value, alternating in sign along k:
    the four-matmul form sums the positive and the negative ones apart (inf + -inf = nan); the
    corner form sums them in order and stays finite."""
    from robusttext.bounds.rules.products import exact_matmul_interval

    big = torch.finfo(torch.float32).max * 0.75
    x = torch.tensor([[[1.0, -1.0, 1.0, -1.0]]])  # [1, 1, 4], points with mixed signs
    y = torch.full((1, 4, 1), big)  # [1, 4, 1], non-negative points
    split = x.clamp(min=0) @ y + x.clamp(max=0) @ y
    assert torch.isnan(split).all()  # what the fast form alone would return
    lower, upper = exact_matmul_interval(x, x, y, y)
    assert lower.item() == 0.0 and upper.item() == 0.0
