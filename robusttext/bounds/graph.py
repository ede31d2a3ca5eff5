"""Tracing a model with torch.fx, the graph rewrites, and running or naming one node.

Two rewrites run on every traced graph, each kept beside the rules it serves:
``decompose_layer_norm`` (rules/normalization.py: nn.LayerNorm into primitives the engine bounds
one by one) and ``fuse_sequence_conv`` (rules/affine.py) (``conv1d(x.transpose(1, 2))`` into one
call, so that the Conv rule can ask the input set for exact bounds of a first layer over a
sequence). In-place operators (``out += x``) are traced as themselves, so the engine can check
that what they overwrite is not read again.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import operator
import re
import sys
import sysconfig
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn

from robusttext.bounds.rules import covered_modules, decompose_layer_norm, fuse_sequence_conv
from robusttext.errors import RobustTextError

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_PYTHON_DIR = str(Path(sysconfig.get_paths()["stdlib"]).resolve())
_ENGINE_DIR = str(Path(__file__).resolve().parent)

# Calls that ask about a tensor's shape or type: evaluated on a representative tensor.
SHAPE_QUERIES = {"size", "dim", "shape", "dtype", "device", "numel", "new_zeros", "new_ones",
                 "new_full", "new_empty"}
# Functions whose result depends only on the shape, dtype and device of their tensor input.
SHAPE_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like}


class _Proxy(fx.Proxy):
    """A proxy that records ``a += b`` (and -=, *=, /=) as the in-place operator, where fx's own
    records a fresh ``a + b`` and so loses the write into ``a``; and that answers ``len``,
    ``int`` and ``operator.index`` from the traced example when it holds a shape (see
    ``Tracer.concrete``)."""

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

    def __len__(self):
        return self.tracer.length(self)

    def __getattr__(self, name):
        if name in _STATIC_ATTRIBUTES and getattr(self.tracer, "examples", None) is not None:
            return self.tracer.static(self, name)  # torch.finfo(x.dtype) needs a real dtype
        return super().__getattr__(name)

    def __index__(self):
        return operator.index(self.tracer.concrete(self, "a Python number made of"))

    def __int__(self):
        return int(self.tracer.concrete(self, "int() of"))


# torch's tensor factories, recorded as calls when given a traced size (Tracer.trace).
_FACTORIES = ("zeros", "ones", "full", "empty", "arange", "eye", "rand", "randn", "randint",
              "randperm", "linspace")


def _flat(args, kwargs):
    for value in (*args, *kwargs.values()):
        if isinstance(value, (tuple, list)):
            yield from value
        else:
            yield value


# Calls whose result is a fact about a tensor's shape, dtype or device.
_SHAPE_METHODS = {"size", "dim", "ndimension", "numel", "nelement"}
_STATIC_ATTRIBUTES = {"dtype", "device", "is_cuda"}
_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda", "is_floating_point"}


def _is_shape_fact(node: fx.Node) -> bool:
    """True when a node's value is known from the shapes (and dtypes) of the inputs alone: a
    shape query, or Python arithmetic, indexing and comparison of such values."""
    if node.op == "call_method":
        return node.target in _SHAPE_METHODS
    if node.op != "call_function":
        return False
    if node.target is getattr:
        return len(node.args) > 1 and node.args[1] in _SHAPE_ATTRIBUTES
    if getattr(node.target, "__module__", None) in ("_operator", "operator", "math") or (
            node.target in (len, int, float, min, max, abs)):
        return all(n.meta.get("shape_fact", False) for n in node.all_input_nodes)
    return False


class NeedsExamples(RobustTextError):
    """Tracing needs a concrete shape and was given no example inputs."""


class Tracer(fx.Tracer):
    """torch.fx tracer of the module that runs.

    - It records the model line of every node for error messages.
    - A module that does more than its class's ``forward`` (forward hooks or pre-hooks of its
      own or global ones, ``torch.nn.utils.prune``, parametrizations, old-style weight or
      spectral norm, a ``forward`` set on the instance) is traced through, so that what the hooks
      compute is in the graph, instead of kept as one call that a rule would rebuild from its
      type; so is a module made inside ``forward`` (not a submodule of the model).
    - Given ``examples`` (the values of the forward's inputs), Python code that needs a concrete
      shape (``x.view(*shape)``, ``if h.shape[-1] == x.shape[-1]:``, ``range(x.size(1))``)
      gets it from the example, and the trace is marked ``specialized``: valid for inputs of
      those shapes only. A branch on a tensor's values is refused, naming the model line.

    (fx's own ``record_stack_traces`` imports much of torch on first use; a plain Python stack
    walk is enough to find the model's line.)
    """

    def __init__(self, examples: tuple | None = None):
        super().__init__()
        self.proxy_buffer_attributes = True  # a buffer sliced by a shape is traced, not run
        self.examples = examples
        self.specialized = False
        self._values: dict = {}

    def proxy(self, node):
        return _Proxy(node, self)

    def trace(self, root, concrete_args=None):
        """fx's trace, with torch's tensor factories (``torch.zeros(x.size(0), n)``) recording
        a call when a size is traced: their argument parser refuses a proxy for an int."""
        originals = {name: getattr(torch, name) for name in _FACTORIES}

        def recording(name, made):
            def factory(*args, **kwargs):
                if any(isinstance(a, fx.Proxy) for a in _flat(args, kwargs)):
                    return self.create_proxy("call_function", made, args, kwargs)
                return made(*args, **kwargs)

            return factory

        for name, made in originals.items():
            setattr(torch, name, recording(name, made))
        try:
            return super().trace(root, concrete_args)
        finally:
            for name, made in originals.items():
                setattr(torch, name, made)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["shape_fact"] = _is_shape_fact(node)
        frame = model_frame(sys._getframe(1))
        if frame is not None:
            node.meta["stack_trace"] = _generated_origin(frame) or _frame_text(frame)
        return node

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return super().is_leaf_module(m, qualname) and not runs_more_than_forward(m)

    def call_module(self, m, forward, args, kwargs):
        try:
            self.path_of_module(m)
        except NameError:  # made inside forward: what it computes is traced through
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    # -- Python asking for concrete values ----------------------------------------------------
    def to_bool(self, obj) -> bool:
        return bool(self.concrete(obj, "a branch (if, while, and/or, assert) on"))

    def iter(self, obj):
        return iter(self.concrete(obj, "iteration (a loop or *args) over"))

    def concrete(self, proxy, construct: str):
        """The value of ``proxy`` on the examples, when it is a fact about shapes; otherwise a
        ``RobustTextError`` naming the construct and the model line."""
        node = proxy.node
        if not node.meta.get("shape_fact", False):
            line = _line_at(model_frame(sys._getframe(1)))
            raise RobustTextError(
                f"the forward uses {construct} a tensor's values ({describe_traced(node)}), "
                f"which cannot be bounded over a set of inputs: at {line}. Compute it from "
                "shapes only, or move it out of the bounded module")
        if self.examples is None:
            line = _line_at(model_frame(sys._getframe(1)))
            raise NeedsExamples(
                f"the forward uses {construct} a shape at {line}, which needs example inputs to "
                "trace (robusttext passes them when it bounds)")
        self.specialized = True
        return self._value(node)

    def example_of(self, proxy):
        """The value of a traced input on the examples (the graph is then specialized)."""
        self.specialized = True
        return self._value(proxy.node)

    def static(self, proxy, name: str):
        """``x.dtype`` (or ``device``) from the examples: the graph is then specialized to them."""
        self.specialized = True
        return getattr(self._value(proxy.node), name)

    def length(self, proxy) -> int:
        """``len()`` of a traced value: a fact about shapes, taken from the examples."""
        if proxy.node.meta.get("shape_fact", False):
            return len(self.concrete(proxy, "len() of"))
        if self.examples is None:
            raise NeedsExamples("len() of a tensor needs example inputs to trace")
        self.specialized = True
        return len(self._value(proxy.node))

    def _value(self, node: fx.Node):
        if node in self._values:
            return self._values[node]
        if node.op == "placeholder":
            index = [n for n in node.graph.nodes if n.op == "placeholder"].index(node)
            value = self.examples[index] if index < len(self.examples) else node.args[0]
        elif node.op == "get_attr":
            with _unpatched():
                value = _fetch_attr(self.root, node.target)
        else:
            args = fx.node.map_arg(node.args, self._value)
            kwargs = fx.node.map_arg(node.kwargs, self._value)
            with torch.no_grad(), _unpatched():
                value = self._run(node, args, kwargs)
        self._values[node] = value
        return value

    def _run(self, node, args, kwargs):
        if node.op == "call_module":
            return self.root.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)


@contextlib.contextmanager
def _unpatched():
    """Module calls and attribute reads as outside tracing (fx patches ``nn.Module`` while it
    traces), for running nodes on the examples."""
    from torch.fx import _symbolic_trace as symbolic

    call, get = nn.Module.__call__, nn.Module.__getattr__
    nn.Module.__call__, nn.Module.__getattr__ = symbolic._orig_module_call, (
        symbolic._orig_module_getattr)
    try:
        yield
    finally:
        nn.Module.__call__, nn.Module.__getattr__ = call, get


def describe_traced(node: fx.Node) -> str:
    target = node.target
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    return f"the result of {name}"


def model_frame(frame):
    """The innermost frame outside torch and the engine, from ``frame`` up: the model's line.
    Frames are walked up (no whole-stack summary), each file judged once."""
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def _generated_origin(frame) -> str | None:
    """The model line recorded for the node whose generated code ``frame`` runs, when it runs
    a traced ``GraphModule``'s code (a wrapped model's body traced again): its own line is
    ``<eval_with_key>``, which names nothing."""
    if not frame.f_code.co_filename.startswith("<eval_with_key>"):
        return None
    module = frame.f_locals.get("self")
    lines = getattr(module, "_lineno_map", None)
    if not isinstance(module, fx.GraphModule) or not lines:
        return None
    index = lines.get(frame.f_lineno - getattr(module, "_prologue_start", 0))
    if index is None:
        return None
    nodes = list(module.graph.nodes)
    return nodes[index].meta.get("stack_trace") if index < len(nodes) else None


def _line_at(frame) -> str:
    """``file:line in function: code`` of a frame, for messages."""
    if frame is None:
        return "an unknown line"
    code = frame.f_code
    text = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}: {text}"


def _frame_text(frame) -> str:
    code = frame.f_code
    line = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return (f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n'
            f"    {line}")


_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                 "_global_forward_hooks_with_kwargs", "_global_forward_hooks_always_called")
_OWN_HOOKS = ("_forward_hooks", "_forward_pre_hooks")


def global_hooks() -> tuple:
    """The forward hooks registered for every module (``register_module_forward_hook``)."""
    from torch.nn.modules import module as module_module

    return tuple((name, key, id(fn)) for name in _GLOBAL_HOOKS
                 for key, fn in getattr(module_module, name, {}).items())


def runs_more_than_forward(m: nn.Module) -> bool:
    """True when calling ``m`` runs more than its class's ``forward``: hooks of its own or global
    ones (pruning and old-style weight / spectral norm work through a pre-hook), a
    parametrization, or a ``forward`` set on the instance."""
    return bool(any(getattr(m, name, None) for name in _OWN_HOOKS) or global_hooks()
                or "forward" in m.__dict__ or "parametrizations" in m._modules)


@functools.lru_cache(maxsize=4096)
def _is_library(filename: str) -> bool:
    """Whether a frame's file is torch's or the engine's own (not the model's)."""
    return str(Path(filename).resolve()).startswith((_TORCH_DIR, _ENGINE_DIR, _PYTHON_DIR))


def trace(model: nn.Module, examples: tuple | None = None) -> fx.GraphModule:
    """The graph of what calling ``model(*examples)`` runs, rewritten; its ``specialized``
    says whether it holds for inputs of the examples' shapes only (see ``Tracer``). Not cached
    (``capture`` caches).

    A bare leaf module (nn.Linear, ...) is traced inside a container so that it keeps its name;
    a model whose own call runs hooks or an instance ``forward`` inside a wrapper that calls it.
    """
    leaf = type(model) in covered_modules() or fx.Tracer().is_leaf_module(model, "")
    arity = len(examples) if examples is not None else 1
    if leaf and arity == 1:
        root = torch.nn.Sequential(model)
    elif leaf or runs_more_than_forward(model):
        root = _caller(arity)(model)
    else:
        root = model
    tracer = Tracer(examples)
    saved = _attributes(root)
    try:
        graph = tracer.trace(root)
        module = fx.GraphModule(root, graph)  # with the constants tracing stored on the root
        module.live_reads = _live_reads(root, graph)
    except RobustTextError:
        raise
    except Exception as error:  # fx raises many kinds of errors on untraceable code
        raise RobustTextError(
            f"cannot trace {type(model).__name__} with torch.fx: {_first_line(error)} "
            f"(at {_model_line_of(error)})") from None
    finally:
        _restore_attributes(saved)  # a hook that sets an attribute set it to a proxy
    decompose_layer_norm(module)
    fuse_sequence_conv(module)
    module.specialized = tracer.specialized
    return module


def _live_reads(root: nn.Module, graph: fx.Graph) -> list:
    """``(owner, name, value)`` for every tensor the graph reads by name (``get_attr``), with
    ``owner`` the live module that holds it: the graph holds its own references, so a tensor
    replaced in the model after tracing is found by ``getattr(owner, name) is not value``."""
    reads = []
    for node in graph.nodes:
        if node.op == "get_attr":
            prefix, _, name = node.target.rpartition(".")
            try:
                owner = root.get_submodule(prefix) if prefix else root
                reads.append((owner, name, getattr(owner, name)))
            except AttributeError:
                continue
    return reads


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _model_line_of(error: Exception) -> str:
    """The innermost model line in an exception's traceback."""
    found = None
    tb = error.__traceback__
    while tb is not None:
        if not _is_library(tb.tb_frame.f_code.co_filename):
            found = tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next
    if found is None:
        return "an unknown line"
    frame, lineno = found
    code = frame.f_code
    return (f"{code.co_filename}:{lineno} in {code.co_name}: "
            f"{linecache.getline(code.co_filename, lineno).strip()}")


@functools.lru_cache(maxsize=16)
def _caller(arity: int) -> type:
    """A module class whose ``forward(x0, ..., x{arity-1})`` calls ``self.model`` on them."""
    names = ", ".join(f"x{i}" for i in range(arity))
    namespace: dict = {}
    source = f"def forward(self, {names}):\n    return self.model({names})\n"
    exec(compile(source, __file__, "exec"), namespace)  # noqa: S102 (a fixed template)

    def __init__(self, model):
        nn.Module.__init__(self)
        self.model = model

    return type(f"Call{arity}", (nn.Module,), {"__init__": __init__,
                                               "forward": namespace["forward"]})


def _attributes(root: nn.Module) -> list:
    """Every module's attributes, and its parameters, buffers and submodules, as they are."""
    return [(m, dict(m.__dict__), {k: dict(m.__dict__[k]) for k in _TABLES if k in m.__dict__})
            for m in root.modules()]


_TABLES = ("_parameters", "_buffers", "_modules")


def _restore_attributes(saved: list) -> None:
    """Put back what ``_attributes`` saw: tracing runs the forward on proxies, and a forward
    that assigns (``self.calls += 1`` on a buffer, a pruning hook's ``weight``) assigns one."""
    for m, attributes, tables in saved:
        for key in [k for k in m.__dict__ if k not in attributes]:
            del m.__dict__[key]
        for key, value in attributes.items():
            if m.__dict__.get(key, _MISSING) is not value:
                m.__dict__[key] = value
        for key, table in tables.items():
            live = m.__dict__[key]
            if live.keys() != table.keys() or any(live[k] is not v for k, v in table.items()):
                live.clear()
                live.update(table)


_MISSING = object()


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
