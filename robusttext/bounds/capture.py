"""The graph is the model: capture what runs, check it against the live module, cache it.

``capture(model, input_set, extra_inputs)`` gives the graph the engine bounds. On every call it
computes a fingerprint of everything the trace depends on (``fingerprint``); a graph traced for
the same fingerprint (and, for a graph specialized to its inputs' shapes, the same shapes) is
reused. Otherwise the model is traced again (``graph.trace``) and, before any bound is taken,
checked against the live module (``check_graph``):

- the graph and the module give the same outputs at the input set's centre and a few points in
  it (``oracle.points``);
- a forward pass leaves the model's state (parameters, buffers, attributes) unchanged;
- the module gives the same output twice (deterministic);
- no node of the graph draws random numbers or writes into the model's state.
"""

from __future__ import annotations

import contextlib
import weakref

import torch
import torch.fx as fx
import torch.nn as nn

from robusttext.bounds.graph import describe, global_hooks, run_node, trace, where
from robusttext.bounds.oracle import points
from robusttext.errors import RobustTextError

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEPT = 8  # graphs kept per model (a specialized one per input shape)
_PRIMITIVE = (int, float, bool, str, bytes, complex, type(None), torch.dtype, torch.device,
              torch.Size)
_SKIPPED = {"_parameters", "_buffers", "_modules"}  # fingerprinted apart


def fingerprint(model: nn.Module) -> tuple:
    """What the traced graph depends on: every submodule (its name, identity, class and the
    class's forward), training flag, parameters' and buffers' identities (their values are read
    when the graph runs), hooks (its own and global ones) and Python attributes (numbers, strings
    and containers of them by value, tensors by shape and dtype, anything else by identity, an
    object's own attributes one level deep). A tensor attribute the graph reads is checked by
    identity apart (``_reads_current``): a pruning hook sets ``weight`` anew at every call,
    which the traced graph does not read."""
    parts = [global_hooks()]
    for name, m in model.named_modules(remove_duplicate=False):
        parts.append((name, id(m), type(m), id(getattr(type(m), "forward", None)), m.training,
                      tuple((k, id(v)) for k, v in m._parameters.items()),
                      tuple((k, id(v)) for k, v in m._buffers.items()),
                      tuple((k, _freeze(v, 1)) for k, v in m.__dict__.items()
                            if k not in _SKIPPED)))
    return tuple(parts)


def _freeze(value, depth: int):
    """A hashable summary of an attribute's value (see ``fingerprint``)."""
    if isinstance(value, float):
        return ("float", repr(value))  # NaN compares equal to itself by its text
    if isinstance(value, _PRIMITIVE):
        return value
    if isinstance(value, (tuple, list)) and len(value) <= 64:
        return (type(value), tuple(_freeze(v, depth) for v in value))
    if isinstance(value, (set, frozenset)) and len(value) <= 64:
        return (type(value), frozenset(_freeze(v, depth) for v in value))
    if isinstance(value, dict) and len(value) <= 64:
        return (type(value), tuple((_freeze(k, 0), _freeze(v, depth)) for k, v in value.items()))
    if isinstance(value, torch.Tensor):  # the graph reads it by name: see ``_reads_current``
        return ("tensor", tuple(value.shape), value.dtype)
    if depth > 0 and not isinstance(value, nn.Module) and hasattr(value, "__dict__") and (
            not callable(value)):
        try:
            items = vars(value)
        except TypeError:
            items = {}
        if len(items) <= 256:
            return (id(value), tuple((k, _freeze(v, depth - 1)) for k, v in items.items()))
    return ("object", id(value))


def shapes_of(values) -> tuple:
    """What a specialized graph depends on: each input's shape, dtype and device."""
    return tuple((tuple(v.shape), v.dtype, v.device) if isinstance(v, torch.Tensor)
                 else ("value", repr(v)) for v in values)


def capture(model: nn.Module, input_set, extra_inputs=()):
    """The graph of ``model`` for inputs like ``input_set`` (see the module docstring), and
    None when it was found in the cache, else the check to run before any bound is returned:
    ``check()`` refuses a graph that is not the model and caches it otherwise. (The engine runs
    it after its forward pass, so that an operation no rule bounds is refused by name first;
    run both inside ``state_kept(model)``.)"""
    key = fingerprint(model)
    examples = (input_set.center.detach(), *extra_inputs)
    shapes = shapes_of(examples)
    kept = _CACHE.get(model, [])
    for entry_key, entry_shapes, module in kept:
        if entry_key == key and (entry_shapes is None or entry_shapes == shapes) and (
                _reads_current(module)):
            return module, None
    with state_kept(model):
        module = trace(model, examples)
        specialized = module.specialized

    def check():
        check_graph(model, module, input_set, tuple(extra_inputs), key)
        others = [e for e in _CACHE.get(model, []) if e[0] == key]
        _CACHE[model] = [(key, shapes if specialized else None, module)] + others[: _KEPT - 1]

    return module, check


def _reads_current(module: fx.GraphModule) -> bool:
    """True when every tensor the graph reads by name is still the one the model holds there."""
    return all(getattr(owner, name, None) is value for owner, name, value in module.live_reads)


def _state(model: nn.Module) -> list:
    named = list(model.named_parameters(remove_duplicate=False)) + list(
        model.named_buffers(remove_duplicate=False))
    return [(name, t) for name, t in named if t is not None]


@contextlib.contextmanager
def state_kept(model: nn.Module):
    """Put back every parameter or buffer written inside the block (tracing and checking run
    the model; a forward that updates its state is refused, and must not have updated it)."""
    state = _state(model)
    versions = [t._version for _, t in state]
    kept = [t.detach().clone() for _, t in state]
    try:
        yield
    finally:
        with torch.no_grad():
            for (_, t), version, old in zip(state, versions, kept):
                if t._version != version:
                    t.copy_(old)


def check_graph(model: nn.Module, module: fx.GraphModule, input_set, extra_inputs, key) -> None:
    """Refuse (``RobustTextError``) a graph that is not the model: see the module docstring."""
    name = type(model).__name__
    state = _state(model)
    versions = [t._version for _, t in state]
    at = points(input_set)
    with torch.no_grad():
        live = [_live(model, x, extra_inputs) for _, x in at]
        again = _live(model, at[0][1], extra_inputs)
        changed = [n for (n, t), v in zip(state, versions) if t._version != v]
        if changed:
            raise RobustTextError(
                f"{name}'s forward writes into its state ({changed[0]!r}, e.g. a running "
                "statistic or a counter); robusttext bounds a forward without side effects "
                "(call model.eval(), or move the update out of forward)")
        if fingerprint(model) != key:
            raise RobustTextError(
                f"{name}'s forward changes the model's attributes or submodules; robusttext "
                "bounds a forward without side effects")
        if isinstance(live[0], torch.Tensor) and not _close(live[0], again):
            raise RobustTextError(
                f"{name} gives different outputs for the same input (random numbers, such as "
                "dropout in training mode?); robusttext bounds a deterministic model (call "
                "model.eval())")
        _run_pure(module, (at[0][1], *extra_inputs), state, name)
        for (what, x), out in zip(at, live):
            if not isinstance(out, torch.Tensor):
                return  # the engine refuses it by name
            graph_out = module(x, *extra_inputs)
            if not isinstance(graph_out, torch.Tensor) or graph_out.shape != out.shape or (
                    not _close(graph_out, out)):
                gap = (graph_out - out).abs().max().item() if isinstance(
                    graph_out, torch.Tensor) and graph_out.shape == out.shape else "a shape"
                raise RobustTextError(
                    f"the graph robusttext traced from {name} does not compute what the model "
                    f"computes (they differ by {gap} at {what}): something the forward does is "
                    "not in the traced graph. Please report it with the model; the engine "
                    "cannot bound this model soundly until then")


def _live(model, x, extra_inputs):
    try:
        return model(x, *extra_inputs)
    except RobustTextError:
        raise
    except Exception as error:
        raise RobustTextError(
            f"running {type(model).__name__} on the input set's centre failed: "
            f"{type(error).__name__}: {error}") from None


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    rel = {torch.float64: 1e-9, torch.float32: 1e-4}.get(b.dtype, 1e-2)
    finite = b[torch.isfinite(b)]
    scale = 1 + (finite.abs().max().item() if finite.numel() else 0.0)
    return bool(torch.isclose(a, b, rtol=0, atol=rel * scale, equal_nan=True).all())


def _rng_states(values) -> list:
    states = [torch.random.get_rng_state()]
    devices = {v.device for v in values if isinstance(v, torch.Tensor) and v.is_cuda}
    states += [torch.cuda.get_rng_state(d) for d in sorted(devices, key=str)]
    return states


def _run_pure(module: fx.GraphModule, examples, state, name) -> None:
    """Run the graph node by node on ``examples``, refusing by name a node that draws random
    numbers or writes into the model's state (``state``: its named parameters and buffers)."""
    values: dict = {}
    placeholders = 0
    for node in module.graph.nodes:
        if node.op == "placeholder":
            values[node] = examples[placeholders] if placeholders < len(examples) else (
                node.args[0] if node.args else None)
            placeholders += 1
            continue
        if node.op == "output":
            return
        args = fx.node.map_arg(node.args, values.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, values.__getitem__)
        before_rng = _rng_states(examples)
        before = [t._version for _, t in state]
        try:
            values[node] = run_node(node, module, args, kwargs)
        except Exception as error:
            raise RobustTextError(
                f"running {describe(node, module)} at {where(node)} failed: "
                f"{type(error).__name__}: {error}") from None
        if any(not torch.equal(a, b) for a, b in zip(before_rng, _rng_states(examples))):
            raise RobustTextError(
                f"{describe(node, module)} draws random numbers (at {where(node)}); robusttext "
                "bounds a deterministic model: remove it, or call model.eval() for dropout")
        for (written, t), version in zip(state, before):
            if t._version != version:
                raise RobustTextError(
                    f"{describe(node, module)} writes into the model's state {written!r} (at "
                    f"{where(node)}); robusttext bounds a forward without side effects")
