"""Affine operations: Linear, Conv, BatchNorm (eval), add/sub/neg, scaling and ``x @ W``.

``AffineRule`` covers ``y = L(x_1, ..., x_n) + offset`` with ``L`` linear in the bounded inputs.
Forward: every rule maps the ends of its inputs' intervals, ``L+(hi) + L-(lo) + offset`` for the
upper end (``L+``, ``L-``: the map with only its positive or negative coefficients), never the
centre/radius form ``L(c) +- |L|(r)``: that form's rounding error grows with the width of the
interval, which an intermediate bound may have far beyond any value the model reaches (a wide
``[10, 1e133]`` after ``exp`` left ``c - r`` at 0, not 10, and the bound below the model's
output). Backward: the transpose of ``L`` by a vector-Jacobian product (exact for linear maps),
the offset into the bias; a rule may give a faster transpose.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds.rules.common import (
    Rule,
    bias_of,
    unbroadcast,
    with_spec_dim,
)
from robusttext.bounds.rules.registry import (
    ANY,
    DATA,
    is_int_or_ints,
    is_number,
    only,
    register,
    satisfies,
)
from robusttext.errors import RobustTextError


class AffineRule(Rule):
    linear = True

    def ibp(self, ctx):
        """``(lower, upper)`` from the ends of the inputs' intervals (see the module's note)."""
        raise NotImplementedError

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
        return list(zip(*pairs)), bias_of(A_lower, offset), bias_of(A_upper, offset)


def zero_offset(ctx) -> torch.Tensor:
    example = ctx.example(ctx.inputs[0])
    return torch.zeros((), dtype=example.dtype, device=example.device)


def operand(ctx, name):
    """The interval of an operand: its bounds when bounded, else ``(value, value)``."""
    value = ctx.arg(name)
    if ctx.is_bounded(value):
        return ctx.interval(value)
    return value, value


class AddRule(AffineRule):
    """``x + alpha * y`` and ``x - alpha * y`` (``negate_second``); either may be bounded."""

    def __init__(self, negate_second: bool = False):
        self.negate_second = negate_second

    def _factor(self, ctx):
        alpha = ctx.arg("alpha", 1)
        return -alpha if self.negate_second else alpha

    def transpose(self, ctx, A):
        factors = (1, self._factor(ctx))
        totals = {}
        for name, factor in zip(("input", "other"), factors):
            arg = ctx.arg(name)
            if ctx.is_bounded(arg):
                part = unbroadcast(A, ctx.example(arg).shape)
                part = part if factor == 1 else part * factor
                totals[arg] = part if arg not in totals else totals[arg] + part
        return [totals[n] for n in ctx.inputs]


    def ibp(self, ctx):
        (a_lo, a_hi), (b_lo, b_hi) = operand(ctx, "input"), operand(ctx, "other")
        factor = self._factor(ctx)
        if factor < 0:
            b_lo, b_hi = b_hi, b_lo
        if factor != 1:
            b_lo, b_hi = b_lo * factor, b_hi * factor
        return a_lo + b_lo, a_hi + b_hi


class NegRule(AffineRule):

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        return -hi, -lo

    def transpose(self, ctx, A):
        return [-A]

    def offset(self, ctx):
        return zero_offset(ctx)


def scaled_ends(lo, hi, factor, divide: bool = False):
    """``[lo, hi]`` times (or divided by) a constant ``factor`` (a number or a tensor that
    broadcasts): monotone in each entry, so both ends are mapped and then ordered."""
    a, b = (lo / factor, hi / factor) if divide else (lo * factor, hi * factor)
    if not isinstance(factor, torch.Tensor):
        return (a, b) if factor >= 0 else (b, a)
    if factor.device.type == "cpu" and bool((factor >= 0).all()):
        # Rounding is monotone, so a factor >= 0 keeps the order entry by entry (a mask, a
        # gate): no min/max to run, nor to differentiate. (A NaN factor fails the test.)
        return a, b
    return torch.minimum(a, b), torch.maximum(a, b)


class ScaleRule(AffineRule):
    """``x * c``, ``c * x`` and ``x / c`` with ``c`` a constant (tensor or number)."""

    def __init__(self, divide: bool = False):
        self.divide = divide

    def _factor(self, ctx):
        first, second = ctx.arg("input"), ctx.arg("other")
        if self.divide and ctx.is_bounded(second):
            raise RobustTextError(
                f"{ctx.description}: division by a bounded tensor is not supported; write "
                f"x * torch.reciprocal(y) (used at {ctx.where})"
            )
        return first if ctx.is_bounded(second) else second

    def ibp(self, ctx):
        factor = self._factor(ctx)
        lo, hi = ctx.interval(ctx.inputs[0])
        return scaled_ends(lo, hi, factor, self.divide)


    def transpose(self, ctx, A):
        factor = self._factor(ctx)
        if self.divide:
            factor = 1 / factor
        shape = ctx.example(ctx.inputs[0]).shape
        if isinstance(factor, torch.Tensor):
            factor = with_spec_dim(factor, A)
        return [unbroadcast(A * factor, shape)]

    def offset(self, ctx):
        return zero_offset(ctx)


def weight_and_bias(ctx):
    """Weight and bias of a Linear/Conv node, as a module call or a functional call."""
    if ctx.module is not None:
        return ctx.module.weight, ctx.module.bias
    return ctx.arg("weight"), ctx.arg("bias")


def _smaller_end(lo, hi) -> str | None:
    """``"lo"`` when every entry's lower end is the one nearer 0 (``|lo| <= |hi|``: after a ReLU,
    an image's pixels), ``"hi"`` when every upper end is, else None (also on an accelerator,
    where the test would wait for the device)."""
    if lo.device.type != "cpu":
        return None
    if bool((lo.abs() <= hi.abs()).all()):
        return "lo"
    if bool((hi.abs() <= lo.abs()).all()):
        return "hi"
    return None


def _map_ends(lo, hi, weight, bias, apply, channels: int):
    """Interval of an affine map ``y = W x + b`` on ``[lo, hi]`` from the ends:
    ``W+ lo + W- hi + b`` and ``W+ hi + W- lo + b`` (``W+``, ``W-``: the positive and negative
    entries of ``W``).

    When every entry's end nearer 0 is on the same side, say ``lo`` (``_smaller_end``), the
    same ends are ``W lo + b + W- w`` and ``W lo + b + W+ w`` with the width ``w = hi - lo``:
    two calls, ``W`` on ``lo`` and ``[W+; W-]`` (stacked output channels) on ``w``, three
    products' work. Every term is then at most a few times the end it stands for (the far
    end enters only through ``w``, with the sign that uses it), which is what the ends form
    guarantees. Otherwise ``[lo, hi]`` and ``[hi, lo]`` (side by side along the input
    channels) each times ``[W+, W-]``: four products' work.

    A point (``lo == hi``) gets ``lower == upper`` bit for bit either way (a zero width adds
    exact zeros; the two orders go through the same call on tensors of the same shape, where
    rows stacked into one product would not: a matrix product may round two equal rows
    differently), as a model's clean input must: a width of a few roundings there would be
    amplified by interval attention. ``apply(x, w, b)`` runs the layer on ``x`` with weight
    ``w`` ``[out, in, ...]`` and bias ``b``; ``channels`` is the channel dimension of the
    layer's input and output (1 for a convolution, -1 for a linear layer). Nothing is kept
    between calls (a ``W+`` kept would go stale when a weight is changed through ``.data``,
    which no version counter sees). An infinite end gives infinite or NaN entries (``0 *
    inf``), which the engine widens (``sound``); where rounding would put the lower end above
    the upper, the two are ordered.
    """
    positive, negative = weight.clamp(min=0), weight.clamp(max=0)
    nearer = _smaller_end(lo, hi)
    if nearer is not None:
        base = apply(lo if nearer == "lo" else hi, weight, bias)
        rises, falls = apply(hi - lo, torch.cat([positive, negative]), None).chunk(2, channels)
        if nearer == "lo":  # upward from lo: W+ w where the weight is positive
            lower, upper = base + falls, base + rises
        else:  # downward from hi
            lower, upper = base - rises, base - falls
        return torch.minimum(lower, upper), upper
    weights = torch.cat([positive, negative], 1)
    lower = apply(torch.cat([lo, hi], channels), weights, bias)
    upper = apply(torch.cat([hi, lo], channels), weights, bias)
    return torch.minimum(lower, upper), upper


class LinearRule(AffineRule):
    """``F.linear``/``nn.Linear``; right after the input, the input set may answer exactly (a
    substitution set's ``linear_interval``)."""

    def check(self, ctx):
        """A ``[batch]``-shaped input would be contracted over the batch: refused by name."""
        if ctx.example(ctx.inputs[0]).dim() < 2:
            raise RobustTextError(
                f"{ctx.description}: its input is [batch]-shaped, so the layer would sum over "
                f"the batch dimension 0 and mix the examples; give it [batch, ..., features] "
                f"(e.g. x[:, None]) (at {ctx.where})")

    def ibp(self, ctx):
        weight, bias = weight_and_bias(ctx)
        source = ctx.inputs[0]
        if ctx.is_input(source):
            exact = ctx.input_set.linear_interval(weight, bias)
            if exact is not None:
                ctx.exact = True
                return exact
        lo, hi = ctx.interval(source)

        return _map_ends(lo, hi, weight, bias, F.linear, -1)


    def transpose(self, ctx, A):
        weight, _ = weight_and_bias(ctx)
        return [A @ weight]

    def offset(self, ctx):
        _, bias = weight_and_bias(ctx)
        return zero_offset(ctx) if bias is None else bias


class ConvRule(AffineRule):
    """Conv1d/Conv2d modules and functions, zero padding. ``sequence``: the input is
    ``[batch, length, channels]`` and is transposed to channels first (the rewrite of
    ``conv(x.transpose(1, 2))``, graph.py); right after the input, the input set may answer
    exactly (a substitution set's ``conv1d_interval``)."""

    def __init__(self, sequence: bool = False):
        self.sequence = sequence

    def _params(self, ctx):
        module = ctx.module
        if module is not None:
            return (module.weight, module.bias, module.stride, module.padding, module.dilation,
                    module.groups)
        weight, bias = weight_and_bias(ctx)
        return (weight, bias, ctx.arg("stride", 1), ctx.arg("padding", 0),
                ctx.arg("dilation", 1), ctx.arg("groups", 1))

    def _channels_first(self, x):
        return x.transpose(1, 2) if self.sequence else x

    def check(self, ctx):
        """An unbatched input (``[channels, length]`` to a 1-D convolution) would read the batch
        dimension as the channels and mix the examples: refused by name."""
        weight = self._params(ctx)[0]
        rank = ctx.example(ctx.inputs[0]).dim()
        if rank != weight.dim():
            raise RobustTextError(
                f"{ctx.description}: its input has {rank} dimensions, so the convolution reads "
                f"it unbatched, the batch dimension 0 as channels, which mixes the examples; "
                f"robusttext bounds a convolution of [batch, channels, *spatial] ({weight.dim()} "
                f"dimensions) (at {ctx.where})")

    def ibp(self, ctx):
        weight, bias, stride, padding, dilation, groups = self._params(ctx)
        source = ctx.inputs[0]
        if self.sequence and ctx.is_input(source) and groups == 1:
            exact = ctx.input_set.conv1d_interval(weight, bias, _first(stride), _first(padding),
                                                  _first(dilation), transposed_input=True)
            if exact is not None:
                ctx.exact = True
                return exact
        conv = F.conv1d if weight.dim() == 3 else F.conv2d
        lo, hi = (self._channels_first(t) for t in ctx.interval(source))

        if groups != 1:  # the ends side by side would cross the groups: one pass per sign
            positive, negative = weight.clamp(min=0), weight.clamp(max=0)

            def run(x, w, b=None):
                return conv(x, w, b, stride, padding, dilation, groups)

            lower = run(lo, positive, bias) + run(hi, negative)
            upper = run(hi, positive, bias) + run(lo, negative)
            return torch.minimum(lower, upper), upper

        def apply(x, w, b):
            return conv(x, w, b, stride, padding, dilation, groups)

        return _map_ends(lo, hi, weight, bias, apply, 1)


    def transpose(self, ctx, A):
        weight, _, stride, padding, dilation, groups = self._params(ctx)
        if isinstance(padding, str):
            return super().transpose(ctx, A)
        in_shape = self._channels_first(ctx.example(ctx.inputs[0])).shape
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
        back = back.view(b, s, *in_shape[1:])
        return [back.transpose(2, 3) if self.sequence else back]

    def offset(self, ctx):
        weight, bias, *_ = self._params(ctx)
        if bias is None:
            return zero_offset(ctx)
        return bias.view(-1, *([1] * (weight.dim() - 2)))


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def conv1d_over_sequence(input, weight, bias, stride, padding, dilation, groups):
    """``conv1d(input.transpose(1, 2), ...)``: ``[batch, length, channels] -> [batch, out,
    out_length]``. ``fuse_sequence_conv`` (below, run by graph.py on every traced graph)
    rewrites that pattern into this call."""
    return F.conv1d(input.transpose(1, 2), weight, bias, stride, padding, dilation, groups)


def fuse_sequence_conv(module: fx.GraphModule) -> None:
    """Rewrite ``Conv1d(padding_mode='zeros')(x.transpose(1, 2))`` (or ``x.permute(0, 2, 1)``)
    into ``conv1d_over_sequence(x, weight, bias, ...)``: the same values, one operation whose
    rule sees the sequence layout ``[batch, length, channels]`` of ``x``."""
    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        conv = module.get_submodule(node.target)
        if type(conv) is not nn.Conv1d or conv.padding_mode != "zeros" or isinstance(
                conv.padding, str):
            continue
        turned = node.args[0]
        if not isinstance(turned, fx.Node) or not _is_sequence_transpose(turned):
            continue
        with graph.inserting_before(node):
            weight = graph.get_attr(f"{node.target}.weight")
            bias = graph.get_attr(f"{node.target}.bias") if conv.bias is not None else None
            fused = graph.call_function(conv1d_over_sequence, (
                turned.args[0], weight, bias, conv.stride, conv.padding, conv.dilation,
                conv.groups))
        fused.meta["stack_trace"] = node.meta.get("stack_trace")
        fused.meta["describe"] = f"Conv1d ({node.target})"
        node.replace_all_uses_with(fused)
        graph.erase_node(node)
        if not turned.users:
            graph.erase_node(turned)
    graph.lint()
    module.recompile()


def _is_sequence_transpose(node: fx.Node) -> bool:
    """True for ``x.transpose(1, 2)`` or ``x.permute(0, 2, 1)`` (a Conv1d's input is 3-D)."""
    if node.kwargs or not node.args:
        return False
    rest = node.args[1:]
    if node.op == "call_method" and node.target == "transpose" or (
            node.op == "call_function" and node.target is torch.transpose):
        return len(rest) == 2 and all(isinstance(d, int) for d in rest) and sorted(
            d % 3 for d in rest) == [1, 2]
    if node.op == "call_method" and node.target == "permute" or (
            node.op == "call_function" and node.target is torch.permute):
        dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
        return all(isinstance(d, int) for d in dims) and tuple(d % 3 for d in dims) == (0, 2, 1)
    return False


class BatchNormRule(AffineRule):
    """BatchNorm in eval mode: a per-channel scale and shift."""

    def _scale_shift(self, ctx):
        module = ctx.module
        scale = torch.rsqrt(module.running_var + module.eps)
        if module.weight is not None:
            scale = scale * module.weight
        shift = -module.running_mean * scale
        if module.bias is not None:
            shift = shift + module.bias
        dims = ctx.example(ctx.inputs[0]).dim() - 2
        view = (-1, *([1] * dims))
        return scale.view(view), shift.view(view)

    def ibp(self, ctx):
        scale, shift = self._scale_shift(ctx)
        lower, upper = scaled_ends(*ctx.interval(ctx.inputs[0]), scale)
        return lower + shift, upper + shift

    def transpose(self, ctx, A):
        scale, _ = self._scale_shift(ctx)
        return [A * scale]

    def offset(self, ctx):
        return self._scale_shift(ctx)[1]


class MatmulRule(AffineRule):
    """``x @ W`` or ``W @ x`` with ``W`` constant."""

    def ibp(self, ctx):
        first, second = ctx.arg("input"), ctx.arg("other")
        if ctx.is_bounded(first):
            lo, hi = ctx.interval(first)
            pos, neg = second.clamp(min=0), second.clamp(max=0)
            return lo @ pos + hi @ neg, hi @ pos + lo @ neg
        lo, hi = ctx.interval(second)
        pos, neg = first.clamp(min=0), first.clamp(max=0)
        return pos @ lo + neg @ hi, pos @ hi + neg @ lo


# -- registrations --------------------------------------------------------------------------
_ALPHA = satisfies(is_number, "a number alpha")
register(AddRule(), torch.add, "add", params={"input": DATA, "other": DATA, "alpha": _ALPHA})
register(AddRule(), operator.add, params={"input": DATA, "other": DATA})
register(AddRule(), "add_", operator.iadd, params={"input": DATA, "other": DATA, "alpha": _ALPHA},
         writes_input=True)
register(AddRule(negate_second=True), torch.sub, "sub",
         params={"input": DATA, "other": DATA, "alpha": _ALPHA})
register(AddRule(negate_second=True), operator.sub, params={"input": DATA, "other": DATA})
register(AddRule(negate_second=True), "sub_", operator.isub,
         params={"input": DATA, "other": DATA, "alpha": _ALPHA}, writes_input=True)
register(NegRule(), torch.neg, operator.neg, "neg", params={"input": DATA})
_DIVIDE = {"input": DATA, "other": DATA}
register(ScaleRule(divide=True), operator.truediv, params=_DIVIDE)
register(ScaleRule(divide=True), torch.div, "div",
         params={**_DIVIDE, "rounding_mode": only(None, expects="true division "
                                                  "(rounding_mode=None)")})
register(ScaleRule(divide=True), operator.itruediv, "div_", params=_DIVIDE, writes_input=True)

register(LinearRule(), nn.Linear, params={"input": DATA})
register(LinearRule(), F.linear, params={"input": DATA, "weight": ANY, "bias": ANY})
_CONV_MODULE = {"padding_mode": only("zeros", expects="zero padding (padding_mode='zeros')")}
_CONV_ARGS = {"input": DATA, "weight": ANY, "bias": ANY, "stride": ANY, "padding": ANY,
              "dilation": ANY, "groups": ANY}
register(ConvRule(), nn.Conv1d, nn.Conv2d, params={"input": DATA}, attrs=_CONV_MODULE)
register(ConvRule(), F.conv1d, F.conv2d, params=_CONV_ARGS)
register(ConvRule(sequence=True), conv1d_over_sequence,
         params={**_CONV_ARGS, "padding": satisfies(is_int_or_ints, "integer padding")})
register(BatchNormRule(), nn.BatchNorm1d, nn.BatchNorm2d, params={"input": DATA}, attrs={
    "training": only(False, expects="eval mode: in training mode its output depends on the "
                     "whole batch; call model.eval() before computing bounds"),
    "running_var": satisfies(lambda v: v is not None,
                             "a BatchNorm that keeps running statistics"),
})
