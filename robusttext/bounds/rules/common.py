"""What every rule shares: the ``Rule`` base, linear-bound arithmetic and sound intervals.

A linear bound on a target is a pair ``(A, bias)`` with ``A`` of shape ``[batch, specs,
*node_shape]``: ``target >= sum(A_lower * node) + bias_lower`` and ``target <= sum(A_upper *
node) + bias_upper``. ``backward`` turns a linear bound in a node's output into linear bounds in
its bounded inputs plus bias terms ``[batch, specs]``.

Rules see the node through a ``NodeContext`` (engine.py): its bounded inputs, their intervals,
its arguments by name (``arg``) and ``call(substitutes)``, which runs the node with bounded inputs
replaced by given tensors (never writing into them).
"""

from __future__ import annotations

import math

import torch

INF = float("inf")


class Rule:
    """Bounds of one operation. Properties (class attributes, overridable per instance):

    - ``linear``: affine in its bounded inputs, ``y = L(x) + offset`` (exact on a box of one
      input, and a specification can be folded into it);
    - ``keeps_box``: only moves entries, so a box of independent coordinates stays one;
    - ``needs_input_bounds``: its relaxation uses the interval of its inputs (CROWN tightens them
      first);
    - ``may_alias``: its output may share memory with its first input (a view);
    - ``overflow_free``: from sound intervals it cannot make a NaN or an infinity of the wrong
      sign (moves, clamps, bounded monotone functions), so the engine need not widen its result.
    """

    linear = False
    keeps_box = False
    needs_input_bounds = False
    may_alias = False
    overflow_free = False

    def check(self, ctx) -> None:
        """Refuse (raise RobustTextError) what the declared arguments cannot express, such as a
        dimension that turns out to be the batch dimension."""

    def select(self, ctx) -> Rule:
        """The rule for this call (some depend on which operands are bounded)."""
        return self

    def ibp(self, ctx):
        raise NotImplementedError

    def backward(self, ctx, A_lower, A_upper):
        raise NotImplementedError

    def slope_range(self, ctx):
        """The lower lines alpha-CROWN may choose from, or None (the default) where the rule
        has no family of lines to optimise: ``(crown, low, high)``, each ``[batch, *shape]``,
        such that for every slope ``a`` in ``[low, high]`` the line ``a x + icpt_l`` (the rule's
        own lower intercept, unchanged) lies below the function on the entry's interval;
        ``crown`` is the slope CROWN takes. A rule that offers it reads the chosen slopes in
        ``backward`` from ``ctx.optimised_slope(sign)``."""
        return None


def sound(lower: torch.Tensor, upper: torch.Tensor):
    """An interval whose overflowed entries are widened the right way: a NaN (``inf - inf``) or
    an infinity of the wrong sign (``-inf`` as an upper bound) becomes the side's infinity."""
    return widen(lower, -1), widen(upper, 1)


def known_finite(lower: torch.Tensor, upper: torch.Tensor) -> bool:
    """True when every entry of the interval is finite, found by two sums on a CPU (cheaper than
    rewriting both tensors); False on an accelerator, where the test would wait for the device."""
    return lower.device.type == "cpu" and bool(
        torch.isfinite(lower.detach().sum() + upper.detach().sum()))


def widen(bound, sign):
    """``bound`` as a lower (sign -1) or upper (sign +1) bound with NaN and wrong-sign
    infinities replaced by ``sign * inf``."""
    if bound is None or isinstance(bound, (int, float)):
        return bound
    return torch.nan_to_num(bound, nan=sign * INF, posinf=INF if sign > 0 else sign * INF,
                            neginf=-INF if sign < 0 else sign * INF)


def sum_to_batch_spec(x: torch.Tensor) -> torch.Tensor:
    """``[batch, specs, ...] -> [batch, specs]``."""
    return x.flatten(2).sum(2) if x.dim() > 2 else x


def unbroadcast(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``grad`` ``[batch, specs, *out]`` down to ``[batch, specs, *shape[1:]]``."""
    target = (grad.shape[0], grad.shape[1], *shape[1:])
    while grad.dim() > len(target):
        grad = grad.sum(2)
    for dim, size in enumerate(target):
        if size == 1 and grad.shape[dim] != 1:
            grad = grad.sum(dim, keepdim=True)
    return grad


def with_spec_dim(t: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Align ``t`` (``[batch, *out]``, or broadcastable from the right) with ``A``
    ``[batch, specs, *out]``."""
    return t.unsqueeze(1) if t.dim() == A.dim() - 1 else t


def bias_of(A: torch.Tensor | None, offset: torch.Tensor) -> torch.Tensor | int:
    """``sum(A * offset)`` per ``[batch, specs]``; ``A`` is first summed over the dimensions
    along which ``offset`` is constant (a convolution's bias is constant over space)."""
    if A is None:
        return 0
    offset = with_spec_dim(offset, A)
    lead = A.dim() - offset.dim()
    constant_dims = [d for d in range(2, A.dim())
                     if d < lead or offset.shape[d - lead] == 1]
    if constant_dims:
        A = A.sum(constant_dims, keepdim=True)
    return sum_to_batch_spec(A * offset)


def each_side(A_lower, A_upper, side):
    """The backward result of a single-input rule from ``side(A, sign) -> (A', bias)``, run for
    the lower (sign -1) and the upper (sign +1) bound; a side that is not wanted (``A`` None)
    stays None with bias 0."""
    (a_l, b_l), (a_u, b_u) = (side(A, sign) if A is not None else (None, 0)
                              for A, sign in ((A_lower, -1), (A_upper, 1)))
    return [(a_l, a_u)], b_l, b_u


def times(A: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``A * value`` with ``0 * inf = 0`` (a coefficient of 0 never takes an infinite term)."""
    product = A * value
    if not torch.isfinite(value).all():
        product = torch.where(A == 0, torch.zeros_like(product), product)
    return product


def constant_lines(ctx, A_lower, A_upper):
    """Backward through a node by its own interval alone (no coefficient reaches its inputs):
    sound whatever the rule, used where a relaxation's planes would not be finite."""
    lo, hi = ctx.output_interval()

    def side(A, sign):
        pos, neg = A.clamp(min=0), A.clamp(max=0)
        top, bottom = (hi, lo) if sign > 0 else (lo, hi)
        return sum_to_batch_spec(times(pos, top.unsqueeze(1)) + times(neg, bottom.unsqueeze(1)))

    return ([(None, None) for _ in ctx.inputs],
            side(A_lower, -1) if A_lower is not None else 0,
            side(A_upper, 1) if A_upper is not None else 0)


def through_lines(A, relax, sign):
    """Push ``A`` ``[batch, specs, *shape]`` through elementwise lines
    ``(slope_l, icpt_l, slope_u, icpt_u)`` (each ``[batch, *shape]``, or broadcastable).

    For an upper bound (sign=+1) positive coefficients take the upper line and negative ones the
    lower line; for a lower bound the reverse. A line already of ``A``'s rank (alpha-CROWN's
    slopes per specification, ``[batch, specs, *shape]``) is used as it is. Returns ``(A',
    bias [batch, specs])``.
    """
    slope_l, icpt_l, slope_u, icpt_u = (t if t.dim() == A.dim() else t.unsqueeze(1)
                                        for t in relax)
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    if sign > 0:
        return (pos * slope_u + neg * slope_l,
                sum_to_batch_spec(times(pos, icpt_u) + times(neg, icpt_l)))
    return (pos * slope_l + neg * slope_u,
            sum_to_batch_spec(times(pos, icpt_l) + times(neg, icpt_u)))


def rounding_factor(dtype, terms: int) -> float:
    """A relative error that covers rounding a sum of ``terms`` products in ``dtype``:
    ``(2 log2(terms) + 16)`` units of roundoff (pairwise and blocked sums grow with the depth of
    their tree; the constant covers the products, the line's own two operations and the sums of
    the layers that later carry the line to the input)."""
    return (2 * math.log2(max(terms, 2)) + 16) * torch.finfo(dtype).eps


def at_magnitude(lines, lo, hi):
    """Lines ``(slope_l, icpt_l, slope_u, icpt_u)`` on ``[lo, hi]`` with their intercepts moved
    outwards by the rounding of evaluating them at the inputs' magnitude.

    A line built in shifted coordinates (softmax's ``exp(x - m)``, ``m`` the row's largest upper
    end) and expressed in ``x`` has an intercept ``icpt - slope m`` as large as ``slope |x|``
    while its value is small: evaluated at ``|x|`` of 1e6 in float32 (logits around 1e6, a mask
    of -1e4 or the dtype's minimum added) the two terms cancel to within ``eps |slope| |x|``,
    0.06 |slope|, and CROWN carries that cancellation to the input (the bound left the model's
    outputs by up to 1,270 times a tolerance of 1e-5). The intercepts are padded by
    ``rounding_factor * (|slope| max(|lo|, |hi|) + |icpt|)``, which covers the evaluation of the
    line and the sums of the layers that carry ``slope x`` back to the input: sound at any
    magnitude, at the cost of a bound looser by the same few roundings (the interval bound,
    computed at the values' own magnitude, is then the tighter where it matters)."""
    slope_l, icpt_l, slope_u, icpt_u = lines
    magnitude = torch.maximum(lo.abs(), hi.abs())
    factor = rounding_factor(lo.dtype, lo[0].numel())
    pad_l = factor * (slope_l.abs() * magnitude + icpt_l.abs())
    pad_u = factor * (slope_u.abs() * magnitude + icpt_u.abs())
    return slope_l, icpt_l - pad_l, slope_u, icpt_u + pad_u


def safe_width(lo, hi):
    return (hi - lo).clamp(min=torch.finfo(lo.dtype).tiny)


def guarded(lines, f_min, f_max, lo, hi, narrow_too: bool = True):
    """Relaxation lines made sound for every interval: where a line is not finite, where the
    interval is too narrow for its slopes to be trusted in floating point, or where the image
    overflows, the constant lines ``f_min <= f <= f_max`` (the rule's own interval, sound at any
    width) replace them. ``lines``: ``(slope_l, icpt_l, slope_u, icpt_u)``; ``narrow_too``:
    False for piecewise-linear functions, whose lines need no care at small widths."""
    slope_l, icpt_l, slope_u, icpt_u = lines
    bad = ~(torch.isfinite(slope_l) & torch.isfinite(icpt_l) & torch.isfinite(slope_u)
                     & torch.isfinite(icpt_u) & torch.isfinite(f_min) & torch.isfinite(f_max))
    if narrow_too:
        scale = torch.maximum(lo.abs(), hi.abs()).clamp(min=1.0)
        bad = bad | ((hi - lo) <= torch.finfo(lo.dtype).eps ** 0.75 * scale)
    zero = torch.zeros_like(slope_l)
    return (torch.where(bad, zero, slope_l), torch.where(bad, f_min, icpt_l),
            torch.where(bad, zero, slope_u), torch.where(bad, f_max, icpt_u))

