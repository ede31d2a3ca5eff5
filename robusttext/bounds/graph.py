"""Tracing a model with torch.fx and naming the operation of every node."""

from __future__ import annotations

import operator
import re
import traceback
import weakref
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from robusttext.errors import RobustTextError

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_ENGINE_DIR = str(Path(__file__).resolve().parent)

# Each traced callable maps to one operation name; the rules in rules.py are keyed by these names.
MODULE_OPS = {
    nn.Linear: "linear",
    nn.Conv1d: "conv",
    nn.Conv2d: "conv",
    nn.BatchNorm1d: "batch_norm",
    nn.BatchNorm2d: "batch_norm",
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.Flatten: "structural",
    nn.Identity: "structural",
    nn.Dropout: "structural",
    nn.AvgPool1d: "structural",
    nn.AvgPool2d: "structural",
    nn.AdaptiveAvgPool1d: "structural",
    nn.AdaptiveAvgPool2d: "structural",
    nn.MaxPool1d: "max_pool",
    nn.MaxPool2d: "max_pool",
    nn.Softmax: "softmax",
}

FUNCTION_OPS = {
    F.linear: "linear",
    F.conv1d: "conv",
    F.conv2d: "conv",
    F.relu: "relu",
    torch.relu: "relu",
    F.leaky_relu: "leaky_relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    operator.add: "add",
    torch.add: "add",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.neg: "neg",
    torch.neg: "neg",
    operator.mul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    torch.div: "div",
    operator.matmul: "matmul",
    torch.matmul: "matmul",
    torch.flatten: "structural",
    torch.reshape: "structural",
    torch.permute: "structural",
    torch.transpose: "structural",
    torch.squeeze: "structural",
    torch.unsqueeze: "structural",
    torch.cat: "structural",
    torch.concat: "structural",
    torch.stack: "structural",
    torch.sum: "structural",
    torch.mean: "structural",
    operator.getitem: "structural",
    F.pad: "structural",
    F.dropout: "structural",
    F.avg_pool1d: "structural",
    F.avg_pool2d: "structural",
    F.adaptive_avg_pool1d: "structural",
    F.adaptive_avg_pool2d: "structural",
    F.max_pool1d: "max_pool",
    F.max_pool2d: "max_pool",
    torch.exp: "exp",
    torch.reciprocal: "reciprocal",
    torch.sqrt: "sqrt",
    torch.square: "square",
    operator.pow: "pow",
    torch.pow: "pow",
    torch.softmax: "softmax",
    F.softmax: "softmax",
}

METHOD_OPS = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "add": "add",
    "sub": "sub",
    "neg": "neg",
    "mul": "mul",
    "div": "div",
    "matmul": "matmul",
    "view": "structural",
    "reshape": "structural",
    "flatten": "structural",
    "permute": "structural",
    "transpose": "structural",
    "squeeze": "structural",
    "unsqueeze": "structural",
    "contiguous": "structural",
    "sum": "structural",
    "mean": "structural",
    "expand": "structural",
    "expand_as": "structural",
    "exp": "exp",
    "reciprocal": "reciprocal",
    "sqrt": "sqrt",
    "square": "square",
    "pow": "pow",
    "softmax": "softmax",
}

# Calls that ask about a tensor's shape or type: evaluated on a representative tensor.
SHAPE_QUERIES = {"size", "dim", "shape", "dtype", "device", "numel", "new_zeros", "new_ones",
                 "new_full", "new_empty"}
# Functions whose result depends only on the shape, dtype and device of their tensor input.
SHAPE_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like}


class Tracer(fx.Tracer):
    """torch.fx tracer that records the model line of every node for error messages.

    (fx's own ``record_stack_traces`` imports much of torch on first use; a plain Python stack
    walk is enough to find the model's line.)
    """

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        for frame in reversed(traceback.extract_stack()[:-1]):
            if not str(Path(frame.filename).resolve()).startswith((_TORCH_DIR, _ENGINE_DIR)):
                node.meta["stack_trace"] = (
                    f'File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
                    f"    {frame.line}"
                )
                break
        return node


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def trace(model: nn.Module) -> fx.GraphModule:
    """The model's fx graph (cached per model object)."""
    cached = _CACHE.get(model)
    if cached is not None:
        return cached
    # A bare leaf module (nn.Linear, ...) is traced inside a container so that it keeps its name.
    root = torch.nn.Sequential(model) if type(model) in MODULE_OPS else model
    try:
        graph = Tracer().trace(root)
    except Exception as error:  # fx raises many kinds of errors on untraceable code
        raise RobustTextError(
            f"cannot trace {type(model).__name__} with torch.fx: {error}. Models must not branch "
            "on tensor values."
        ) from None
    module = fx.GraphModule(root, graph)
    decompose_layer_norm(module)
    _CACHE[model] = module
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


def op_name(node: fx.Node, module: fx.GraphModule) -> str | None:
    """The operation name of a call node, or None when robusttext has no rule for it."""
    if node.op == "call_module":
        sub = module.get_submodule(node.target)
        return MODULE_OPS.get(type(sub))
    if node.op == "call_function":
        try:
            return FUNCTION_OPS.get(node.target)
        except TypeError:  # unhashable target
            return None
    if node.op == "call_method":
        return METHOD_OPS.get(node.target)
    return None


def refine(name: str, node: fx.Node, is_bounded) -> str:
    """Pick the rule for operations whose rule depends on which operands are bounded."""
    args = node.args
    if name in ("mul", "matmul") and len(args) >= 2 and all(is_bounded(a) for a in args[:2]):
        if name == "matmul":
            return "bilinear_matmul"
        return "square" if args[0] is args[1] else "product"
    if name == "pow":
        exponent = args[1] if len(args) > 1 else node.kwargs.get("exponent")
        if exponent == 2 and is_bounded(args[0]):
            return "square"
        raise RobustTextError(
            f"only the power 2 of a bounded tensor is supported, at {where(node)}"
        )
    return name


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
