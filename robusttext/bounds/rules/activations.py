"""Elementwise functions: ReLU, LeakyReLU, clamp, sigmoid, tanh, GELU, exp, reciprocal, sqrt,
square.

Each rule gives ``interval(lo, hi)``, the exact range of the function on every entry's interval,
and ``relax(lo, hi)``, lines ``(slope_l, icpt_l, slope_u, icpt_u)`` with ``slope_l x + icpt_l <=
f(x) <= slope_u x + icpt_u`` on ``[lo, hi]``. ``guarded`` (common.py) replaces the lines by the
constant lines of the interval wherever they are not finite or the interval is too narrow for
their slopes, so every relaxation is sound whatever the width, ``lo == u`` included, and an
image that overflows gives the right infinity. The functions are computed from the stored
bounds, never by running the model's module on them (an in-place module would overwrite them).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds.rules.common import (
    Rule,
    each_side,
    guarded,
    safe_width,
    through_lines,
)
from robusttext.bounds.rules.registry import ANY, DATA, only, register, satisfies
from robusttext.errors import RobustTextError


class ActivationRule(Rule):
    """An elementwise function of one bounded input."""

    needs_input_bounds = True
    piecewise_linear = False

    def interval(self, ctx, lo, hi):
        raise NotImplementedError

    def relax(self, ctx, lo, hi):
        raise NotImplementedError

    def _finite_input(self, ctx):
        """The input's interval, or None when some entry of it is not finite."""
        source = ctx.inputs[0]
        lo, hi = ctx.interval(source)
        if not ctx.is_finite(source) and not (torch.isfinite(lo).all()
                                              and torch.isfinite(hi).all()):
            return None
        return lo, hi

    def ibp(self, ctx):
        return self.interval(ctx, *ctx.interval(ctx.inputs[0]))

    def lines(self, ctx):
        """The guarded relaxation of the input's interval, kept on the node's context while the
        interval is the same pair of tensors: CROWN's intermediate bounds pass through every
        earlier activation once per node, and alpha-CROWN once per step (the bisection of the
        S-shaped lines made that the LSTM's cost)."""
        lo, hi = ctx.interval(ctx.inputs[0])
        kept = ctx.kept.get("lines")
        if kept is None or kept[0] is not lo or kept[1] is not hi:
            f_min, f_max = self.interval(ctx, lo, hi)
            kept = lo, hi, guarded(self.relax(ctx, lo, hi), f_min, f_max, lo, hi,
                                   narrow_too=not self.piecewise_linear)
            ctx.kept["lines"] = kept
        return kept[2]

    def backward(self, ctx, A_lower, A_upper):
        relax = self.lines(ctx)

        def side(A, sign):
            alpha = ctx.optimised_slope(sign)  # [batch, specs, *shape] or None
            lines = relax if alpha is None else (alpha, *relax[1:])
            return through_lines(A, lines, sign)

        return each_side(A_lower, A_upper, side)


class MonotoneRule(ActivationRule):
    """A non-decreasing function ``fn``: the interval is ``[fn(lo), fn(hi)]``."""

    def fn(self, ctx, x):
        raise NotImplementedError

    def interval(self, ctx, lo, hi):
        return self.fn(ctx, lo), self.fn(ctx, hi)


def _triangle(lo, hi, s):
    """Lines of ``max(x, s x)`` (``0 <= s <= 1``): chord above, below slope 1 where
    ``hi > -lo`` else ``s`` (the adaptive lower line)."""
    unstable = (lo < 0) & (hi > 0)
    stable_slope = torch.where(lo >= 0, torch.ones_like(lo), torch.full_like(lo, s))
    chord = (hi - s * lo) / safe_width(lo, hi)
    upper_slope = torch.where(unstable, chord, stable_slope)
    upper_icpt = torch.where(unstable, hi - chord * hi, torch.zeros_like(lo))
    adaptive = torch.where(hi > -lo, torch.ones_like(lo), torch.full_like(lo, s))
    lower_slope = torch.where(unstable, adaptive, stable_slope)
    return lower_slope, torch.zeros_like(lo), upper_slope, upper_icpt


class ReLURule(MonotoneRule):
    """Triangle relaxation; adaptive lower slope (1 where ``u > -l``, else 0)."""

    piecewise_linear = overflow_free = True

    def fn(self, ctx, x):
        return torch.relu(x)  # out of place: the stored bounds are never written

    def relax(self, ctx, lo, hi):
        """``_triangle`` with ``s = 0``, in fewer passes (ReLU dominates CROWN's time)."""
        unstable = (lo < 0) & (hi > 0)
        active = (lo >= 0).to(lo.dtype)
        upper_slope = torch.where(unstable, hi / safe_width(lo, hi), active)
        upper_icpt = torch.where(unstable, -upper_slope * lo, torch.zeros_like(lo))
        lower_slope = torch.where(unstable, (hi > -lo).to(lo.dtype), active)
        return lower_slope, torch.zeros_like(lo), upper_slope, upper_icpt

    def slope_range(self, ctx):
        """Any slope in ``[0, 1]`` on an unstable entry (``lo < 0 < hi``), the fixed 1 or 0 on
        a stable one; none where the interval is not finite (the constant lines take over)."""
        bounds = self._finite_input(ctx)
        if bounds is None:
            return None
        lo, hi = bounds
        unstable = (lo < 0) & (hi > 0)
        active = (lo >= 0).to(lo.dtype)
        crown = self.lines(ctx)[0]
        return crown, active, torch.where(unstable, torch.ones_like(lo), active)

    def backward(self, ctx, A_lower, A_upper):
        """Fewer passes over ``A`` than the general rule: the lower line has no intercept, so
        the bias comes only from the coefficients that take the upper line."""
        bounds = self._finite_input(ctx)
        if bounds is None:
            return super().backward(ctx, A_lower, A_upper)
        slope_l, _, slope_u, icpt_u = self.lines(ctx)
        # A' = slope_l A + (slope_u - slope_l) A_up, with A_up the part of A that takes the
        # upper line (its positive part for an upper bound, negative for a lower): three passes
        # over A (clamp, scale, addcmul) and no A-sized mask
        slope_u, slope_l = slope_u.unsqueeze(1), slope_l.unsqueeze(1)
        extra = slope_u - slope_l
        icpt_u = icpt_u.reshape(icpt_u.shape[0], -1)  # [batch, n] (a [batch] node too)

        def side(A, sign):
            alpha = ctx.optimised_slope(sign)  # alpha-CROWN's lower slopes [batch, specs, ...]
            lower_slope, gap = (slope_l, extra) if alpha is None else (alpha, slope_u - alpha)
            upper_part = A.clamp(min=0) if sign > 0 else A.clamp(max=0)
            return (torch.addcmul(A * lower_slope, upper_part, gap),
                    torch.einsum("bsn,bn->bs", upper_part.reshape(*A.shape[:2], -1), icpt_u))

        return each_side(A_lower, A_upper, side)


class LeakyReLURule(MonotoneRule):
    """``max(x, s x)`` with ``0 <= s <= 1``: chord above, adaptive slope below."""

    piecewise_linear = overflow_free = True

    def _slope(self, ctx):
        if ctx.module is not None:
            return ctx.module.negative_slope
        return ctx.arg("negative_slope", 0.01)

    def fn(self, ctx, x):
        return F.leaky_relu(x, self._slope(ctx))

    def relax(self, ctx, lo, hi):
        return _triangle(lo, hi, self._slope(ctx))

    def slope_range(self, ctx):
        """Any slope in ``[s, 1]`` on an unstable entry (a line through 0 between ``s x`` and
        ``x`` lies below ``max(x, s x)`` everywhere), the fixed 1 or ``s`` on a stable one."""
        bounds = self._finite_input(ctx)
        if bounds is None:
            return None
        lo, hi = bounds
        s = self._slope(ctx)
        unstable = (lo < 0) & (hi > 0)
        stable = torch.where(lo >= 0, torch.ones_like(lo), torch.full_like(lo, s))
        crown = _triangle(lo, hi, s)[0]
        return (crown, torch.where(unstable, torch.full_like(lo, s), stable),
                torch.where(unstable, torch.ones_like(lo), stable))


class ClampRule(MonotoneRule):
    """``clamp(x, min, max)`` (and ``hardtanh``) with constant bounds, either of them absent.

    On ``[lo, hi]`` the function is ``max(x, a)`` (convex), ``min(x, b)`` (concave) or, across
    both kinks, S-shaped. Each side takes the chord where the function is convex (upper) or
    concave (lower); at a kink inside the interval, the line of the larger part (slope 1
    through the kink, or the constant); across both kinks, the line through the far corner and
    the kink (``(lo, a)``-``(b, b)`` above, ``(a, a)``-``(hi, b)`` below) or the constant.
    """

    piecewise_linear = overflow_free = True

    def _limits(self, ctx):
        if ctx.module is not None:
            return ctx.module.min_val, ctx.module.max_val
        if ctx.node.target is F.hardtanh:
            return ctx.arg("min_val", -1.0), ctx.arg("max_val", 1.0)
        return ctx.arg("min"), ctx.arg("max")

    def check(self, ctx) -> None:
        low, high = self._limits(ctx)
        if low is None and high is None:
            raise RobustTextError(f"{ctx.description}: clamp needs a min or a max (at {ctx.where})")
        if low is not None and high is not None and low > high:
            raise RobustTextError(
                f"{ctx.description}: clamp's min {low} is above its max {high}; robusttext bounds"
                f" a clamp whose min is at most its max (at {ctx.where})")

    def fn(self, ctx, x):
        return torch.clamp(x, *self._limits(ctx))

    def relax(self, ctx, lo, hi):
        low, high = self._limits(ctx)
        # an absent limit sits outside the interval, where its kink changes nothing
        a = torch.full_like(lo, float(low)) if low is not None else (
            lo - 1 if high is None else torch.minimum(lo, torch.full_like(lo, float(high))) - 1)
        b = torch.full_like(lo, float(high)) if high is not None else torch.maximum(hi, a) + 1
        f_lo, f_hi = torch.minimum(torch.maximum(lo, a), b), torch.minimum(torch.maximum(hi, a), b)
        chord = (f_hi - f_lo) / safe_width(lo, hi)
        chord_icpt = f_lo - chord * lo
        zero, one = torch.zeros_like(lo), torch.ones_like(lo)
        below, above = lo < a, hi > b  # the interval reaches past a kink
        # upper line
        up_both = (b - a) / safe_width(lo, b)
        use_both = (b - lo) >= (hi - b)
        slope_u = torch.where(~above, chord, torch.where(
            below, torch.where(use_both, up_both, zero),
            torch.where((lo < b) & (hi - b < b - lo), one, zero)))
        icpt_u = torch.where(~above, chord_icpt, torch.where(
            below, torch.where(use_both, a - up_both * lo, b),
            torch.where((lo < b) & (hi - b < b - lo), zero, b)))
        # lower line
        low_both = (b - a) / safe_width(a, hi)
        use_low = (hi - a) >= (a - lo)
        slope_l = torch.where(~below, chord, torch.where(
            above, torch.where(use_low, low_both, zero),
            torch.where((hi > a) & (hi - a > a - lo), one, zero)))
        icpt_l = torch.where(~below, chord_icpt, torch.where(
            above, torch.where(use_low, a - low_both * a, a),
            torch.where((hi > a) & (hi - a > a - lo), zero, a)))
        return slope_l, icpt_l, slope_u, icpt_u


class SShapedRule(MonotoneRule):
    """Sigmoid and tanh: convex below 0, concave above, derivative peaked at 0.

    Convex part: chord above, tangent at the midpoint below; concave part the reverse. An
    interval across 0 has two sound candidates per side, and each entry takes the one with the
    smaller area between line and curve (the nearer to ``f`` at the interval's midpoint):
    - lines through both end points with the smaller end-point derivative ``k`` (sound because
      the derivative on the interval is never smaller than at its ends); near the interval's
      own bounds when the interval is wide;
    - above, the lowest line through ``(lo, f(lo))`` that stays above ``f`` (tangent to the
      concave part, or the chord when the tangent point lies beyond ``hi``); below, the highest
      line through ``(hi, f(hi))`` (``_lowest_line_from``); tighter on narrow intervals.
    """

    overflow_free = True

    def __init__(self, function, derivative):
        self.function, self.derivative = function, derivative
        self._points = {}  # (side, dtype, device) -> _tangent_points

    def tangent_points(self, side: str, dtype, device) -> torch.Tensor:
        """``_tangent_points`` of ``f`` (side "upper") or of ``g(x) = -f(-x)`` ("lower"),
        computed once per dtype and device."""
        key = (side, dtype, device)
        if key not in self._points:
            f, df = self.function, self.derivative
            if side == "lower":
                f, df = (lambda x: -self.function(-x)), (lambda x: self.derivative(-x))
            self._points[key] = _tangent_points(f, df, dtype, device)
        return self._points[key]

    def fn(self, ctx, x):
        return self.function(x)

    def relax(self, ctx, lo, hi):
        f_lo, f_hi = self.function(lo), self.function(hi)
        mid = (lo + hi) / 2
        f_mid, d_mid = self.function(mid), self.derivative(mid)
        chord = (f_hi - f_lo) / safe_width(lo, hi)
        chord_icpt = f_lo - chord * lo
        tangent_icpt = f_mid - d_mid * mid
        convex, concave = hi <= 0, lo >= 0
        across = ~(convex | concave)
        k = torch.minimum(self.derivative(lo), self.derivative(hi))
        up_slope, up_icpt = k.clone(), f_hi - k * hi
        low_slope, low_icpt = k.clone(), f_lo - k * lo
        if across.any():
            a, b, centre = lo[across], hi[across], mid[across]
            slope, icpt = _lowest_line_from(self.function, self.derivative, a, b,
                                            self.tangent_points("upper", lo.dtype, lo.device))
            better = slope * centre + icpt < up_slope[across] * centre + up_icpt[across]
            up_slope[across] = torch.where(better, slope, up_slope[across])
            up_icpt[across] = torch.where(better, icpt, up_icpt[across])
            # below: the same construction for g(x) = -f(-x) on [-hi, -lo], mirrored back
            slope, icpt = _lowest_line_from(lambda x: -self.function(-x),
                                            lambda x: self.derivative(-x), -b, -a,
                                            self.tangent_points("lower", lo.dtype, lo.device))
            icpt = -icpt
            better = slope * centre + icpt > low_slope[across] * centre + low_icpt[across]
            low_slope[across] = torch.where(better, slope, low_slope[across])
            low_icpt[across] = torch.where(better, icpt, low_icpt[across])
        lower_slope = torch.where(convex, d_mid, torch.where(concave, chord, low_slope))
        lower_icpt = torch.where(convex, tangent_icpt, torch.where(concave, chord_icpt, low_icpt))
        upper_slope = torch.where(convex, chord, torch.where(concave, d_mid, up_slope))
        upper_icpt = torch.where(convex, chord_icpt, torch.where(concave, tangent_icpt, up_icpt))
        return lower_slope, lower_icpt, upper_slope, upper_icpt


TANGENT_GRID_START, TANGENT_GRID_CELLS = -16.0, 16384


def _tangent_points(f, df, dtype, device) -> torch.Tensor:
    """``[TANGENT_GRID_CELLS + 1]``: for each ``g`` of a uniform grid on ``[TANGENT_GRID_START,
    0]``, a point ``t <= d(g)``, where ``d(g) >= 0`` is where the lowest line through ``(g,
    f(g))`` above ``f`` touches ``f`` (``_lowest_line_from``); found by bisection in float64
    keeping the rising side, then rounded down to ``dtype``. ``d`` falls as ``g`` rises to 0
    (``d(0) = 0``), so the grid point at or above ``lo`` gives a point at most ``d(lo)``; the
    caller checks it anyway."""
    grid = torch.linspace(TANGENT_GRID_START, 0.0, TANGENT_GRID_CELLS + 1, dtype=torch.float64)
    lo = grid[:-1]
    f_lo = f(lo)

    def rising(x):
        return (f(x) - f_lo) / (x - lo) < df(x)

    t, u = torch.zeros_like(lo), torch.full_like(lo, 64.0)
    for _ in range(64):
        m = (t + u) / 2
        below = rising(m)
        t, u = torch.where(below, m, t), torch.where(below, u, m)
    exact = torch.cat([t, torch.zeros(1, dtype=torch.float64)])
    points = exact.to(dtype)
    points = torch.where(points.double() > exact, torch.nextafter(points, torch.zeros_like(points)),
                         points)
    return points.to(device)


def _lowest_line_from(f, df, lo, hi, points):
    """A line ``s x + c`` through ``(lo, f(lo))`` above ``f`` on ``[lo, hi]``, for ``lo < 0 <
    hi`` and ``f`` convex below 0 and concave above. Returns ``(s, c)`` (each shaped like
    ``lo``).

    The least slope is the largest chord slope ``q(x) = (f(x) - f(lo)) / (x - lo)`` over ``(lo,
    hi]``; ``q`` rises while ``q(x) < f'(x)`` and falls after, so its maximum is ``f'(d)`` at the
    tangent point ``d >= 0`` where the two meet, or ``q(hi)`` when ``d`` lies beyond ``hi``.
    Any ``t`` in ``[0, d]`` (``q(t) < f'(t)``) gives a sound slope ``f'(t) >= f'(d)``, because
    ``f'`` falls on ``[0, inf)``: ``t`` is looked up in ``points`` (``_tangent_points``, the grid
    point at or above ``lo``), checked to be rising (in float64), and 0 where it is not. The
    intercept is raised by a few rounding errors of ``f``.
    """
    f_lo = f(lo)

    def rising(x):
        return (f(x) - f_lo) / (x - lo) < df(x)

    lo64 = lo.double()
    step = -TANGENT_GRID_START / TANGENT_GRID_CELLS
    index = torch.ceil((lo64 - TANGENT_GRID_START) / step).clamp(0, TANGENT_GRID_CELLS).long()
    f_lo64 = f(lo64)
    t = torch.zeros_like(lo)
    # the grid point at or above lo, else the next (a lo at a grid point's rounding); checked
    # in float64, because near d the chord slope and f' differ by less than float32's rounding
    for shift in (1, 0):
        candidate = points[(index + shift).clamp(max=TANGENT_GRID_CELLS)]
        c64 = candidate.double()
        t = torch.where((f(c64) - f_lo64) / (c64 - lo64) < df(c64), candidate, t)
    tangent_inside = ~rising(hi)
    slope = torch.where(tangent_inside, df(t), (f(hi) - f_lo) / (hi - lo))
    eps = torch.finfo(lo.dtype).eps
    pad = 8 * eps * (1 + f_lo.abs() + slope * torch.maximum(lo.abs(), hi.abs()))
    return slope, f_lo - slope * lo + pad


def _sigmoid_derivative(x):
    s = torch.sigmoid(x)
    return s * (1 - s)


def _tanh_derivative(x):
    return 1 - torch.tanh(x) ** 2


def convex_lines(f, df, lo, hi):
    """Chord above, tangent at the midpoint below, for a convex ``f`` on ``[lo, hi]``."""
    f_lo, f_hi = f(lo), f(hi)
    chord = (f_hi - f_lo) / safe_width(lo, hi)
    mid = (lo + hi) / 2
    slope = df(mid)
    return slope, f(mid) - slope * mid, chord, f_lo - chord * lo


def concave_lines(f, df, lo, hi):
    neg = convex_lines(lambda x: -f(x), lambda x: -df(x), lo, hi)
    return -neg[2], -neg[3], -neg[0], -neg[1]


class ExpRule(MonotoneRule):
    def fn(self, ctx, x):
        return torch.exp(x)

    def relax(self, ctx, lo, hi):
        return convex_lines(torch.exp, torch.exp, lo, hi)


class ReciprocalRule(ActivationRule):
    """``1 / x`` for ``x > 0`` (convex and decreasing there)."""

    def interval(self, ctx, lo, hi):
        if (lo <= 0).any():
            raise RobustTextError(
                f"{ctx.description}: the reciprocal of an interval that reaches 0 or below is "
                f"unbounded (at {ctx.where})"
            )
        return 1 / hi, 1 / lo

    def relax(self, ctx, lo, hi):
        return convex_lines(torch.reciprocal, lambda x: -1 / (x * x), lo, hi)


class SqrtRule(MonotoneRule):
    """``sqrt(x)``; inputs are non-negative wherever the model is defined, so the lower bound is
    clipped at 0."""

    def fn(self, ctx, x):
        return torch.sqrt(x.clamp(min=0))

    def relax(self, ctx, lo, hi):
        lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        tiny = torch.finfo(lo.dtype).tiny
        return concave_lines(torch.sqrt, lambda x: 0.5 / torch.sqrt(x.clamp(min=tiny)), lo, hi)


class SquareRule(ActivationRule):
    """``x * x``, ``x ** 2``, ``torch.square(x)``: convex, not monotone (0 inside an interval
    across 0)."""

    def interval(self, ctx, lo, hi):
        low = torch.where((lo < 0) & (hi > 0), torch.zeros_like(lo),
                          torch.minimum(lo * lo, hi * hi))
        return low, torch.maximum(lo * lo, hi * hi)

    def relax(self, ctx, lo, hi):
        return convex_lines(torch.square, lambda x: 2 * x, lo, hi)


def _gelu_gap(approximate: str):
    """``g(t) = t - gelu(t)`` for ``t >= 0`` rises from 0 to its maximum at ``t*`` and falls
    back to 0; ``gelu(x) = relu(x) - g(|x|)``. Returns ``(t*, g(t*))`` in float64, found by a
    golden-section search (``g(t*)`` plus a margin for the search's error)."""
    def g(t):
        x = torch.tensor(t, dtype=torch.float64)
        return float(x - F.gelu(x, approximate=approximate))

    a, b = 0.0, 3.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if g(c) > g(d):
            b = d
        else:
            a = c
    t = (a + b) / 2
    return t, g(t) + 1e-12


_GELU_GAPS = {approximate: _gelu_gap(approximate) for approximate in ("none", "tanh")}


class GELURule(ActivationRule):
    """``gelu(x) = x Phi(x)``, exact (erf) or the tanh approximation; not monotone.

    Both forms are ``relu(x) - g(|x|)`` with ``0 <= g <= g*``, ``g`` rising on ``[0, t*]`` and
    falling after. Interval: gelu falls on ``(-inf, -t*]`` and rises after, so its maximum is at
    an end and its minimum ``-g*`` where ``-t*`` lies inside. Lines: ReLU's triangle lowered by
    the range of ``g`` over the interval's ``|x|`` (``relu_lower - max g <= gelu <= relu_upper -
    min g``). ``g*`` and ``t*`` come from a search in float64; a margin of a few ulps covers the
    rounding of gelu itself.
    """

    def _approximate(self, ctx):
        if ctx.module is not None:
            return ctx.module.approximate
        return ctx.arg("approximate", "none")

    def _gap_range(self, ctx, lo, hi):
        """``min g`` and ``max g`` over ``|x|`` for ``x`` in ``[lo, hi]``, padded outwards."""
        approximate = self._approximate(ctx)
        t_star, g_star = _GELU_GAPS[approximate]
        across = (lo < 0) & (hi > 0)
        a = torch.where(across, torch.zeros_like(lo), torch.minimum(lo.abs(), hi.abs()))
        b = torch.maximum(lo.abs(), hi.abs())
        ga, gb = a - F.gelu(a, approximate=approximate), b - F.gelu(b, approximate=approximate)
        pad = 8 * torch.finfo(lo.dtype).eps * (b + 1)
        g_min = (torch.minimum(ga, gb) - pad).clamp(min=0)
        g_max = torch.where((a <= t_star) & (b >= t_star), torch.full_like(lo, g_star),
                            torch.maximum(ga, gb)) + pad
        return g_min, g_max

    def interval(self, ctx, lo, hi):
        approximate = self._approximate(ctx)
        t_star, g_star = _GELU_GAPS[approximate]
        f_lo, f_hi = F.gelu(lo, approximate=approximate), F.gelu(hi, approximate=approximate)
        pad = 8 * torch.finfo(lo.dtype).eps * (torch.maximum(lo.abs(), hi.abs()) + 1)
        inside = (lo <= -t_star) & (hi >= -t_star)
        low = torch.where(inside, torch.full_like(lo, -g_star), torch.minimum(f_lo, f_hi))
        return low - pad, torch.maximum(f_lo, f_hi) + pad

    def relax(self, ctx, lo, hi):
        slope_l, icpt_l, slope_u, icpt_u = _triangle(lo, hi, 0.0)
        g_min, g_max = self._gap_range(ctx, lo, hi)
        return slope_l, icpt_l - g_max, slope_u, icpt_u - g_min


# -- registrations --------------------------------------------------------------------------
_IN = {"input": DATA}
_INPLACE = {"inplace": ANY}
_SLOPE = satisfies(lambda s: isinstance(s, (int, float)) and 0 <= s <= 1,
                   "a negative_slope in [0, 1]")
register(ReLURule(), nn.ReLU, params=_IN, attrs=_INPLACE, writes_input="inplace")
register(ReLURule(), F.relu, params={**_IN, **_INPLACE}, writes_input="inplace")
register(ReLURule(), torch.relu, "relu", params=_IN)
register(ReLURule(), torch.relu_, F.relu_, "relu_", params=_IN, writes_input=True)
register(LeakyReLURule(), nn.LeakyReLU, params=_IN,
         attrs={"negative_slope": _SLOPE, **_INPLACE}, writes_input="inplace")
register(LeakyReLURule(), F.leaky_relu, params={**_IN, "negative_slope": _SLOPE, **_INPLACE},
         writes_input="inplace")
_LIMIT = satisfies(lambda v: v is None or (isinstance(v, (int, float))
                                          and not isinstance(v, bool) and math.isfinite(v)),
                   "a constant number or None")
_HARDTANH = {"min_val": _LIMIT, "max_val": _LIMIT}
register(ClampRule(), torch.clamp, "clamp", params={**_IN, "min": _LIMIT, "max": _LIMIT})
register(ClampRule(), nn.Hardtanh, params=_IN, attrs={**_HARDTANH, **_INPLACE},
         writes_input="inplace")
register(ClampRule(), F.hardtanh, params={**_IN, **_HARDTANH, **_INPLACE}, writes_input="inplace")
# (F.sigmoid and F.tanh are Python functions that call the methods: torch.fx traces through
# them to "sigmoid" and "tanh", so they need no registration of their own)
register(SShapedRule(torch.sigmoid, _sigmoid_derivative), nn.Sigmoid, torch.sigmoid, "sigmoid",
         params=_IN)
register(SShapedRule(torch.tanh, _tanh_derivative), nn.Tanh, torch.tanh, "tanh", params=_IN)
_APPROXIMATE = only("none", "tanh")
register(GELURule(), nn.GELU, params=_IN, attrs={"approximate": _APPROXIMATE})
register(GELURule(), F.gelu, params={**_IN, "approximate": _APPROXIMATE})
register(ExpRule(), torch.exp, "exp", params=_IN)
register(ReciprocalRule(), torch.reciprocal, "reciprocal", params=_IN)
register(SqrtRule(), torch.sqrt, "sqrt", params=_IN)
SQUARE = SquareRule()
register(SQUARE, torch.square, "square", params=_IN)
register(SQUARE, torch.pow, operator.pow, "pow",
         params={"input": DATA, "exponent": only(2, expects="the power 2 of a bounded tensor")})
