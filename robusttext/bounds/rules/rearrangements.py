"""Operations that move or copy entries: view, reshape, permute, slicing, cat, stack, pad, ...

``StructuralRule`` covers every linear operation with non-negative weights (moving, copying,
averaging or summing entries, plus constants such as a pad value): the interval maps endpoint
to endpoint, and CROWN's transpose is a vector-Jacobian product. The operations that dominate
recurrent and attention models have one-line transposes, given to the rule as ``fast``
(``fast(ctx, A)`` returns one tensor per bounded input, or None for the general path). ``A`` is
always ``[batch, specs, *out]`` and the result ``[batch, specs, *in]``; none of these may touch
the batch dimension, which ``check`` refuses.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds.rules.affine import AffineRule
from robusttext.bounds.rules.registry import ANY, DATA, is_number, only, register, satisfies
from robusttext.errors import RobustTextError


class StructuralRule(AffineRule):
    """A linear map with non-negative weights (and constants) of its bounded inputs."""

    use_fast = True  # tests switch the direct transposes off to compare with the general path

    def __init__(self, fast=None, keeps_box: bool = False, may_alias: bool = False,
                 check=None):
        self.fast, self.keeps_box, self.may_alias = fast, keeps_box, may_alias
        self.overflow_free = keeps_box  # pure moves
        self._check = check

    def check(self, ctx):
        if self._check is not None:
            self._check(ctx)

    def ibp(self, ctx):
        # Monotone in every bounded input: map the endpoints directly.
        los = {n: ctx.interval(n)[0] for n in ctx.inputs}
        his = {n: ctx.interval(n)[1] for n in ctx.inputs}
        return ctx.call(los), ctx.call(his)

    def transpose(self, ctx, A):
        direct = self.fast(ctx, A) if self.fast is not None and self.use_fast else None
        return direct if direct is not None else super().transpose(ctx, A)

    def offset(self, ctx):
        offset = super().offset(ctx)
        if not offset.any():  # no constant entered: skip the bias pass over A
            return torch.zeros((), dtype=offset.dtype, device=offset.device)
        return offset


def refuse_batch(ctx, what: str):
    raise RobustTextError(
        f"{ctx.description}: {what} touches the batch dimension 0, which mixes or drops the "
        f"examples; robusttext bounds each example on its own (at {ctx.where})"
    )


def arg(ctx, name, default=None):
    """A constant argument (its nodes, also inside tuples, replaced by their values)."""
    return fx.node.map_arg(ctx.arg(name, default), ctx.constant)


def _ndim(ctx):
    return ctx.example(ctx.inputs[0]).dim()


# -- reshapes --------------------------------------------------------------------------------
def _reshape(ctx, A):
    if len(ctx.inputs) != 1:
        return None
    shape = ctx.example(ctx.inputs[0]).shape
    if A.shape[0] != shape[0] or A[0, 0].numel() != shape[1:].numel():
        return None
    return [A.reshape(A.shape[0], A.shape[1], *shape[1:])]


def _is_shape(value) -> bool:
    """Sizes as ints, either spread out or in one tuple/list/Size (not ``view(dtype)``)."""
    if len(value) == 1 and isinstance(value[0], (tuple, list)):
        value = value[0]
    return all(isinstance(v, int) and not isinstance(v, bool) for v in value)


RESHAPE = StructuralRule(_reshape, keeps_box=True, may_alias=True)
_SIZES = satisfies(_is_shape, "integer sizes")
register(RESHAPE, "view", "reshape", params={"input": DATA, "*shape": _SIZES})
register(RESHAPE, torch.reshape,
         params={"input": DATA, "shape": satisfies(lambda v: _is_shape((v,)), "integer sizes")})
register(RESHAPE, "flatten", torch.flatten,
         params={"input": DATA, "start_dim": ANY, "end_dim": ANY})
register(RESHAPE, "contiguous", params={"input": DATA, "memory_format": ANY})
register(RESHAPE, "squeeze", "unsqueeze", torch.squeeze, torch.unsqueeze,
         params={"input": DATA, "dim": ANY})
register(RESHAPE, nn.Flatten, params={"input": DATA}, attrs={"start_dim": ANY, "end_dim": ANY})
register(RESHAPE, nn.Identity, params={"input": DATA})
_EVAL_DROPOUT = only(False, expects="dropout in eval mode: in training mode it draws a random "
                     "mask on every call; call model.eval() before computing bounds")
register(RESHAPE, nn.Dropout, params={"input": DATA}, attrs={"training": _EVAL_DROPOUT})
register(RESHAPE, F.dropout, params={"input": DATA, "p": ANY, "training": _EVAL_DROPOUT,
                                     "inplace": ANY})
register(StructuralRule(may_alias=True), "expand", params={"input": DATA, "*sizes": _SIZES})
register(StructuralRule(may_alias=True), "expand_as", params={"input": DATA, "other": DATA})


# -- permutations ----------------------------------------------------------------------------
def _permutation(ctx):
    """The permutation of dimensions of a permute or transpose node."""
    n = _ndim(ctx)
    if "dim0" in ctx.args:
        d0, d1 = arg(ctx, "dim0") % n, arg(ctx, "dim1") % n
        dims = list(range(n))
        dims[d0], dims[d1] = d1, d0
        return dims
    dims = arg(ctx, "dims")
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return [d % n for d in dims]


def _check_permutation(ctx):
    if _permutation(ctx)[0] != 0:
        refuse_batch(ctx, "the permutation")


def _permute(ctx, A):
    dims = _permutation(ctx)
    inverse = [0] * len(dims)
    for out_dim, in_dim in enumerate(dims):
        inverse[in_dim] = out_dim
    return [A.permute(0, 1, *[1 + inverse[k] for k in range(1, len(dims))])]


PERMUTE = StructuralRule(_permute, keeps_box=True, may_alias=True, check=_check_permutation)
register(PERMUTE, "permute", params={"input": DATA, "*dims": ANY})
register(PERMUTE, torch.permute, params={"input": DATA, "dims": ANY})
register(PERMUTE, "transpose", torch.transpose,
         params={"input": DATA, "dim0": ANY, "dim1": ANY})


# -- indexing --------------------------------------------------------------------------------
def _basic_index(index) -> bool:
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in index)


def _check_index(ctx):
    index = arg(ctx, "index")
    index = index if isinstance(index, tuple) else (index,)
    if not index or not (index[0] is Ellipsis or index[0] == slice(None)):
        refuse_batch(ctx, "the index")


def _one_tensor_index(index):
    """``(position, indices)`` when ``index`` is full slices and one 1-D integer tensor (``x[:,
    order]``, the BiLSTM's reversal), else None."""
    tensors = [k for k, i in enumerate(index) if isinstance(i, torch.Tensor)]
    if len(tensors) != 1 or not all(i == slice(None) for k, i in enumerate(index)
                                    if k != tensors[0]):
        return None
    indices = index[tensors[0]]
    if indices.dim() != 1 or indices.dtype not in (torch.int64, torch.int32):
        return None
    return tensors[0], indices


def _indexes_its_one_bounded_input(ctx) -> bool:
    """True when the indexed tensor is the node's only bounded input (not the index)."""
    return ctx.args["input"] is ctx.inputs[0] and len(ctx.inputs) == 1


def _getitem(ctx, A):
    if not _indexes_its_one_bounded_input(ctx):
        return None
    index = arg(ctx, "index")
    if not isinstance(index, tuple) or not index:
        return None
    shape = ctx.example(ctx.inputs[0]).shape
    gathered = _one_tensor_index(index)
    if gathered is not None:  # the transpose of a gather is a scatter-add (repeats add up)
        position, indices = gathered
        out = A.new_zeros(A.shape[0], A.shape[1], *shape[1:])
        indices = indices.to(A.device).long() % shape[position]
        return [out.index_add_(position + 1, indices, A)]
    if not _basic_index(index):
        return None
    if any(i is None for i in index):
        return None
    spec_index = index if index[0] is Ellipsis else (slice(None), slice(None), *index[1:])
    out = A.new_zeros(A.shape[0], A.shape[1], *shape[1:])
    out[spec_index] = A
    return [out]


def _step_index(index):
    """``(dim, position)`` when ``index`` is full slices and then one int (``x[:, t]``, one step
    of a sequence), else None."""
    if not isinstance(index, tuple) or len(index) < 2:
        return None
    *lead, last = index
    if type(last) is not int or not all(isinstance(i, slice) and i == slice(None) for i in lead):
        return None
    return len(lead), last


class IndexRule(StructuralRule):
    """``x[index]``. One step of a sequence, ``x[:, t]``, is taken from the ends split once
    along that dimension (``NodeContext.steps``): the same values, but a loop that reads every
    step back-propagates one stack where a select per step would write a zero tensor of the
    whole sequence each time."""

    def ibp(self, ctx):
        step = _step_index(arg(ctx, "index"))
        if step is None or not _indexes_its_one_bounded_input(ctx):
            return super().ibp(ctx)
        dim, position = step
        lower, upper = ctx.steps(ctx.inputs[0], dim)
        return lower[position], upper[position]


register(IndexRule(_getitem, keeps_box=True, may_alias=True, check=_check_index),
         operator.getitem, params={"input": DATA, "index": ANY})


# -- joining ---------------------------------------------------------------------------------
def _join_dim(ctx, stack):
    tensors = ctx.args["tensors"]
    n = ctx.example(ctx.inputs[0]).dim() + (1 if stack else 0)
    return tensors, arg(ctx, "dim", 0) % n


def _check_join(stack):
    def check(ctx):
        if _join_dim(ctx, stack)[1] == 0:
            refuse_batch(ctx, "joining along dim 0")
    return check


def _join(stack):
    def transpose(ctx, A):
        tensors, dim = _join_dim(ctx, stack)
        if stack:
            pieces = A.unbind(dim + 1)
        else:
            sizes = [(ctx.example(t) if ctx.is_bounded(t) else ctx.constant(t)).shape[dim]
                     for t in tensors]
            pieces = A.split(sizes, dim + 1)
        totals = {}
        for t, piece in zip(tensors, pieces):
            if ctx.is_bounded(t):
                totals[t] = piece if t not in totals else totals[t] + piece
        return [totals[n] for n in ctx.inputs]
    return transpose


_JOIN = {"tensors": DATA, "dim": ANY}
register(StructuralRule(_join(False), check=_check_join(False)), torch.cat, torch.concat,
         params=_JOIN)
register(StructuralRule(_join(True), check=_check_join(True)), torch.stack, params=_JOIN)


# -- padding ---------------------------------------------------------------------------------
def _pad(ctx, A):
    if len(ctx.inputs) != 1 or arg(ctx, "mode", "constant") != "constant":
        return None
    pads = list(arg(ctx, "pad"))
    if any(p < 0 for p in pads) or len(pads) // 2 > A.dim() - 2:
        return None
    index = [slice(None)] * A.dim()
    for i in range(len(pads) // 2):
        dim = A.dim() - 1 - i
        left, right = pads[2 * i], pads[2 * i + 1]
        index[dim] = slice(left, A.shape[dim] - right)
    return [A[tuple(index)]]


def _check_pad(ctx):
    if len(arg(ctx, "pad")) // 2 >= _ndim(ctx):
        refuse_batch(ctx, "the padding")


# The pad value is a constant of the map: StructuralRule's offset (the output at zero inputs)
# carries it into CROWN's bias.
register(StructuralRule(_pad, check=_check_pad), F.pad, params={
    "input": DATA, "pad": ANY,
    "mode": only("constant", "reflect", "replicate", "circular"),
    "value": satisfies(lambda v: v is None or is_number(v), "a number value"),
})
