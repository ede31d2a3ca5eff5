"""Tracing a model with torch.fx, the graph rewrites, and running or naming one node.

Two rewrites run on every traced graph: ``decompose_layer_norm`` (nn.LayerNorm into primitives
the engine bounds one by one) and ``fuse_sequence_conv`` (``conv1d(x.transpose(1, 2))`` into one
call, so that the Conv rule can ask the input set for exact bounds of a first layer over a
sequence). In-place operators (``out += x``) are traced as themselves, so the engine can check
that what they overwrite is not read again.
"""

from __future__ import annotations

import functools
import linecache
import operator
import re
import sys
import weakref
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn

from robusttext.bounds.rules import conv1d_over_sequence, covered_modules
from robusttext.errors import RobustTextError

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_ENGINE_DIR = str(Path(__file__).resolve().parent)

# Calls that ask about a tensor's shape or type: evaluated on a representative tensor.
SHAPE_QUERIES = {"size", "dim", "shape", "dtype", "device", "numel", "new_zeros", "new_ones",
                 "new_full", "new_empty"}
# Functions whose result depends only on the shape, dtype and device of their tensor input.
SHAPE_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like}


class _Proxy(fx.Proxy):
    """A proxy that records ``a += b`` (and -=, *=, /=) as the in-place operator, where fx's own
    records a fresh ``a + b`` and so loses the write into ``a``."""

    def _inplace(self, op, other):
        return self.tracer.create_proxy("call_function", op, (self, other), {})

    def __iadd__(self, other):
        return self._inplace(operator.iadd, other)

    def __isub__(self, other):
        return self._inplace(operator.isub, other)

    def __imul__(self, other):
        return self._inplace(operator.imul, other)

    def __itruediv__(self, other):
        return self._inplace(operator.itruediv, other)


class Tracer(fx.Tracer):
    """torch.fx tracer that records the model line of every node for error messages.

    (fx's own ``record_stack_traces`` imports much of torch on first use; a plain Python stack
    walk is enough to find the model's line.)
    """

    def proxy(self, node):
        return _Proxy(node, self)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        # the innermost caller outside torch and the engine: the model's line. Frames are
        # walked up from here (no whole-stack summary with every frame's source line), each
        # file judged once, and only the found line is read (linecache keeps the file).
        frame = sys._getframe(1)
        while frame is not None and _is_library(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is not None:
            code = frame.f_code
            line = linecache.getline(code.co_filename, frame.f_lineno).strip()
            node.meta["stack_trace"] = (
                f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n'
                f"    {line}"
            )
        return node


@functools.lru_cache(maxsize=4096)
def _is_library(filename: str) -> bool:
    """Whether a frame's file is torch's or the engine's own (not the model's)."""
    return str(Path(filename).resolve()).startswith((_TORCH_DIR, _ENGINE_DIR))


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def trace(model: nn.Module) -> fx.GraphModule:
    """The model's fx graph, rewritten (cached per model object and train/eval state: a
    functional ``F.dropout(x, training=self.training)`` is traced with the flag's value)."""
    modes = tuple(m.training for m in model.modules())
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == modes:
        return cached[1]
    # A bare leaf module (nn.Linear, ...) is traced inside a container so that it keeps its name.
    leaf = type(model) in covered_modules() or Tracer().is_leaf_module(model, "")
    root = torch.nn.Sequential(model) if leaf else model
    try:
        graph = Tracer().trace(root)
    except Exception as error:  # fx raises many kinds of errors on untraceable code
        raise RobustTextError(
            f"cannot trace {type(model).__name__} with torch.fx: {error}. Models must not branch "
            "on tensor values."
        ) from None
    module = fx.GraphModule(root, graph)
    decompose_layer_norm(module)
    fuse_sequence_conv(module)
    _CACHE[model] = (modes, module)
    return module


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)')


def where(node: fx.Node) -> str:
    """The model-code line that created a node (from its recorded stack), for error messages."""
    stack = node.meta.get("stack_trace") or ""
    lines = stack.splitlines()
    found = None
    for i, line in enumerate(lines):
        match = _FRAME.search(line)
        if match and not str(Path(match["file"]).resolve()).startswith(_TORCH_DIR):
            code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.search(
                lines[i + 1]) else ""
            found = f'{match["file"]}:{match["line"]} in {match["function"]}' + (
                f": {code}" if code else "")
    return found or f"graph node {node.name}"


def describe(node: fx.Node, module: fx.GraphModule) -> str:
    """A readable name for the operation of a node."""
    if "describe" in node.meta:
        return node.meta["describe"]
    if node.op == "call_module":
        return f"{type(module.get_submodule(node.target)).__name__} ({node.target})"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    qualname = getattr(target, "__qualname__", name)
    if qualname.startswith("_VariableFunctionsClass"):
        return f"torch.{name}"
    module = getattr(target, "__module__", None)
    return f"{module}.{qualname}" if module and module != "_operator" else qualname


def decompose_layer_norm(module: fx.GraphModule) -> None:
    """Rewrite every nn.LayerNorm call into primitives the engine bounds one by one:
    ``d = x - mean(x)``, ``y = d * reciprocal(sqrt(mean(d * d) + eps)) * weight + bias``."""
    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        layer = module.get_submodule(node.target)
        if not isinstance(layer, nn.LayerNorm):
            continue
        dims = tuple(range(-len(layer.normalized_shape), 0))
        with graph.inserting_before(node):
            x = node.args[0]
            mean = graph.call_method("mean", (x, dims), {"keepdim": True})
            centred = graph.call_function(operator.sub, (x, mean))
            square = graph.call_function(operator.mul, (centred, centred))
            variance = graph.call_method("mean", (square, dims), {"keepdim": True})
            shifted = graph.call_function(operator.add, (variance, layer.eps))
            inverse = graph.call_function(torch.reciprocal, (graph.call_function(
                torch.sqrt, (shifted,)),))
            out = graph.call_function(operator.mul, (centred, inverse))
            if layer.weight is not None:
                weight = graph.get_attr(f"{node.target}.weight")
                out = graph.call_function(operator.mul, (out, weight))
            if layer.bias is not None:
                bias = graph.get_attr(f"{node.target}.bias")
                out = graph.call_function(operator.add, (out, bias))
        for new in (mean, centred, square, variance, shifted, inverse, out):
            new.meta["stack_trace"] = node.meta.get("stack_trace")
        node.replace_all_uses_with(out)
        graph.erase_node(node)
    graph.lint()
    module.recompile()


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


def run_with(node: fx.Node, module: fx.GraphModule, value_of):
    """Execute one call node with every input node ``n`` replaced by ``value_of(n)``."""
    args = fx.node.map_arg(node.args, value_of)
    kwargs = fx.node.map_arg(node.kwargs, value_of)
    return run_node(node, module, args, kwargs)


def run_node(node: fx.Node, module: fx.GraphModule, args, kwargs):
    """Execute one call node on concrete arguments."""
    if node.op == "call_module":
        return module.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)
    if node.op == "get_attr":
        return _fetch_attr(module, node.target)
    raise AssertionError(node.op)


def _fetch_attr(module: nn.Module, target: str):
    value = module
    for part in target.split("."):
        value = getattr(value, part)
    return value
