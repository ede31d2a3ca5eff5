"""Tracing a model with torch.fx, the graph rewrites, and running or naming one node.

Two rewrites run on every traced graph, each kept beside the rules it serves:
``decompose_layer_norm`` (rules/normalization.py: nn.LayerNorm into primitives the engine bounds
one by one) and ``fuse_sequence_conv`` (rules/affine.py) (``conv1d(x.transpose(1, 2))`` into one
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

from robusttext.bounds.rules import covered_modules, decompose_layer_norm, fuse_sequence_conv
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
