"""Direct transposes of the common rearranging operations, for CROWN's backward pass.

``StructuralRule`` can transpose any linear operation through a vector-Jacobian product, but
that costs a functorch call per node. The operations that dominate recurrent and attention
models (reshapes, permutations, slicing, concatenation, padding, sums and means) have one-line
transposes; ``fast_transpose`` returns them, or None to use the general path. ``A`` is always
``[batch, specs, *out]`` and the result ``[batch, specs, *in]``; none of these may touch the
batch dimension.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

_RESHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze"}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, F.dropout}
_RESHAPE_MODULES = (nn.Flatten, nn.Identity, nn.Dropout)


def _kind(ctx) -> tuple[str, object]:
    node = ctx.node
    if node.op == "call_module":
        return ("reshape", None) if isinstance(ctx.module, _RESHAPE_MODULES) else ("", None)
    if node.op == "call_method":
        if node.target in _RESHAPE_METHODS:
            return "reshape", None
        return node.target, None
    target = node.target
    if target in _RESHAPE_FUNCTIONS:
        return "reshape", None
    names = {torch.permute: "permute", torch.transpose: "transpose", operator.getitem: "getitem",
             torch.cat: "cat", torch.concat: "cat", torch.stack: "stack", F.pad: "pad",
             torch.sum: "sum", torch.mean: "mean"}
    return names.get(target, ""), None


def _arg(ctx, index, name, default=None):
    """A constant argument (its nodes, also inside tuples, replaced by their values)."""
    args, kwargs = ctx.node_args(), ctx.node_kwargs()
    value = args[index] if len(args) > index else kwargs.get(name, default)
    return fx.node.map_arg(value, ctx.constant)


def fast_transpose(ctx, A: torch.Tensor) -> list[torch.Tensor] | None:
    """Transpose of the node's linear map applied to ``A``, one tensor per bounded input."""
    kind, _ = _kind(ctx)
    handler = _HANDLERS.get(kind)
    if handler is None:
        return None
    return handler(ctx, A)


def _reshape(ctx, A):
    if len(ctx.inputs) != 1:
        return None
    shape = ctx.example(ctx.inputs[0]).shape
    if A.shape[0] != shape[0] or A[0, 0].numel() != shape[1:].numel():
        return None
    return [A.reshape(A.shape[0], A.shape[1], *shape[1:])]


def _permutation(ctx, kind):
    n = ctx.example(ctx.inputs[0]).dim()
    if kind == "transpose":
        d0, d1 = _arg(ctx, 1, "dim0") % n, _arg(ctx, 2, "dim1") % n
        dims = list(range(n))
        dims[d0], dims[d1] = d1, d0
        return dims
    args = ctx.node_args()[1:]
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    dims = list(args) if args else list(ctx.node_kwargs().get("dims", []))
    return [d % n for d in dims]


def _permute(ctx, A, kind):
    if len(ctx.inputs) != 1:
        return None
    dims = _permutation(ctx, kind)
    if not dims or dims[0] != 0:
        return None
    inverse = [0] * len(dims)
    for out_dim, in_dim in enumerate(dims):
        inverse[in_dim] = out_dim
    return [A.permute(0, 1, *[1 + inverse[k] for k in range(1, len(dims))])]


def _getitem(ctx, A):
    if len(ctx.inputs) != 1 or ctx.node_args()[0] is not ctx.inputs[0]:
        return None
    index = ctx.node_args()[1]
    if not isinstance(index, tuple) or not index:
        return None
    if any(not isinstance(i, (int, slice)) for i in index[1:]):
        return None
    if index[0] is Ellipsis:
        spec_index = index
    elif index[0] == slice(None):
        spec_index = (slice(None), slice(None), *index[1:])
    else:
        return None
    shape = ctx.example(ctx.inputs[0]).shape
    out = A.new_zeros(A.shape[0], A.shape[1], *shape[1:])
    out[spec_index] = A
    return [out]


def _cat(ctx, A, stack=False):
    args = ctx.node_args()
    tensors = args[0]
    dim = args[1] if len(args) > 1 else ctx.node_kwargs().get("dim", 0)
    n = ctx.example(ctx.inputs[0]).dim() + (1 if stack else 0)
    dim = dim % n
    if dim == 0:
        return None
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


def _pad(ctx, A):
    if len(ctx.inputs) != 1 or _arg(ctx, 2, "mode", "constant") != "constant":
        return None
    pads = list(_arg(ctx, 1, "pad"))
    if any(p < 0 for p in pads):
        return None
    index = [slice(None)] * A.dim()
    for i in range(len(pads) // 2):
        dim = A.dim() - 1 - i
        left, right = pads[2 * i], pads[2 * i + 1]
        index[dim] = slice(left, A.shape[dim] - right)
    if len(pads) // 2 > A.dim() - 2:
        return None
    return [A[tuple(index)]]


def _reduce(ctx, A, mean):
    if len(ctx.inputs) != 1:
        return None
    shape = ctx.example(ctx.inputs[0]).shape
    dims = _arg(ctx, 1, "dim")
    if dims is None:
        return None
    dims = [d % len(shape) for d in (dims if isinstance(dims, (tuple, list)) else [dims])]
    if 0 in dims:
        return None
    if not _arg(ctx, 2, "keepdim", False):
        for d in sorted(dims):
            A = A.unsqueeze(d + 1)
    A = A.expand(A.shape[0], A.shape[1], *shape[1:])
    if mean:
        count = 1
        for d in dims:
            count *= shape[d]
        A = A / count
    return [A]


_HANDLERS = {
    "reshape": _reshape,
    "permute": lambda ctx, A: _permute(ctx, A, "permute"),
    "transpose": lambda ctx, A: _permute(ctx, A, "transpose"),
    "getitem": _getitem,
    "cat": _cat,
    "stack": lambda ctx, A: _cat(ctx, A, stack=True),
    "pad": _pad,
    "sum": lambda ctx, A: _reduce(ctx, A, mean=False),
    "mean": lambda ctx, A: _reduce(ctx, A, mean=True),
}
