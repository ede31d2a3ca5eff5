"""Reductions: sum, mean, average pooling (linear, non-negative weights) and max pooling."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds.rules.common import Rule, each_side, sum_to_batch_spec, times
from robusttext.bounds.rules.rearrangements import StructuralRule, arg, refuse_batch
from robusttext.bounds.rules.registry import ANY, DATA, only, register


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

# Average pooling: every output is a mean of inputs (zero padding counts as a constant 0).
AVERAGE = StructuralRule()
register(AVERAGE, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
         params={"input": DATA})
register(AVERAGE, F.avg_pool1d, F.avg_pool2d, params={
    "input": DATA, "kernel_size": ANY, "stride": ANY, "padding": ANY, "ceil_mode": ANY,
    "count_include_pad": ANY, "divisor_override": ANY})
register(AVERAGE, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
         params={"input": DATA, "output_size": ANY})


class MaxPoolRule(Rule):
    """Max pooling. Forward: monotone. Backward: below by the entry with the largest lower bound
    in the window, above by the window's largest upper bound (a constant)."""

    needs_input_bounds = overflow_free = True

    def _pool(self, ctx, x, return_indices):
        module = ctx.module
        fn = F.max_pool1d if x.dim() == 3 else F.max_pool2d
        if module is not None:
            return fn(x, module.kernel_size, module.stride, module.padding, module.dilation,
                      ceil_mode=module.ceil_mode, return_indices=return_indices)
        return fn(x, arg(ctx, "kernel_size"), arg(ctx, "stride"), arg(ctx, "padding", 0),
                  arg(ctx, "dilation", 1), ceil_mode=arg(ctx, "ceil_mode", False),
                  return_indices=return_indices)

    def ibp(self, ctx):
        lo, hi = ctx.interval(ctx.inputs[0])
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
                    sum_to_batch_spec(times(takes_upper, top.unsqueeze(1))))

        return each_side(A_lower, A_upper, side)


_NO_INDICES = only(False, expects="return_indices=False (one tensor)")
register(MaxPoolRule(), nn.MaxPool1d, nn.MaxPool2d, params={"input": DATA},
         attrs={"return_indices": _NO_INDICES})
register(MaxPoolRule(), F.max_pool1d, F.max_pool2d, params={
    "input": DATA, "kernel_size": ANY, "stride": ANY, "padding": ANY, "dilation": ANY,
    "ceil_mode": ANY, "return_indices": _NO_INDICES})
