"""Bound rules for the operations of recurrent and attention models.

Products of two bounded tensors (elementwise and matrix products) use McCormick planes; exp,
reciprocal, sqrt and square use chords and tangents of convex/concave functions; softmax is
bounded directly in the forward pass and, backwards, as ``exp(x - m) * (1 / sum exp(x - m))``
with the rules above chained inside one rule.
"""

from __future__ import annotations

import torch

from robusttext.bounds.rules import (
    ActivationRule,
    _safe_width,
    _sum_to_batch_spec,
    _unbroadcast,
    each_side,
    through_lines,
)
from robusttext.errors import RobustTextError


def _operand_bounds(ctx, arg):
    if ctx.is_bounded(arg):
        return ctx.interval(arg)
    value = ctx.constant(arg) if ctx.is_node(arg) else arg
    value = torch.as_tensor(value, dtype=ctx.example(ctx.inputs[0]).dtype,
                            device=ctx.example(ctx.inputs[0]).device)
    return value, value


def mccormick(lx, ux, ly, uy):
    """Planes for ``z = x * y`` on the box, the better of the two McCormick planes per entry
    (judged at the centre).

    Returns ``(lower, upper)``, each ``(a, b, c)`` with ``z >= a x + b y + c`` resp. ``<=``.
    """
    cx, cy = (lx + ux) / 2, (ly + uy) / 2
    # lower planes: (ly, lx, -lx ly) and (uy, ux, -ux uy)
    first = ly * cx + lx * cy - lx * ly
    second = uy * cx + ux * cy - ux * uy
    pick = first >= second
    lower = (torch.where(pick, ly, uy), torch.where(pick, lx, ux),
             torch.where(pick, -lx * ly, -ux * uy))
    # upper planes: (uy, lx, -lx uy) and (ly, ux, -ux ly)
    first = uy * cx + lx * cy - lx * uy
    second = ly * cx + ux * cy - ux * ly
    pick = first <= second
    upper = (torch.where(pick, uy, ly), torch.where(pick, lx, ux),
             torch.where(pick, -lx * uy, -ux * ly))
    return lower, upper


def _through_planes(A, lower, upper, sign):
    """Push ``A`` ``[batch, specs, *shape]`` through planes of ``z = f(x, y)``.

    sign=+1 bounds ``sum(A z)`` from above (positive entries take the upper plane), -1 from
    below. Returns ``(A_x, A_y, bias [batch, specs])``.
    """
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    take_pos, take_neg = (upper, lower) if sign > 0 else (lower, upper)
    a_x = pos * take_pos[0].unsqueeze(1) + neg * take_neg[0].unsqueeze(1)
    a_y = pos * take_pos[1].unsqueeze(1) + neg * take_neg[1].unsqueeze(1)
    bias = _sum_to_batch_spec(pos * take_pos[2].unsqueeze(1) + neg * take_neg[2].unsqueeze(1))
    return a_x, a_y, bias


class ProductRule:
    """``x * y`` with both operands bounded (broadcasting allowed)."""

    def ibp(self, ctx):
        args = ctx.node_args()
        (lx, ux), (ly, uy) = _operand_bounds(ctx, args[0]), _operand_bounds(ctx, args[1])
        corners = torch.stack(torch.broadcast_tensors(lx * ly, lx * uy, ux * ly, ux * uy))
        return corners.amin(0), corners.amax(0)

    def backward(self, ctx, A_lower, A_upper):
        args = ctx.node_args()
        (lx, ux), (ly, uy) = _operand_bounds(ctx, args[0]), _operand_bounds(ctx, args[1])
        lx, ux, ly, uy = torch.broadcast_tensors(lx, ux, ly, uy)
        planes = mccormick(lx, ux, ly, uy)
        shapes = [ctx.example(args[0]).shape, ctx.example(args[1]).shape]
        per_input = {n: [None, None] for n in ctx.inputs}
        biases = [0, 0]
        for side, (A, sign) in enumerate(((A_lower, -1), (A_upper, 1))):
            if A is None:
                continue
            a_x, a_y, bias = _through_planes(A, *planes, sign)
            biases[side] = bias
            for arg, a, shape in ((args[0], a_x, shapes[0]), (args[1], a_y, shapes[1])):
                a = _unbroadcast(a, shape)
                slot = per_input[arg]
                slot[side] = a if slot[side] is None else slot[side] + a
        return [tuple(per_input[n]) for n in ctx.inputs], biases[0], biases[1]


class BilinearMatmulRule:
    """``X @ Y`` with both bounded: ``X [..., i, k]``, ``Y [..., k, j]`` (attention scores and
    attention-weighted values). Each product ``X_ik Y_kj`` gets McCormick planes."""

    def ibp(self, ctx):
        args = ctx.node_args()
        (lx, ux), (ly, uy) = ctx.interval(args[0]), ctx.interval(args[1])
        cx, rx = (lx + ux) / 2, (ux - lx) / 2
        cy, ry = (ly + uy) / 2, (uy - ly) / 2
        center = cx @ cy
        radius = cx.abs() @ ry + rx @ cy.abs() + rx @ ry
        return center - radius, center + radius

    def backward(self, ctx, A_lower, A_upper):
        args = ctx.node_args()
        (lx, ux), (ly, uy) = ctx.interval(args[0]), ctx.interval(args[1])
        # [..., i, k, j] operands of every product
        bx = [t.unsqueeze(-1) for t in (lx, ux)]
        by = [t.unsqueeze(-3) for t in (ly, uy)]
        lx, ux, ly, uy = torch.broadcast_tensors(bx[0], bx[1], by[0], by[1])
        planes = mccormick(lx, ux, ly, uy)
        results = {n: [None, None] for n in ctx.inputs}
        biases = [0, 0]
        for side, (A, sign) in enumerate(((A_lower, -1), (A_upper, 1))):
            if A is None:
                continue
            a_x, a_y, bias = _through_planes(A.unsqueeze(-2), *planes, sign)
            biases[side] = bias
            for arg, a in ((args[0], a_x.sum(-1)), (args[1], a_y.sum(-3))):
                a = _unbroadcast(a, ctx.example(arg).shape)
                slot = results[arg]
                slot[side] = a if slot[side] is None else slot[side] + a
        return [tuple(results[n]) for n in ctx.inputs], biases[0], biases[1]


def _convex_relaxation(f, df, lo, hi):
    """Chord above, tangent at the midpoint below, for a convex ``f`` on ``[lo, hi]``."""
    f_lo, f_hi = f(lo), f(hi)
    chord = (f_hi - f_lo) / _safe_width(lo, hi)
    mid = (lo + hi) / 2
    slope = df(mid)
    narrow = (hi - lo) < 1e-6
    zero = torch.zeros_like(lo)
    lower_slope = torch.where(narrow, zero, slope)
    lower_icpt = torch.where(narrow, torch.minimum(f_lo, f_hi), f(mid) - slope * mid)
    upper_slope = torch.where(narrow, zero, chord)
    upper_icpt = torch.where(narrow, torch.maximum(f_lo, f_hi), f_lo - chord * lo)
    return lower_slope, lower_icpt, upper_slope, upper_icpt


def _concave_relaxation(f, df, lo, hi):
    neg = _convex_relaxation(lambda x: -f(x), lambda x: -df(x), lo, hi)
    return -neg[2], -neg[3], -neg[0], -neg[1]


class ExpRule(ActivationRule):
    def function(self, ctx, x):
        return torch.exp(x)

    def relax(self, ctx, lo, hi):
        return _convex_relaxation(torch.exp, torch.exp, lo, hi)


class ReciprocalRule(ActivationRule):
    """``1 / x`` for ``x > 0`` (convex and decreasing there)."""

    def _check(self, ctx, lo):
        if (lo <= 0).any():
            raise RobustTextError(
                f"{ctx.description}: the reciprocal of an interval that reaches 0 or below is "
                f"unbounded (at {ctx.where})"
            )

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        self._check(ctx, lo)
        return 1 / hi, 1 / lo

    def relax(self, ctx, lo, hi):
        self._check(ctx, lo)
        return _convex_relaxation(torch.reciprocal, lambda x: -1 / (x * x), lo, hi)


class SqrtRule(ActivationRule):
    """``sqrt(x)``; inputs are non-negative wherever the model is defined, so the lower bound is
    clipped at 0."""

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        return torch.sqrt(lo.clamp(min=0)), torch.sqrt(hi.clamp(min=0))

    def relax(self, ctx, lo, hi):
        lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        tiny = torch.finfo(lo.dtype).tiny
        return _concave_relaxation(torch.sqrt, lambda x: 0.5 / torch.sqrt(x.clamp(min=tiny)),
                                   lo, hi)


class SquareRule(ActivationRule):
    """``x * x``, ``x ** 2``, ``torch.square(x)``: convex, not monotone."""

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        low = torch.where((lo < 0) & (hi > 0), torch.zeros_like(lo),
                          torch.minimum(lo * lo, hi * hi))
        return low, torch.maximum(lo * lo, hi * hi)

    def relax(self, ctx, lo, hi):
        return _convex_relaxation(torch.square, lambda x: 2 * x, lo, hi)


def _softmax_dim(ctx):
    if ctx.module is not None:
        dim = ctx.module.dim
    else:
        args, kwargs = ctx.node_args(), ctx.node_kwargs()
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:
        raise RobustTextError(f"{ctx.description}: pass softmax's dim explicitly (at {ctx.where})")
    return dim


def _logsumexp_others(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``log sum_{j != i} exp(x_j)`` for every ``i`` along ``dim`` (size >= 2), stably.

    For ``i`` off the row's argmax the sum holds the maximum's term, so with ``m`` the maximum
    ``sum_j exp(x_j - m) - exp(x_i - m) >= 1``; at the argmax, the other terms are summed
    directly around the second largest value. Finite inputs give finite outputs.
    """
    m1, arg = x.max(dim, keepdim=True)
    m1 = m1.detach()
    is_max = torch.zeros_like(x, dtype=torch.bool).scatter(dim, arg, True)
    shifted = torch.exp(x - m1)
    off_max = m1 + torch.log((shifted.sum(dim, keepdim=True) - shifted).clamp(min=1.0))
    rest = x.masked_fill(is_max, float("-inf"))
    m2 = rest.amax(dim, keepdim=True).detach()
    at_max = m2 + torch.log(torch.exp(rest - m2).sum(dim, keepdim=True))
    return torch.where(is_max, at_max.expand_as(x), off_max)


class SoftmaxRule:
    """Softmax along ``dim``.

    Forward: ``lower_i = e^{l_i} / (e^{l_i} + sum_{j != i} e^{u_j})`` and symmetrically for the
    upper bound, computed as ``sigmoid(l_i - logsumexp_{j != i} u_j)`` so that no exponential
    overflows or underflows to 0 / 0 (see ``_logsumexp_others``). Backward: ``softmax(x) = e *
    r`` with ``e = exp(x - m)`` (``m`` a constant per row), ``r = 1 / sum(e)``; McCormick for
    the product, reciprocal and exp relaxations.
    """

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        dim = _softmax_dim(ctx) % lo.dim()
        if lo.shape[dim] == 1:
            return torch.ones_like(lo), torch.ones_like(hi)
        lower = torch.sigmoid(lo - _logsumexp_others(hi, dim))
        upper = torch.sigmoid(hi - _logsumexp_others(lo, dim))
        return lower, upper

    def backward(self, ctx, A_lower, A_upper):
        lo, hi = ctx.interval(ctx.inputs[0])
        dim = _softmax_dim(ctx) % lo.dim()
        m = hi.amax(dim, keepdim=True).detach()
        e_lo, e_hi = torch.exp(lo - m), torch.exp(hi - m)
        s_lo, s_hi = e_lo.sum(dim, keepdim=True), e_hi.sum(dim, keepdim=True)
        r_lo, r_hi = 1 / s_hi, 1 / s_lo
        shape = e_lo.shape
        planes = mccormick(e_lo, e_hi, r_lo.expand(shape), r_hi.expand(shape))
        exp_relax = _convex_relaxation(torch.exp, torch.exp, lo - m, hi - m)
        rec_relax = _convex_relaxation(torch.reciprocal, lambda x: -1 / (x * x), s_lo, s_hi)
        # e = exp(x - m) >= / <= slope (x - m) + icpt: the lines in x
        slope_l, icpt_l, slope_u, icpt_u = exp_relax
        exp_lines = (slope_l, icpt_l - slope_l * m, slope_u, icpt_u - slope_u * m)

        def side(A, sign):
            a_e, a_r, bias = _through_planes(A, *planes, sign)
            a_r = a_r.sum(dim + 1, keepdim=True)  # r is shared along the softmax dim
            a_s, bias_r = through_lines(a_r, rec_relax, sign)
            a_e = a_e + a_s  # s = sum(e): its coefficient reaches every e along dim
            a_x, bias_e = through_lines(a_e, exp_lines, sign)
            return a_x, bias + bias_r + bias_e

        return each_side(A_lower, A_upper, side)


NONLINEAR_RULES = {
    "product": ProductRule(),
    "bilinear_matmul": BilinearMatmulRule(),
    "square": SquareRule(),
    "exp": ExpRule(),
    "reciprocal": ReciprocalRule(),
    "sqrt": SqrtRule(),
    "softmax": SoftmaxRule(),
}
