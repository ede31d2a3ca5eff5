"""Reductions: sum, mean, average pooling (linear, non-negative weights) and max pooling."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds.rules.common import Rule, each_side, sum_to_batch_spec, times
from robusttext.bounds.rules.rearrangements import StructuralRule, arg, refuse_batch
from robusttext.bounds.rules.registry import ANY, DATA, only, register, satisfies
from robusttext.errors import RobustTextError


def _dims(ctx):
    ndim = ctx.example(ctx.inputs[0]).dim()
    dims = arg(ctx, "dim")
    if dims is None:
        return None
    return [d % ndim for d in (dims if isinstance(dims, (tuple, list)) else [dims])]


def _check_dims(ctx):
    dims = _dims(ctx)
    if dims is None or 0 in dims:
        refuse_batch(ctx, "a reduction over every dimension" if dims is None else
                     "the reduction")


def _reduce(mean):
    def transpose(ctx, A):
        shape = ctx.example(ctx.inputs[0]).shape
        dims = _dims(ctx)
        if not arg(ctx, "keepdim", False):
            for d in sorted(dims):
                A = A.unsqueeze(d + 1)
        A = A.expand(A.shape[0], A.shape[1], *shape[1:])
        if mean:
            count = 1
            for d in dims:
                count *= shape[d]
            A = A / count
        return [A]
    return transpose


_REDUCE = {"input": DATA, "dim": ANY, "keepdim": ANY, "dtype": only(None)}
register(StructuralRule(_reduce(False), check=_check_dims), torch.sum, "sum", params=_REDUCE)
register(StructuralRule(_reduce(True), check=_check_dims), torch.mean, "mean", params=_REDUCE)

class AveragePoolRule(StructuralRule):
    """Average pooling: every output is a sum of inputs over a divisor (zero padding counts as a
    constant 0). The divisor is the window's size, or ``divisor_override``, which may be
    negative: the map is then non-positive and the interval's ends swap. The sign is read from
    the call's own argument (or the module's attribute), never assumed."""

    def _sign(self, ctx) -> int:
        divisor = (getattr(ctx.module, "divisor_override", None) if ctx.module is not None
                   else arg(ctx, "divisor_override"))
        return -1 if divisor is not None and divisor < 0 else 1

    def ibp(self, ctx):
        lower, upper = super().ibp(ctx)
        return (lower, upper) if self._sign(ctx) > 0 else (upper, lower)


def _nonzero_divisor(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value != 0)


_DIVISOR = satisfies(_nonzero_divisor, "divisor_override=None or a non-zero integer")
AVERAGE = AveragePoolRule()
register(AVERAGE, nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
         params={"input": DATA})
register(AVERAGE, nn.AvgPool2d, params={"input": DATA}, attrs={"divisor_override": _DIVISOR})
register(AVERAGE, F.avg_pool1d, params={
    "input": DATA, "kernel_size": ANY, "stride": ANY, "padding": ANY, "ceil_mode": ANY,
    "count_include_pad": ANY})
register(AVERAGE, F.avg_pool2d, params={
    "input": DATA, "kernel_size": ANY, "stride": ANY, "padding": ANY, "ceil_mode": ANY,
    "count_include_pad": ANY, "divisor_override": _DIVISOR})
register(AVERAGE, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
         params={"input": DATA, "output_size": ANY})


class MaxPoolRule(Rule):
    """Max pooling over the last ``spatial`` dimensions (1 or 2), the pooling function chosen by
    the registration (the module or function the model calls), never by the input's rank: a 2-D
    pool on a 3-D input ``[batch, H, W]`` pools each example's plane. The dimensions between the
    batch and the pooled ones are channels. Forward: monotone. Backward: below by the entry with
    the largest lower bound in the window, above by the window's largest upper bound (a
    constant)."""

    needs_input_bounds = overflow_free = True

    def __init__(self, spatial: int):
        self.spatial = spatial
        self.fn = F.max_pool1d if spatial == 1 else F.max_pool2d

    def check(self, ctx):
        ndim = ctx.example(ctx.inputs[0]).dim()
        if ndim not in (self.spatial + 1, self.spatial + 2):
            raise RobustTextError(
                f"{ctx.description}: a {self.spatial}-D max pool takes [batch, *spatial] or "
                f"[batch, channels, *spatial] ({self.spatial + 1} or {self.spatial + 2} "
                f"dimensions), got {ndim} (at {ctx.where})")

    def _pool(self, ctx, x, return_indices):
        module = ctx.module
        if module is not None:
            return self.fn(x, module.kernel_size, module.stride, module.padding, module.dilation,
                           ceil_mode=module.ceil_mode, return_indices=return_indices)
        return self.fn(x, arg(ctx, "kernel_size"), arg(ctx, "stride"), arg(ctx, "padding", 0),
                       arg(ctx, "dilation", 1), ceil_mode=arg(ctx, "ceil_mode", False),
                       return_indices=return_indices)

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
        return self._pool(ctx, lo, False), self._pool(ctx, hi, False)

    def backward(self, ctx, A_lower, A_upper):
        lo, hi = ctx.interval(ctx.inputs[0])
        _, indices = self._pool(ctx, lo, True)  # flat positions within each pooled plane
        top = self._pool(ctx, hi, False)
        b = lo.shape[0]
        planes = math.prod(lo.shape[1:-self.spatial])  # channels (1 without a channel dim)
        plane = math.prod(lo.shape[-self.spatial:])

        def select_transpose(A):  # A [b, s, *out] -> [b, s, *in] (scatter-add)
            s = A.shape[1]
            flat_idx = indices.reshape(b, 1, planes, -1).expand(b, s, planes, -1)
            out = A.new_zeros(b, s, planes, plane)
            out.scatter_add_(3, flat_idx, A.reshape(b, s, planes, -1))
            return out.view(b, s, *lo.shape[1:])

        def side(A, sign):
            # Coefficients that want the output large (sign * A > 0) take the constant upper
            # line; the others take the selected entry (a lower line).
            takes_upper = A.clamp(min=0) if sign > 0 else A.clamp(max=0)
            return (select_transpose(A - takes_upper),
                    sum_to_batch_spec(times(takes_upper, top.unsqueeze(1))))

        return each_side(A_lower, A_upper, side)


_NO_INDICES = only(False, expects="return_indices=False (one tensor)")
_MAX_ARGS = {"input": DATA, "kernel_size": ANY, "stride": ANY, "padding": ANY, "dilation": ANY,
             "ceil_mode": ANY, "return_indices": _NO_INDICES}
for _spatial, _module, _function in ((1, nn.MaxPool1d, F.max_pool1d),
                                     (2, nn.MaxPool2d, F.max_pool2d)):
    register(MaxPoolRule(_spatial), _module, params={"input": DATA},
             attrs={"return_indices": _NO_INDICES})
    register(MaxPoolRule(_spatial), _function, params=_MAX_ARGS)
