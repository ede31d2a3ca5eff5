"""Products of two bounded tensors (elementwise and matrix products) and softmax.

Products use McCormick planes; softmax is bounded directly in the forward pass and, backwards,
as ``exp(x - m) * (1 / sum exp(x - m))`` with the exp and reciprocal lines chained inside one
rule. ``torch.mul`` and ``torch.matmul`` choose their rule by which operands are bounded: one
(a scaling or ``x @ W``, affine.py), both (the rules here), or the same tensor twice (the
square, activations.py).
"""

from __future__ import annotations

import operator

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds.rules.activations import SQUARE, convex_lines
from robusttext.bounds.rules.affine import MatmulRule, ScaleRule
from robusttext.bounds.rules.common import (
    Rule,
    at_magnitude,
    constant_lines,
    each_side,
    guarded,
    sum_to_batch_spec,
    through_lines,
    unbroadcast,
)
from robusttext.bounds.rules.registry import ANY, DATA, only, register, satisfies
from robusttext.errors import RobustTextError


def _operand_bounds(ctx, arg):
    if ctx.is_bounded(arg):
        return ctx.interval(arg)
    value = ctx.constant(arg) if ctx.is_node(arg) else arg
    value = torch.as_tensor(value, dtype=ctx.example(ctx.inputs[0]).dtype,
                            device=ctx.example(ctx.inputs[0]).device)
    return value, value


def mccormick(lx, ux, ly, uy):
    """Planes for ``z = x * y`` on the box ``[lx, ux] x [ly, uy]``, one lower and one upper per
    entry. Returns ``(lower, upper)``, each ``(a, b, c)`` with ``z >= a x + b y + c`` resp.
    ``<=``.

    The four McCormick planes (lower: through the corners ``(lx, ly)`` or ``(ux, uy)``; upper:
    ``(lx, uy)`` or ``(ux, ly)``) are all sound and agree at the box centre, so the centre cannot
    choose between them. Each entry takes a lower and an upper plane that share one coefficient,
    the end of an operand nearest 0: sharing ``y``'s coefficient ``lx`` (planes ``y_l x + l_x y``
    and ``u_y x + l_x y``), ``ux``, or ``x``'s coefficient ``ly`` or ``uy``. Between such a pair
    the gap is ``(x - lx)(uy - ly)`` (resp. the other end or operand): zero on one face of the
    box. The smallest shared coefficient passes the least of ``A`` back to that operand, so
    the rest of the product is carried by the operands' intervals (on an LSTM's gate
    ``sigmoid * tanh`` this is the gate's lower end; on ``bench/peer_speed.py``'s BiLSTM at
    length 16 the backward bound went from looser than the interval bound, -4.69 against -4.34,
    to -2.60).
    """
    near_x, near_y = torch.minimum(lx.abs(), ux.abs()), torch.minimum(ly.abs(), uy.abs())
    share_y = near_x <= near_y  # share y's coefficient: x's end nearest 0
    x_low, y_low = lx.abs() <= ux.abs(), ly.abs() <= uy.abs()
    # lower planes: (ly, lx, -lx ly) through (lx, ly), (uy, ux, -ux uy) through (ux, uy)
    first = torch.where(share_y, x_low, y_low)
    lower = (torch.where(first, ly, uy), torch.where(first, lx, ux),
             torch.where(first, -lx * ly, -ux * uy))
    # upper planes: (uy, lx, -lx uy) through (lx, uy), (ly, ux, -ux ly) through (ux, ly)
    first = torch.where(share_y, x_low, ~y_low)
    upper = (torch.where(first, uy, ly), torch.where(first, lx, ux),
             torch.where(first, -lx * uy, -ux * ly))
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
    bias = sum_to_batch_spec(pos * take_pos[2].unsqueeze(1) + neg * take_neg[2].unsqueeze(1))
    return a_x, a_y, bias


class ProductRule(Rule):
    """``x * y`` with both operands bounded (broadcasting allowed)."""

    needs_input_bounds = True

    def ibp(self, ctx):
        args = ctx.arg("input"), ctx.arg("other")
        (lx, ux), (ly, uy) = _operand_bounds(ctx, args[0]), _operand_bounds(ctx, args[1])
        corners = torch.stack(torch.broadcast_tensors(lx * ly, lx * uy, ux * ly, ux * uy))
        return corners.amin(0), corners.amax(0)

    def backward(self, ctx, A_lower, A_upper):
        args = ctx.arg("input"), ctx.arg("other")
        (lx, ux), (ly, uy) = _operand_bounds(ctx, args[0]), _operand_bounds(ctx, args[1])
        if not all(torch.isfinite(t).all() for t in (lx, ux, ly, uy)):
            return constant_lines(ctx, A_lower, A_upper)
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
                a = unbroadcast(a, shape)
                slot = per_input[arg]
                slot[side] = a if slot[side] is None else slot[side] + a
        return [tuple(per_input[n]) for n in ctx.inputs], biases[0], biases[1]


def centred(lo: torch.Tensor, hi: torch.Tensor):
    """``(centre, radius)`` of ``[lo, hi]`` with ``|v - centre| <= radius`` for every ``v`` in
    it, also after the rounding of ``centre`` (the radius is measured to both ends)."""
    centre = (lo + hi) / 2
    return centre, torch.maximum(hi - centre, centre - lo)


def exact_matmul_interval(lx, ux, ly, uy):
    """The interval of ``X @ Y`` over boxes ``X [..., i, k]``, ``Y [..., k, j]`` from the exact
    interval of every product ``X_ik Y_kj`` (the least and greatest of its four corner products),
    summed over ``k``.

    Where one operand is non-negative (attention probabilities), each product's extreme corner
    is chosen by the sign of the other operand's end alone, so the sums are four matmuls
    (``_one_signed_interval``); otherwise the ``[..., i, k, j]`` corner products are formed once
    each.
    """
    if all(torch.isfinite(t).all() for t in (lx, ux, ly, uy)):
        if (lx >= 0).all():
            # (X @ Y)^T = Y^T @ X^T with the non-negative operand second
            lower, upper = _one_signed_interval(*(t.transpose(-1, -2) for t in (ly, uy, lx, ux)))
            lower, upper = lower.transpose(-1, -2), upper.transpose(-1, -2)
        elif (ly >= 0).all():
            lower, upper = _one_signed_interval(lx, ux, ly, uy)
        else:
            lower = None
        if lower is not None and torch.isfinite(lower).all() and torch.isfinite(upper).all():
            return lower, upper
    lx, ux = lx.unsqueeze(-1), ux.unsqueeze(-1)
    ly, uy = ly.unsqueeze(-3), uy.unsqueeze(-3)
    corners = (lx * ly, lx * uy, ux * ly, ux * uy)
    lower, upper = corners[0], corners[0]
    for corner in corners[1:]:
        lower, upper = torch.minimum(lower, corner), torch.maximum(upper, corner)
    return lower.sum(-2), upper.sum(-2)


def _one_signed_interval(lx, ux, ly, uy):
    """``exact_matmul_interval`` for ``Y >= 0``: ``x y`` over the box is least at ``(lx, ly)``
    where ``lx >= 0`` and at ``(lx, uy)`` where ``lx < 0``, greatest at ``(ux, uy)`` where ``ux >=
    0`` and at ``(ux, ly)`` where ``ux < 0``."""
    lower = lx.clamp(min=0) @ ly + lx.clamp(max=0) @ uy
    upper = ux.clamp(min=0) @ uy + ux.clamp(max=0) @ ly
    return lower, upper


class BilinearMatmulRule(Rule):
    """``X @ Y`` with both bounded: ``X [..., i, k]``, ``Y [..., k, j]`` (attention scores and
    attention-weighted values).

    IBP: the exact interval of each product ``X_ik Y_kj``, summed. Backward: one fixed plane per
    side for every product, the mean of its two McCormick planes, which is the expansion about
    the box centre ``c``, radius ``r``:
    ``x y = c_y x + c_x y - c_x c_y + (x - c_x)(y - c_y)`` with ``|(x - c_x)(y - c_y)| <= r_x
    r_y``, so ``x y`` lies within ``c_y x + c_x y - c_x c_y -/+ r_x r_y``. Its error is at most
    ``2 r_x r_y`` on the box (half that of either McCormick plane alone) and the slopes are the
    same on both sides, so a coefficient ``A [batch, specs, ..., i, j]`` passes through with two
    matmuls: ``A_X = A @ c_Y^T``, ``A_Y = c_X^T @ A`` and bias ``-sum(A * (c_X @ c_Y)) -/+
    sum(|A| * (r_X @ r_Y))``.
    """

    needs_input_bounds = True

    def ibp(self, ctx):
        args = ctx.arg("input"), ctx.arg("other")
        (lx, ux), (ly, uy) = ctx.interval(args[0]), ctx.interval(args[1])
        return exact_matmul_interval(lx, ux, ly, uy)

    def backward(self, ctx, A_lower, A_upper):
        args = ctx.arg("input"), ctx.arg("other")
        (lx, ux), (ly, uy) = ctx.interval(args[0]), ctx.interval(args[1])
        if not all(torch.isfinite(t).all() for t in (lx, ux, ly, uy)):
            return constant_lines(ctx, A_lower, A_upper)
        # the leading (batch, head) dimensions of both made alike, so that a spec dimension
        # inserted at 1 lines up with A's
        # numpy's rule: torch.broadcast_shapes imports sympy on its first call (about 2 s)
        lead = numpy.broadcast_shapes(lx.shape[:-2], ly.shape[:-2])
        lx, ux = (t.expand(*lead, *t.shape[-2:]) for t in (lx, ux))
        ly, uy = (t.expand(*lead, *t.shape[-2:]) for t in (ly, uy))
        (cx, rx), (cy, ry) = centred(lx, ux), centred(ly, uy)
        # [batch, 1, ..., i, j]: the planes' constant and half-width, summed over k
        offset = (-(cx @ cy)).unsqueeze(1)
        slack = (rx @ ry).unsqueeze(1)
        cx_t, cy_t = cx.transpose(-1, -2).unsqueeze(1), cy.transpose(-1, -2).unsqueeze(1)
        results = {n: [None, None] for n in ctx.inputs}
        biases = [0, 0]
        for side, (A, sign) in enumerate(((A_lower, -1), (A_upper, 1))):
            if A is None:
                continue
            biases[side] = (sum_to_batch_spec(A * offset)
                            + sign * sum_to_batch_spec(A.abs() * slack))
            for arg, a in ((args[0], A @ cy_t), (args[1], cx_t @ A)):
                a = unbroadcast(a, ctx.example(arg).shape)
                slot = results[arg]
                slot[side] = a if slot[side] is None else slot[side] + a
        return [tuple(results[n]) for n in ctx.inputs], biases[0], biases[1]


def _softmax_dim(ctx, ndim):
    dim = ctx.module.dim if ctx.module is not None else ctx.arg("dim")
    if dim % ndim == 0:
        raise RobustTextError(
            f"{ctx.description}: a softmax over the batch dimension mixes the examples "
            f"(dim={dim}); robusttext bounds only a softmax within each example (at {ctx.where})"
        )
    return dim % ndim


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


class SoftmaxRule(Rule):
    """Softmax along ``dim``.

    Forward: ``lower_i = e^{l_i} / (e^{l_i} + sum_{j != i} e^{u_j})`` and symmetrically for the
    upper bound, computed as ``sigmoid(l_i - logsumexp_{j != i} u_j)`` so that no exponential
    overflows or underflows to 0 / 0 (see ``_logsumexp_others``). Backward: ``softmax(x) = e *
    r`` with ``e = exp(x - m)`` (``m`` a constant per row), ``r = 1 / sum(e)``; McCormick for
    the product, reciprocal and exp relaxations.
    """

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        dim = _softmax_dim(ctx, lo.dim())
        if lo.shape[dim] == 1:
            return torch.ones_like(lo), torch.ones_like(hi)
        # softmax does not change when a row is shifted, so neither must its bounds: every term
        # is taken relative to the row's largest upper end, never added to it and subtracted
        # again (at 80 in float32 that round trip alone moved the bound past the true 0.25)
        m = hi.amax(dim, keepdim=True).detach()
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        lo, hi = lo - m, hi - m
        lower = torch.sigmoid(lo - _logsumexp_others(hi, dim))
        upper = torch.sigmoid(hi - _logsumexp_others(lo, dim))
        return lower, upper

    def backward(self, ctx, A_lower, A_upper):
        lo, hi = ctx.interval(ctx.inputs[0])
        dim = _softmax_dim(ctx, lo.dim())
        m = hi.amax(dim, keepdim=True).detach()
        e_lo, e_hi = torch.exp(lo - m), torch.exp(hi - m)
        s_lo, s_hi = e_lo.sum(dim, keepdim=True), e_hi.sum(dim, keepdim=True)
        r_lo, r_hi = 1 / s_hi, 1 / s_lo
        if not (torch.isfinite(r_hi).all() and torch.isfinite(lo).all()):
            return constant_lines(ctx, A_lower, A_upper)
        shape = e_lo.shape
        planes = mccormick(e_lo, e_hi, r_lo.expand(shape), r_hi.expand(shape))
        exp_relax = guarded(convex_lines(torch.exp, torch.exp, lo - m, hi - m), e_lo, e_hi,
                            lo - m, hi - m)
        rec_relax = guarded(convex_lines(torch.reciprocal, lambda x: -1 / (x * x), s_lo, s_hi),
                            r_lo, r_hi, s_lo, s_hi)
        # e = exp(x - m) >= / <= slope (x - m) + icpt: the lines in x, made sound where they
        # are evaluated, at x's own magnitude (see ``at_magnitude``)
        slope_l, icpt_l, slope_u, icpt_u = exp_relax
        exp_lines = at_magnitude((slope_l, icpt_l - slope_l * m, slope_u, icpt_u - slope_u * m),
                                 lo, hi)

        def side(A, sign):
            a_e, a_r, bias = _through_planes(A, *planes, sign)
            a_r = a_r.sum(dim + 1, keepdim=True)  # r is shared along the softmax dim
            a_s, bias_r = through_lines(a_r, rec_relax, sign)
            a_e = a_e + a_s  # s = sum(e): its coefficient reaches every e along dim
            a_x, bias_e = through_lines(a_e, exp_lines, sign)
            return a_x, bias + bias_r + bias_e

        return each_side(A_lower, A_upper, side)



class MulRule(Rule):
    """``x * y``: a scaling when one operand is constant, the square when both are the same
    tensor, McCormick planes otherwise."""

    scale, product = ScaleRule(), ProductRule()

    def select(self, ctx):
        first, second = ctx.arg("input"), ctx.arg("other")
        if not (ctx.is_bounded(first) and ctx.is_bounded(second)):
            return self.scale
        return SQUARE if first is second else self.product


class MatmulSelect(Rule):
    """``x @ y``: affine when one operand is constant, bilinear when both are bounded."""

    affine, bilinear = MatmulRule(), BilinearMatmulRule()

    def select(self, ctx):
        both = ctx.is_bounded(ctx.arg("input")) and ctx.is_bounded(ctx.arg("other"))
        return self.bilinear if both else self.affine


# -- registrations --------------------------------------------------------------------------
_TWO = {"input": DATA, "other": DATA}
register(MulRule(), torch.mul, operator.mul, "mul", params=_TWO)
register(MulRule(), operator.imul, "mul_", params=_TWO, writes_input=True)
register(MatmulSelect(), torch.matmul, operator.matmul, "matmul", params=_TWO)
_DIM = satisfies(lambda d: isinstance(d, int) and not isinstance(d, bool),
                 "an explicit integer dim")
register(SoftmaxRule(), nn.Softmax, params={"input": DATA}, attrs={"dim": _DIM})
register(SoftmaxRule(), F.softmax,
         params={"input": DATA, "dim": _DIM, "_stacklevel": ANY, "dtype": only(None)})
register(SoftmaxRule(), torch.softmax, "softmax",
         params={"input": DATA, "dim": _DIM, "dtype": only(None)})
