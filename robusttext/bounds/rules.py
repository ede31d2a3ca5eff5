"""One bound rule per operation.

Every rule maps intervals forward (interval bound propagation) and linear bounds backward
(CROWN). A linear bound on a target is a pair ``(A, bias)`` with ``A`` of shape
``[batch, specs, *node_shape]``: ``target >= sum(A_lower * node) + bias_lower`` and
``target <= sum(A_upper * node) + bias_upper``. ``backward`` turns a linear bound in a node's
output into linear bounds in its bounded inputs plus bias terms ``[batch, specs]``.

Rules see the node through a ``NodeContext`` (engine.py): its bounded inputs, their intervals,
and ``call(substitutes)``, which runs the node with bounded inputs replaced by given tensors.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.errors import RobustTextError


def _sum_to_batch_spec(x: torch.Tensor) -> torch.Tensor:
    """``[batch, specs, ...] -> [batch, specs]``."""
    return x.flatten(2).sum(2) if x.dim() > 2 else x


def _unbroadcast(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``grad`` ``[batch, specs, *out]`` down to ``[batch, specs, *shape[1:]]``."""
    target = (grad.shape[0], grad.shape[1], *shape[1:])
    while grad.dim() > len(target):
        grad = grad.sum(2)
    for dim, size in enumerate(target):
        if size == 1 and grad.shape[dim] != 1:
            grad = grad.sum(dim, keepdim=True)
    return grad


def _with_spec_dim(t: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Align ``t`` (``[batch, *out]``, or broadcastable from the right) with ``A``
    ``[batch, specs, *out]``."""
    return t.unsqueeze(1) if t.dim() == A.dim() - 1 else t


def _bias(A: torch.Tensor | None, offset: torch.Tensor) -> torch.Tensor | int:
    """``sum(A * offset)`` per ``[batch, specs]``; ``A`` is first summed over the dimensions
    along which ``offset`` is constant (a convolution's bias is constant over space)."""
    if A is None:
        return 0
    offset = _with_spec_dim(offset, A)
    lead = A.dim() - offset.dim()
    constant_dims = [d for d in range(2, A.dim())
                     if d < lead or offset.shape[d - lead] == 1]
    if constant_dims:
        A = A.sum(constant_dims, keepdim=True)
    return _sum_to_batch_spec(A * offset)


# -------------------------------------------------------------------------------------------
# Affine operations
# -------------------------------------------------------------------------------------------
class AffineRule:
    """``y = L(x_1, ..., x_n) + offset`` with ``L`` linear in the bounded inputs.

    Forward: centre/radius form, ``L(c) + offset +- |L|(r)``. Backward: the transpose of ``L``
    by a vector-Jacobian product (exact for linear maps), the offset into the bias.
    Subclasses give ``radius`` (``|L|`` applied to the radii) and may give a faster transpose.
    """

    def radius(self, ctx, radii: dict) -> torch.Tensor:
        raise NotImplementedError

    def ibp(self, ctx):
        centers, radii = {}, {}
        for node in ctx.inputs:
            lo, hi = ctx.interval(node)
            centers[node], radii[node] = (lo + hi) / 2, (hi - lo) / 2
        center = ctx.call(centers)
        spread = self.radius(ctx, radii)
        if spread.shape != center.shape:
            spread = spread.expand_as(center)
        return center - spread, center + spread

    def offset(self, ctx) -> torch.Tensor:
        """``[batch, *out]``: the output at zero bounded inputs."""
        return ctx.call({n: torch.zeros_like(ctx.example(n)) for n in ctx.inputs})

    def transpose(self, ctx, A: torch.Tensor) -> list[torch.Tensor]:
        """``A`` ``[batch, specs, *out]`` -> one ``[batch, specs, *in]`` per bounded input."""
        inputs = ctx.inputs
        zeros = [torch.zeros_like(ctx.example(n)) for n in inputs]

        def linear_part(*xs):
            return ctx.call(dict(zip(inputs, xs)))

        _, vjp = torch.func.vjp(linear_part, *zeros)
        grads = torch.vmap(vjp)(A.transpose(0, 1))
        return [g.transpose(0, 1) for g in grads]

    def backward(self, ctx, A_lower, A_upper):
        offset = self.offset(ctx)
        pairs = [self.transpose(ctx, A) if A is not None else [None] * len(ctx.inputs)
                 for A in (A_lower, A_upper)]
        return list(zip(*pairs)), _bias(A_lower, offset), _bias(A_upper, offset)


class StructuralRule(AffineRule):
    """Operations that move, copy, average or sum entries with non-negative weights
    (view, permute, getitem, cat, mean, sum, average pooling, dropout in eval, ...): ``|L| = L``.
    """

    def radius(self, ctx, radii):
        return ctx.call(radii, zero_constants=True)

    def transpose(self, ctx, A):
        from robusttext.bounds.transposes import fast_transpose

        direct = fast_transpose(ctx, A)
        return direct if direct is not None else super().transpose(ctx, A)

    def offset(self, ctx):
        if not any(ctx.is_node(a) and not ctx.is_bounded(a)
                   and isinstance(ctx.constant(a), torch.Tensor)
                   and ctx.constant(a).is_floating_point() for a in _flat_args(ctx)):
            example = ctx.example(ctx.inputs[0])
            return torch.zeros((), dtype=example.dtype, device=example.device)
        return super().offset(ctx)

    def ibp(self, ctx):
        # Monotone in every bounded input: map the endpoints directly.
        los = {n: ctx.interval(n)[0] for n in ctx.inputs}
        his = {n: ctx.interval(n)[1] for n in ctx.inputs}
        return ctx.call(los), ctx.call(his)


def _flat_args(ctx):
    """Every argument of the node, lists and tuples opened."""
    out = []
    for a in (*ctx.node_args(), *ctx.node_kwargs().values()):
        out.extend(a if isinstance(a, (list, tuple)) else [a])
    return out


class AddRule(AffineRule):
    """``x + y`` (either may be bounded) and ``x - y`` (``negate_second``)."""

    def __init__(self, negate_second: bool = False):
        self.negate_second = negate_second

    def transpose(self, ctx, A):
        if ctx.node_kwargs().get("alpha", 1) != 1:
            return super().transpose(ctx, A)
        totals = {}
        for position, arg in enumerate(ctx.node_args()[:2]):
            if ctx.is_bounded(arg):
                part = _unbroadcast(A, ctx.example(arg).shape)
                if position == 1 and self.negate_second:
                    part = -part
                totals[arg] = part if arg not in totals else totals[arg] + part
        return [totals[n] for n in ctx.inputs]

    def radius(self, ctx, radii):
        total = 0
        for r in radii.values():
            total = total + r
        return total

    def ibp(self, ctx):
        if ctx.node_kwargs().get("alpha", 1) != 1:
            return super().ibp(ctx)
        args = ctx.node_args()
        sides = []
        for arg in args[:2]:
            if ctx.is_bounded(arg):
                sides.append(ctx.interval(arg))
            else:
                value = ctx.constant(arg) if ctx.is_node(arg) else arg
                sides.append((value, value))
        (a_lo, a_hi), (b_lo, b_hi) = sides
        if self.negate_second:
            return a_lo - b_hi, a_hi - b_lo
        return a_lo + b_lo, a_hi + b_hi


class NegRule(AffineRule):
    def radius(self, ctx, radii):
        return next(iter(radii.values()))

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        return -hi, -lo


class ScaleRule(AffineRule):
    """``x * c``, ``c * x`` and ``x / c`` with ``c`` a constant (tensor or number)."""

    def __init__(self, divide: bool = False):
        self.divide = divide

    def _factor(self, ctx):
        args = ctx.node_args()
        bounded_at = [i for i, a in enumerate(args[:2]) if ctx.is_bounded(a)]
        if self.divide and 1 in bounded_at:
            raise RobustTextError(
                f"{ctx.description}: division by a bounded tensor is not supported; write "
                f"x * torch.reciprocal(y) (used at {ctx.where})"
            )
        if len(bounded_at) != 1:
            raise RobustTextError(
                f"{ctx.description}: the product of two bounded tensors is not supported "
                f"(used at {ctx.where})"
            )
        other = args[1 - bounded_at[0]]
        return ctx.constant(other) if ctx.is_node(other) else other

    def ibp(self, ctx):
        # Scaling by a constant is monotone in each entry: map both ends, then order them.
        factor = self._factor(ctx)
        lo, hi = ctx.interval(ctx.inputs[0])
        a, b = (lo / factor, hi / factor) if self.divide else (lo * factor, hi * factor)
        if not isinstance(factor, torch.Tensor):
            return (a, b) if factor >= 0 else (b, a)
        return torch.minimum(a, b), torch.maximum(a, b)

    def radius(self, ctx, radii):
        factor = self._factor(ctx)
        r = next(iter(radii.values()))
        magnitude = abs(factor) if not isinstance(factor, torch.Tensor) else factor.abs()
        return r / magnitude if self.divide else r * magnitude

    def transpose(self, ctx, A):
        factor = self._factor(ctx)
        if self.divide:
            factor = 1 / factor
        shape = ctx.example(ctx.inputs[0]).shape
        if isinstance(factor, torch.Tensor):
            factor = _with_spec_dim(factor, A)
        return [_unbroadcast(A * factor, shape)]

    def offset(self, ctx):
        return torch.zeros((), dtype=ctx.example(ctx.inputs[0]).dtype,
                           device=ctx.example(ctx.inputs[0]).device)


def _weight_and_bias(ctx):
    """Weight and bias of a Linear/Conv node, as a module call or a functional call."""
    module = ctx.module
    if module is not None:
        return module.weight, module.bias
    args = ctx.node_args()
    kwargs = ctx.node_kwargs()
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    for name, value in (("weight", weight), ("bias", bias)):
        if ctx.is_node(value) and ctx.is_bounded(value):
            raise RobustTextError(
                f"{ctx.description}: a bounded {name} is not supported (used at {ctx.where})"
            )
    weight = ctx.constant(weight) if ctx.is_node(weight) else weight
    bias = ctx.constant(bias) if ctx.is_node(bias) else bias
    return weight, bias


def _sum_and_spread(lo, hi, apply):
    """Interval of an affine map ``y = W x + b`` on ``[lo, hi]`` with two products:
    ``S = (W/2)(lo + hi) + b`` and ``D = (|W|/2)(hi - lo)`` give ``[S - D, S + D]``.

    ``apply(x, scale, absolute, with_bias)`` runs the layer on ``x`` with its weight times
    ``scale`` (made absolute when asked), adding the bias when asked.
    """
    total = apply(lo + hi, 0.5, False, True)
    spread = apply(hi - lo, 0.5, True, False)
    return total - spread, total + spread


class LinearRule(AffineRule):
    def ibp(self, ctx):
        weight, bias = _weight_and_bias(ctx)
        lo, hi = ctx.interval(ctx.inputs[0])

        def apply(x, scale, absolute, with_bias):
            w = weight.abs() * scale if absolute else weight * scale
            return F.linear(x, w, bias if with_bias else None)

        return _sum_and_spread(lo, hi, apply)

    def radius(self, ctx, radii):
        weight, _ = _weight_and_bias(ctx)
        return F.linear(next(iter(radii.values())), weight.abs())

    def transpose(self, ctx, A):
        weight, _ = _weight_and_bias(ctx)
        return [A @ weight]

    def offset(self, ctx):
        _, bias = _weight_and_bias(ctx)
        if bias is None:
            return torch.zeros((), dtype=ctx.example(ctx.inputs[0]).dtype,
                               device=ctx.example(ctx.inputs[0]).device)
        return bias


class ConvRule(AffineRule):
    """Conv1d/Conv2d modules and functions (zero padding)."""

    def _params(self, ctx):
        module = ctx.module
        if module is not None:
            if module.padding_mode != "zeros":
                raise RobustTextError(
                    f"{ctx.description}: padding_mode {module.padding_mode!r} is not supported "
                    f"(used at {ctx.where})"
                )
            return (module.weight, module.bias, module.stride, module.padding, module.dilation,
                    module.groups)
        weight, bias = _weight_and_bias(ctx)
        args, kwargs = ctx.node_args(), ctx.node_kwargs()
        names = ["stride", "padding", "dilation", "groups"]
        defaults = [1, 0, 1, 1]
        values = [args[3 + i] if len(args) > 3 + i else kwargs.get(n, d)
                  for i, (n, d) in enumerate(zip(names, defaults))]
        return (weight, bias, *values)

    def ibp(self, ctx):
        weight, bias, stride, padding, dilation, groups = self._params(ctx)
        conv = F.conv1d if weight.dim() == 3 else F.conv2d
        lo, hi = ctx.interval(ctx.inputs[0])

        def apply(x, scale, absolute, with_bias):
            w = weight.abs() * scale if absolute else weight * scale
            return conv(x, w, bias if with_bias else None, stride, padding, dilation, groups)

        return _sum_and_spread(lo, hi, apply)

    def radius(self, ctx, radii):
        weight, _, stride, padding, dilation, groups = self._params(ctx)
        conv = F.conv1d if weight.dim() == 3 else F.conv2d
        return conv(next(iter(radii.values())), weight.abs(), None, stride, padding, dilation,
                    groups)

    def transpose(self, ctx, A):
        weight, _, stride, padding, dilation, groups = self._params(ctx)
        if isinstance(padding, str):
            return super().transpose(ctx, A)
        in_shape = ctx.example(ctx.inputs[0]).shape
        b, s = A.shape[:2]
        flat = A.reshape(b * s, *A.shape[2:])
        spatial = weight.dim() - 2

        def as_tuple(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v,) * spatial

        stride, padding, dilation = as_tuple(stride), as_tuple(padding), as_tuple(dilation)
        out_size = flat.shape[2:]
        kernel = weight.shape[2:]
        # conv_transpose needs output_padding to land on the input's exact size
        output_padding = tuple(
            in_shape[2 + i]
            - ((out_size[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + 1)
            for i in range(spatial)
        )
        conv_t = F.conv_transpose1d if spatial == 1 else F.conv_transpose2d
        back = conv_t(flat, weight, None, stride, padding, output_padding, groups, dilation)
        return [back.view(b, s, *in_shape[1:])]

    def offset(self, ctx):
        weight, bias, *_ = self._params(ctx)
        example = ctx.example(ctx.inputs[0])
        if bias is None:
            return torch.zeros((), dtype=example.dtype, device=example.device)
        return bias.view(-1, *([1] * (weight.dim() - 2)))


class BatchNormRule(AffineRule):
    """BatchNorm in eval mode: a per-channel scale and shift."""

    def _scale_shift(self, ctx):
        module = ctx.module
        if module is None:
            raise RobustTextError(f"{ctx.description}: use nn.BatchNorm modules (at {ctx.where})")
        if module.training or module.running_var is None:
            raise RobustTextError(
                f"{ctx.description} is in training mode (or keeps no running statistics); its "
                "output depends on the whole batch. Call model.eval() before computing bounds."
            )
        scale = torch.rsqrt(module.running_var + module.eps)
        if module.weight is not None:
            scale = scale * module.weight
        shift = -module.running_mean * scale
        if module.bias is not None:
            shift = shift + module.bias
        dims = ctx.example(ctx.inputs[0]).dim() - 2
        view = (-1, *([1] * dims))
        return scale.view(view), shift.view(view)

    def radius(self, ctx, radii):
        scale, _ = self._scale_shift(ctx)
        return next(iter(radii.values())) * scale.abs()

    def transpose(self, ctx, A):
        scale, _ = self._scale_shift(ctx)
        return [A * scale]

    def offset(self, ctx):
        return self._scale_shift(ctx)[1]


class MatmulRule(AffineRule):
    """``x @ W`` or ``W @ x`` with ``W`` constant."""

    def radius(self, ctx, radii):
        args = ctx.node_args()
        if all(ctx.is_bounded(a) for a in args[:2]):
            raise RobustTextError(
                f"{ctx.description}: the product of two bounded tensors is not supported "
                f"(used at {ctx.where})"
            )
        r = next(iter(radii.values()))
        if ctx.is_bounded(args[0]):
            return r @ ctx.constant(args[1]).abs()
        return ctx.constant(args[0]).abs() @ r


# -------------------------------------------------------------------------------------------
# Monotone elementwise activations
# -------------------------------------------------------------------------------------------
class ActivationRule:
    """A monotone non-decreasing elementwise function with linear relaxations.

    ``relax(lower, upper)`` gives ``(slope_l, icpt_l, slope_u, icpt_u)`` with
    ``slope_l * x + icpt_l <= f(x) <= slope_u * x + icpt_u`` on ``[lower, upper]``.
    """

    def function(self, ctx, x):
        return ctx.call({ctx.inputs[0]: x})

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        return self.function(ctx, lo), self.function(ctx, hi)

    def backward(self, ctx, A_lower, A_upper):
        lo, hi = ctx.interval(ctx.inputs[0])
        relax = self.relax(ctx, lo, hi)
        return each_side(A_lower, A_upper, lambda A, sign: through_lines(A, relax, sign))


def each_side(A_lower, A_upper, side):
    """The backward result of a single-input rule from ``side(A, sign) -> (A', bias)``, run for
    the lower (sign -1) and the upper (sign +1) bound; a side that is not wanted (``A`` None)
    stays None with bias 0."""
    (a_l, b_l), (a_u, b_u) = (side(A, sign) if A is not None else (None, 0)
                              for A, sign in ((A_lower, -1), (A_upper, 1)))
    return [(a_l, a_u)], b_l, b_u


def through_lines(A, relax, sign):
    """Push ``A`` ``[batch, specs, *shape]`` through elementwise lines
    ``(slope_l, icpt_l, slope_u, icpt_u)`` (each ``[batch, *shape]``, or broadcastable).

    For an upper bound (sign=+1) positive coefficients take the upper line and negative ones the
    lower line; for a lower bound the reverse. Returns ``(A', bias [batch, specs])``.
    """
    slope_l, icpt_l, slope_u, icpt_u = (t.unsqueeze(1) for t in relax)
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    if sign > 0:
        return pos * slope_u + neg * slope_l, _sum_to_batch_spec(pos * icpt_u + neg * icpt_l)
    return pos * slope_l + neg * slope_u, _sum_to_batch_spec(pos * icpt_l + neg * icpt_u)


def _safe_width(lo, hi):
    return (hi - lo).clamp(min=torch.finfo(lo.dtype).tiny)


class ReLURule(ActivationRule):
    """Triangle relaxation; adaptive lower slope (1 where ``u > -l``, else 0)."""

    def relax(self, ctx, lo, hi):
        unstable = (lo < 0) & (hi > 0)
        active = lo >= 0
        upper_slope = torch.where(unstable, hi / _safe_width(lo, hi), active.to(lo.dtype))
        upper_icpt = torch.where(unstable, -upper_slope * lo, torch.zeros_like(lo))
        lower_slope = torch.where(unstable, (hi > -lo).to(lo.dtype), active.to(lo.dtype))
        return lower_slope, torch.zeros_like(lo), upper_slope, upper_icpt

    def backward(self, ctx, A_lower, A_upper):
        """Fewer passes over ``A`` than the general rule: the lower line has no intercept, so
        the bias comes only from the coefficients that take the upper line."""
        lo, hi = ctx.interval(ctx.inputs[0])
        slope_l, _, slope_u, icpt_u = self.relax(ctx, lo, hi)
        slope_l, slope_u, icpt_u = (t.unsqueeze(1) for t in (slope_l, slope_u, icpt_u))

        def side(A, sign):
            takes_upper = A >= 0 if sign > 0 else A <= 0
            upper_part = A.clamp(min=0) if sign > 0 else A.clamp(max=0)
            return (A * torch.where(takes_upper, slope_u, slope_l),
                    torch.einsum("bsn,bn->bs", upper_part.flatten(2),
                                 icpt_u.squeeze(1).flatten(1)))

        return each_side(A_lower, A_upper, side)


class LeakyReLURule(ActivationRule):
    """``max(x, s x)`` with ``0 <= s <= 1``: chord above, adaptive slope below."""

    def _slope(self, ctx):
        if ctx.module is not None:
            s = ctx.module.negative_slope
        else:
            args, kwargs = ctx.node_args(), ctx.node_kwargs()
            s = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
        if not 0 <= s <= 1:
            raise RobustTextError(
                f"{ctx.description}: negative_slope must lie in [0, 1], got {s} (at {ctx.where})"
            )
        return s

    def relax(self, ctx, lo, hi):
        s = self._slope(ctx)
        unstable = (lo < 0) & (hi > 0)
        stable_slope = torch.where(lo >= 0, torch.ones_like(lo), torch.full_like(lo, s))
        chord = (hi - s * lo) / _safe_width(lo, hi)
        upper_slope = torch.where(unstable, chord, stable_slope)
        upper_icpt = torch.where(unstable, hi - chord * hi, torch.zeros_like(lo))
        adaptive = torch.where(hi > -lo, torch.ones_like(lo), torch.full_like(lo, s))
        lower_slope = torch.where(unstable, adaptive, stable_slope)
        return lower_slope, torch.zeros_like(lo), upper_slope, upper_icpt


class SShapedRule(ActivationRule):
    """Sigmoid and tanh: convex below 0, concave above, derivative peaked at 0.

    Convex part: chord above, tangent at the midpoint below; concave part the reverse. An
    interval across 0: lines through the endpoints with the smaller endpoint derivative, sound
    because the derivative on the interval is never smaller than at its ends.
    """

    def __init__(self, fn, derivative):
        self.fn, self.derivative = fn, derivative

    def function(self, ctx, x):
        return self.fn(x)

    def relax(self, ctx, lo, hi):
        f_lo, f_hi = self.fn(lo), self.fn(hi)
        mid = (lo + hi) / 2
        f_mid, d_mid = self.fn(mid), self.derivative(mid)
        chord = (f_hi - f_lo) / _safe_width(lo, hi)
        chord_icpt = f_lo - chord * lo
        tangent_icpt = f_mid - d_mid * mid
        k = torch.minimum(self.derivative(lo), self.derivative(hi))
        convex, concave = hi <= 0, lo >= 0
        lower_slope = torch.where(convex, d_mid, torch.where(concave, chord, k))
        lower_icpt = torch.where(convex, tangent_icpt,
                                 torch.where(concave, chord_icpt, f_lo - k * lo))
        upper_slope = torch.where(convex, chord, torch.where(concave, d_mid, k))
        upper_icpt = torch.where(convex, chord_icpt,
                                 torch.where(concave, tangent_icpt, f_hi - k * hi))
        # Degenerate intervals: constant lines (f is non-decreasing).
        narrow = (hi - lo) < 1e-6
        zero = torch.zeros_like(lo)
        return (torch.where(narrow, zero, lower_slope), torch.where(narrow, f_lo, lower_icpt),
                torch.where(narrow, zero, upper_slope), torch.where(narrow, f_hi, upper_icpt))


def _sigmoid_derivative(x):
    s = torch.sigmoid(x)
    return s * (1 - s)


def _tanh_derivative(x):
    return 1 - torch.tanh(x) ** 2


# -------------------------------------------------------------------------------------------
# Max pooling
# -------------------------------------------------------------------------------------------
class MaxPoolRule:
    """Max pooling. Forward: monotone. Backward: below by the entry with the largest lower bound
    in the window, above by the window's largest upper bound (a constant)."""

    def _pool(self, ctx, x, return_indices):
        module = ctx.module
        spatial = x.dim() - 2
        if module is not None:
            fn = F.max_pool1d if spatial == 1 else F.max_pool2d
            return fn(x, module.kernel_size, module.stride, module.padding, module.dilation,
                      ceil_mode=module.ceil_mode, return_indices=return_indices)
        args, kwargs = ctx.node_args(), dict(ctx.node_kwargs())
        kwargs["return_indices"] = return_indices
        call_args = [x, *[ctx.constant(a) if ctx.is_node(a) else a for a in args[1:]]]
        return ctx.node.target(*call_args, **kwargs)

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        if ctx.module is not None and ctx.module.return_indices:
            raise RobustTextError(f"{ctx.description}: return_indices=True is not supported")
        return self._pool(ctx, lo, False), self._pool(ctx, hi, False)

    def backward(self, ctx, A_lower, A_upper):
        lo, hi = ctx.interval(ctx.inputs[0])
        _, indices = self._pool(ctx, lo, True)
        top = self._pool(ctx, hi, False)
        b, c = lo.shape[:2]

        def select_transpose(A):  # A [b, s, c, *out] -> [b, s, c, *in] (scatter-add)
            s = A.shape[1]
            flat_idx = indices.reshape(b, 1, c, -1).expand(b, s, c, -1)
            out = A.new_zeros(b, s, c, lo[0, 0].numel())
            out.scatter_add_(3, flat_idx, A.reshape(b, s, c, -1))
            return out.view(b, s, *lo.shape[1:])

        def side(A, sign):
            # Coefficients that want the output large (sign * A > 0) take the constant upper
            # line; the others take the selected entry (a lower line).
            takes_upper = A.clamp(min=0) if sign > 0 else A.clamp(max=0)
            return (select_transpose(A - takes_upper),
                    _sum_to_batch_spec(takes_upper * top.unsqueeze(1)))

        return each_side(A_lower, A_upper, side)


RULES = {
    "linear": LinearRule(),
    "conv": ConvRule(),
    "batch_norm": BatchNormRule(),
    "structural": StructuralRule(),
    "add": AddRule(),
    "sub": AddRule(negate_second=True),
    "neg": NegRule(),
    "mul": ScaleRule(),
    "div": ScaleRule(divide=True),
    "matmul": MatmulRule(),
    "relu": ReLURule(),
    "leaky_relu": LeakyReLURule(),
    "sigmoid": SShapedRule(torch.sigmoid, _sigmoid_derivative),
    "tanh": SShapedRule(torch.tanh, _tanh_derivative),
    "max_pool": MaxPoolRule(),
}

# Operations whose relaxation needs bounds on their input (pre-activation bounds).
NONLINEAR = {"relu", "leaky_relu", "sigmoid", "tanh", "max_pool", "product", "square",
             "bilinear_matmul", "exp", "reciprocal", "sqrt", "softmax"}

# Operations that only rearrange entries: a box stays a box.
REARRANGING_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "squeeze",
                       "unsqueeze", "contiguous"}
REARRANGING_MODULES = (nn.Flatten, nn.Identity, nn.Dropout)

