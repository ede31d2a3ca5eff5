"""``compute_bounds``: run a traced model on sets of inputs instead of single inputs.

The model is traced once with torch.fx; the engine then walks the graph like an interpreter.
Nodes that do not depend on the perturbed input are evaluated normally (constants); every other
node gets an interval from the rule registered for its operation (rules/), after its arguments
are checked against what the rule declares (rules/registry.py). CROWN walks the graph backwards
from a node with linear bounds and concretizes them over the input set.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.fx as fx

from robusttext.bounds.alpha import ALPHA_LR, ALPHA_STEPS, check_alpha_settings, optimised_backward
from robusttext.bounds.batch import check_batch
from robusttext.bounds.capture import capture, state_kept
from robusttext.bounds.graph import (
    SHAPE_FUNCTIONS,
    SHAPE_QUERIES,
    describe,
    run_node,
    run_with,
    where,
)
from robusttext.bounds.input_sets import Box, InputSet, concretize_interval
from robusttext.bounds.oracle import REPORT, check_containment
from robusttext.bounds.rules import bind, known_finite, lookup, sound, widen, writes_input
from robusttext.errors import RobustTextError
from robusttext.methods import ENGINE_METHODS as METHODS

# Largest number of entries in one block of identity specifications for intermediate CROWN.
CROWN_BLOCK_ENTRIES = 2**25


_UNSET = object()


@dataclass(eq=False)
class NodeRecord:
    """What the walk knows of one node: one record per node, in ``_Propagation.records``."""

    position: int  # its place in the graph's order
    constant: object = _UNSET  # its value, when computed from no bounded input
    interval: tuple | None = None  # ``(lower, upper)``, when it depends on the bounded input
    is_box: bool = False  # the interval is a box of independent coordinates
    is_exact: bool = False  # the interval is the exact range of every coordinate
    finite: bool = False  # every entry of the interval is known to be finite
    rule: object = None  # the rule that bounded it
    ctx: NodeContext | None = None  # and what that rule saw
    alias_of: fx.Node | None = None  # the node whose memory it may share (views, in place)
    split: dict = field(default_factory=dict)  # dim -> (interval, its ends unbound along dim)
    fixed: tuple | None = None  # (interval, the interval detached), for a fixed pass


class _Intervals(Mapping):
    """The intervals of the bounded nodes, read from their records: ``node in bounds`` and
    ``bounds[node]`` as a dict of them would answer."""

    def __init__(self, records: dict):
        self.records = records

    def __getitem__(self, node):
        record = self.records.get(node)
        if record is None or record.interval is None:
            raise KeyError(node)
        return record.interval

    def __contains__(self, node) -> bool:
        record = self.records.get(node)
        return record is not None and record.interval is not None

    def __iter__(self):
        return (n for n, r in self.records.items() if r.interval is not None)

    def __len__(self) -> int:
        return sum(r.interval is not None for r in self.records.values())


class NodeContext:
    """What a rule sees of one node during propagation: its bounded inputs and their intervals,
    its arguments by parameter name (``args``, checked against the rule's declaration), the
    input set, and ``call`` to run the node on substitute tensors."""

    def __init__(self, prop: _Propagation, node: fx.Node):
        self.prop, self.node = prop, node
        self.module = (prop.graph_module.get_submodule(node.target)
                       if node.op == "call_module" else None)
        self.inputs = [n for n in node.all_input_nodes if prop.is_bounded(n)]
        self.args: dict = {}
        self.writes = False  # the call writes into its first input (in place)
        self.exact = False  # a rule sets it when its interval is the exact range
        self.kept: dict = {}  # what a rule derived from its input intervals, between passes

    @property
    def description(self) -> str:
        return describe(self.node, self.prop.graph_module)

    @property
    def where(self) -> str:
        return where(self.node)

    @property
    def input_set(self) -> InputSet:
        return self.prop.input_set

    def is_input(self, node) -> bool:
        """True for the model's perturbed input itself."""
        return node is self.prop.input_node

    def is_node(self, value) -> bool:
        return isinstance(value, fx.Node)

    def is_bounded(self, value) -> bool:
        return self.prop.is_bounded(value)

    def interval(self, node):
        return self.prop.interval(node)

    def is_finite(self, node) -> bool:
        """True when every entry of ``node``'s interval is known to be finite."""
        return self.prop.records[node].finite

    def output_interval(self):
        """The node's own interval (after its forward pass)."""
        return self.prop.interval(self.node)

    def example(self, node) -> torch.Tensor:
        """A tensor of the node's shape, dtype and device (its lower bound)."""
        return self.prop.interval(node)[0]

    def constant(self, node):
        return self.prop.records[node].constant

    def steps(self, node, dim: int):
        """The ends of ``node``'s interval split along ``dim`` (``unbind``): made once per
        interval and shared by every node that reads one step of it, so that the gradient of
        a sequence read step by step is one stack instead of a sequence-sized tensor per step."""
        ends = self.prop.interval(node)
        split = self.prop.records[node].split
        made = split.get(dim)
        if made is None or made[0] is not ends:  # none yet, or the interval was tightened
            made = (ends, (ends[0].unbind(dim), ends[1].unbind(dim)))
            split[dim] = made
        return made[1]

    def optimised_slope(self, sign: int):
        """alpha-CROWN's lower-line slopes ``[batch, specs, *shape]`` for this node on the side
        ``sign`` (-1 lower bound, +1 upper) during its optimised pass; None otherwise (the rule
        takes its own lines)."""
        slopes = self.prop.pass_slopes
        return None if slopes is None else slopes.get(sign, {}).get(self.node)

    def arg(self, name: str, default=None):
        """The argument ``name``: the node itself when bounded, else its constant value."""
        value = self.args.get(name, default)
        if isinstance(value, fx.Node):
            return value if self.prop.is_bounded(value) else self.prop.records[value].constant
        return value

    def call(self, substitutes: dict, zero_constants: bool = False):
        """Run the node with its bounded inputs replaced by ``substitutes`` (copied first when
        the call writes in place, so stored bounds are never overwritten)."""
        return self.prop.run(self.node, substitutes, zero_constants, copy=self.writes)


class _Propagation:
    def __init__(self, model: torch.nn.Module, input_set: InputSet, extra_inputs,
                 graph_module: fx.GraphModule | None = None):
        if graph_module is None:  # traced and checked once (the cache keeps the graph)
            graph_module, check = capture(model, input_set, extra_inputs)
            if check is not None:
                check()
        self.graph_module = graph_module
        self.nodes = list(self.graph_module.graph.nodes)
        self.input_set = input_set
        self.extra_inputs = tuple(extra_inputs)
        self.records = {node: NodeRecord(i) for i, node in enumerate(self.nodes)}
        self.pass_slopes = None  # alpha-CROWN's slopes, while a backward pass given them runs
        self.pass_fixed = False  # the intervals read as constants (detached) in that pass
        self.input_node = None
        self.output_node = None
        self.batch = None
        self.current = None  # the node being bounded (for an internal error's message)

    def is_bounded(self, value) -> bool:
        """True for a node whose value depends on the perturbed input (it has an interval)."""
        return isinstance(value, fx.Node) and self.records[value].interval is not None

    def interval(self, node):
        """``(lower, upper)`` of a bounded node; detached during a ``fixed`` backward pass (the
        detached pair is kept while the interval is the same, so rules' kept lines stay)."""
        record = self.records[node]
        if not self.pass_fixed:
            return record.interval
        if record.fixed is None or record.fixed[0] is not record.interval:
            lower, upper = record.interval
            record.fixed = (record.interval, (lower.detach(), upper.detach()))
        return record.fixed[1]

    @property
    def bounds(self) -> _Intervals:
        """Every bounded node's interval, read from the records (a mapping, for reading)."""
        return _Intervals(self.records)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, method: str) -> None:
        placeholders = 0
        for node in self.nodes:
            self.current = node
            if node.op == "placeholder":
                self._placeholder(node, placeholders)
                placeholders += 1
            elif node.op == "get_attr":
                self.records[node].constant = run_node(node, self.graph_module, (), {})
            elif node.op == "output":
                self._output(node)
            else:
                self._call(node, method)

    def _placeholder(self, node, index):
        if index == 0:
            self.input_node = node
            lower, upper = self.input_set.interval()
            record = self.records[node]
            record.interval = (lower, upper)
            record.finite = known_finite(lower, upper)
            self.batch = lower.shape[0]
            record.is_box = record.is_exact = isinstance(self.input_set, Box)
            return
        if index - 1 < len(self.extra_inputs):
            self.records[node].constant = self.extra_inputs[index - 1]
        elif node.args:  # the forward's default value
            self.records[node].constant = node.args[0]
        else:
            raise RobustTextError(
                f"the model's input {node.target!r} has no value: pass it in extra_inputs "
                f"(got {len(self.extra_inputs)} extra input(s))"
            )

    def _output(self, node):
        result = node.args[0]
        if not isinstance(result, fx.Node) or not self.is_bounded(result):
            raise RobustTextError(
                "the model must return a single tensor that depends on its first input"
            )
        self.output_node = result

    def run(self, node, substitutes: dict, zero_constants: bool = False, copy: bool = False):
        """Run ``node`` on the stored constants, with ``substitutes`` for the nodes it names
        (copied when ``copy``); ``zero_constants`` replaces floating constants by zeros."""
        records = self.records

        def value(n):
            if n in substitutes:
                return substitutes[n].clone() if copy else substitutes[n]
            v = records[n].constant
            if zero_constants and isinstance(v, torch.Tensor) and v.is_floating_point():
                return torch.zeros_like(v)
            return v

        return run_with(node, self.graph_module, value)

    def _call(self, node, method):
        record = self.records[node]
        bounded = [n for n in node.all_input_nodes if self.is_bounded(n)]
        if not bounded:
            try:
                record.constant = self.run(node, {})
            except Exception as error:
                raise RobustTextError(
                    f"running {describe(node, self.graph_module)} at {where(node)} failed: "
                    f"{type(error).__name__}: {error}") from None
            return
        if self._is_shape_query(node):
            record.constant = self.run(node, {n: self.records[n].interval[0] for n in bounded})
            return
        ctx = NodeContext(self, node)
        entry = lookup(node, self.graph_module)
        if entry is None:
            raise RobustTextError(
                f"robusttext has no bound rule for {ctx.description}, used at {ctx.where}"
            )
        ctx.args = bind(entry, node, ctx.module, ctx.is_bounded, ctx.constant,
                        lambda: ctx.description, lambda: ctx.where)
        ctx.writes = writes_input(entry, ctx.args, ctx.module)
        if ctx.writes:
            self._check_overwrite(ctx)
        try:
            rule = entry.rule.select(ctx)
            rule.check(ctx)
            if method in ("crown", "alpha-crown") and rule.needs_input_bounds:
                for pre in ctx.inputs:
                    self._tighten_by_crown(pre)
            lower, upper = rule.ibp(ctx)
        except RobustTextError:
            raise
        except Exception as error:
            raise RobustTextError(
                f"bounding {ctx.description} at {ctx.where} failed: {error}"
            ) from error
        if not isinstance(lower, torch.Tensor):
            raise RobustTextError(
                f"{ctx.description} returns several tensors, which robusttext does not "
                f"bound; slice the tensor instead (at {ctx.where})"
            )
        if lower.dim() == 0 or lower.shape[0] != self.batch:
            raise RobustTextError(
                f"{ctx.description} changes the batch dimension ({self.batch} examples to shape "
                f"{tuple(lower.shape)}); robusttext bounds each example on its own (at "
                f"{ctx.where})"
            )
        if rule.overflow_free:
            record.finite = all(self.records[n].finite for n in ctx.inputs)
        else:
            record.finite = known_finite(lower, upper)
            if not record.finite:
                lower, upper = sound(lower, upper)
        record.interval = (lower, upper)
        record.rule, record.ctx = rule, ctx
        if rule.may_alias or ctx.writes:
            source = ctx.inputs[0]
            record.alias_of = self.records[source].alias_of or source
        single_box = len(bounded) == 1 and self.records[bounded[0]].is_box
        record.is_box = single_box and rule.keeps_box
        record.is_exact = ctx.exact or (single_box and rule.linear)

    def _check_overwrite(self, ctx):
        """An in-place call is bounded as the fresh value it computes; refuse it when the
        tensor it overwrites (or a view sharing its memory) is read again afterwards."""
        node = ctx.node
        target = node.args[0]
        if not ctx.is_bounded(target):
            raise RobustTextError(
                f"{ctx.description} writes a value that depends on the perturbed input into a "
                f"constant tensor (a parameter, buffer or other input) in place, which robusttext "
                f"does not follow; make it out of place (at {ctx.where})"
            )
        records = self.records
        root = records[target].alias_of or target
        shared = [n for n, r in records.items()
                  if r.interval is not None and (r.alias_of or n) is root]
        for other in shared:
            if other is node:
                continue
            for user in other.users:
                if user is not node and records[user].position > records[node].position:
                    raise RobustTextError(
                        f"{ctx.description} writes into its input in place, and that tensor is "
                        f"read again afterwards at {where(user)}; robusttext bounds an in-place "
                        f"operation only when what it overwrites is not used again (make it "
                        f"out of place, e.g. inplace=False) (at {ctx.where})"
                    )

    def magnitude_read(self, node) -> float:
        """The largest finite magnitude among the values ``node`` reads (its inputs' intervals
        and constant tensors), for the containment oracle's rounding allowance."""
        largest = 0.0
        for source in node.all_input_nodes:
            record = self.records[source]
            ends = record.interval or (record.constant,)
            for end in ends:
                if isinstance(end, torch.Tensor) and end.is_floating_point() and end.numel():
                    finite = end.detach().abs().nan_to_num(posinf=0.0)
                    largest = max(largest, float(finite.max()))
        return largest

    @staticmethod
    def _is_shape_query(node) -> bool:
        if node.op == "call_method":
            return node.target in SHAPE_QUERIES
        if node.op != "call_function":
            return False
        if node.target is getattr:
            return len(node.args) > 1 and node.args[1] in SHAPE_QUERIES
        return node.target in SHAPE_FUNCTIONS

    # -- backward (CROWN) ------------------------------------------------------------------
    def backward(self, start, A_lower, A_upper, slopes=None, fixed: bool = False):
        """Bounds ``[batch, specs]`` on ``sum(A * start)``; ``A``: ``[batch, specs, *shape]``
        (either may be None to skip that side). ``slopes`` (alpha-CROWN's, sign -> node ->
        ``[batch, specs, *shape]``) replace the rules' own lower slopes where given (read by
        ``NodeContext.optimised_slope``); ``fixed``: the intermediate intervals are read as
        constants (detached), as when slopes are optimised on them."""
        before = self.pass_slopes, self.pass_fixed
        self.pass_slopes, self.pass_fixed = slopes, fixed
        try:
            return self._backward(start, A_lower, A_upper)
        finally:
            self.pass_slopes, self.pass_fixed = before

    def _backward(self, start, A_lower, A_upper):
        pending = {start: [A_lower, A_upper]}
        totals = [0, 0]
        stop = self.nodes.index(start)
        for node in reversed(self.nodes[: stop + 1]):
            if node not in pending:
                continue
            self.current = node
            a_lower, a_upper = pending.pop(node)
            if node is self.input_node:
                for side, (A, sign) in enumerate(((a_lower, -1), (a_upper, 1))):
                    if A is not None:
                        totals[side] = totals[side] + self.input_set.concretize(A, sign)
                continue
            record = self.records[node]
            ctx = record.ctx
            try:
                results, bias_lower, bias_upper = record.rule.backward(ctx, a_lower, a_upper)
            except RobustTextError:
                raise
            except Exception as error:
                raise RobustTextError(
                    f"linear bounds through {ctx.description} at {ctx.where} failed: {error}"
                ) from error
            totals[0] = totals[0] + bias_lower
            totals[1] = totals[1] + bias_upper
            for source, (r_lower, r_upper) in zip(ctx.inputs, results):
                slot = pending.setdefault(source, [None, None])
                for side, r in enumerate((r_lower, r_upper)):
                    if r is not None:
                        slot[side] = r if slot[side] is None else slot[side] + r
        # Infinite intermediate bounds can make a coefficient 0 * inf: widen such bounds.
        return (widen(totals[0], -1) if A_lower is not None else None,
                widen(totals[1], 1) if A_upper is not None else None)

    def _tighten_by_crown(self, node):
        record = self.records[node]
        if record.is_exact:
            return
        ibp_lower, ibp_upper = record.interval
        shape = ibp_lower.shape
        count = math.prod(shape[1:])
        in_entries = max(1, self.records[self.input_node].interval[0].numel())
        block = max(1, CROWN_BLOCK_ENTRIES // in_entries)
        eye = torch.eye(count, dtype=ibp_lower.dtype, device=ibp_lower.device)
        lowers, uppers = [], []
        for start in range(0, count, block):
            rows = eye[start : start + block].view(-1, *shape[1:])
            A = rows.unsqueeze(0).expand(shape[0], *rows.shape)
            lower, upper = self.backward(node, A, A)
            lowers.append(lower)
            uppers.append(upper)
        crown_lower = torch.cat(lowers, 1).view(shape)
        crown_upper = torch.cat(uppers, 1).view(shape)
        record.interval = intersect((ibp_lower, ibp_upper), (crown_lower, crown_upper))
        record.is_exact = False


def intersect(interval, linear):
    """The tighter of two bounds per entry: ``interval`` (IBP's ``(lower, upper)``) and
    ``linear`` (CROWN's, either side None when not computed).

    In exact arithmetic both contain every value, so they always overlap. In floating point
    CROWN sums terms far larger than the value they bound (a point box at 1e3 through
    ``x @ x^T`` and two attention products gave CROWN bounds 35% off in float32), and an empty
    intersection, a lower bound above the upper one, is what such an error looks like. Every
    relaxation downstream assumes ``lower <= upper``, so where the two contradict each other the
    interval bound is kept: it is computed forwards, at the magnitudes of the values themselves.
    """
    ibp_lower, ibp_upper = interval
    lower = ibp_lower if linear[0] is None else torch.maximum(ibp_lower, linear[0])
    upper = ibp_upper if linear[1] is None else torch.minimum(ibp_upper, linear[1])
    contradiction = lower > upper
    return (torch.where(contradiction, ibp_lower, lower),
            torch.where(contradiction, ibp_upper, upper))


def compute_bounds(
    model: torch.nn.Module,
    input_set: InputSet,
    method: str = "ibp",
    C: torch.Tensor | None = None,
    extra_inputs=(),
    bound_lower: bool = True,
    bound_upper: bool = True,
    alpha_steps: int = ALPHA_STEPS,
    alpha_lr: float = ALPHA_LR,
):
    """Bounds on ``model(x)`` (or on ``C @ model(x)``) for every ``x`` in ``input_set``.

    Args:
        model: an ``nn.Module``; its first positional input is the perturbed one.
        input_set: ``LinfBall``, ``Box`` or ``SubstitutionSet``.
        method: ``"ibp"``, ``"crown"`` (backward linear bounds with CROWN intermediate bounds),
            ``"crown-ibp"`` (IBP intermediate bounds, CROWN for the final layer) or
            ``"alpha-crown"`` (CROWN with the activations' lower slopes of the final pass
            optimised per specification; never looser than ``"crown"``, see bounds/alpha.py).
        C: optional specification ``[batch, specs, outputs]``; it is folded into the last
            affine layer.
        extra_inputs: values of the model's further positional inputs (constants), e.g. a
            padding mask ``[batch, length]``.
        bound_lower, bound_upper: skip one side (returned as None) to save time.
        alpha_steps, alpha_lr: alpha-CROWN's number of gradient steps (0: CROWN's bound) and
            Adam's step size; unused by the other methods.

    Returns:
        ``(lower, upper)``, each ``[batch, *output_shape]``, or ``[batch, specs]`` with ``C``.

    Raises:
        RobustTextError: for anything refused (an operation or argument no rule declares, a
            graph that is not the model, a random or state-changing forward: capture.py), for
            a bound the model's own outputs contradict (oracle.py; ``oracle.checking(False)``
            turns that check off), and for any other failure, named as an internal error.
    """
    if method not in METHODS:
        raise RobustTextError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(input_set, InputSet):
        raise RobustTextError(
            f"input_set must be a LinfBall, Box or SubstitutionSet, got {type(input_set).__name__}"
        )
    if not isinstance(model, torch.nn.Module):
        raise RobustTextError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_alpha_settings(alpha_steps, alpha_lr)
    return _bounds(model, input_set, method, C, extra_inputs, bound_lower, bound_upper, True,
                   (alpha_steps, alpha_lr))


def linear_bounds(model: torch.nn.Module, input_set: InputSet, method: str = "crown",
                  C: torch.Tensor | None = None, extra_inputs=()):
    """The backward (CROWN) bounds alone, ``method`` ``"crown"`` or ``"crown-ibp"``: the same
    as ``compute_bounds`` without taking the tighter of them and the interval bounds per entry
    (so that CROWN can be tested on its own)."""
    if method not in ("crown", "crown-ibp"):
        raise RobustTextError(f"linear_bounds takes 'crown' or 'crown-ibp', got {method!r}")
    return _bounds(model, input_set, method, C, extra_inputs, True, True, False)


def _bounds(model, input_set, method, C, extra_inputs, bound_lower, bound_upper, with_ibp,
            alpha=(ALPHA_STEPS, ALPHA_LR)):
    """``compute_bounds``'s work, every bound checked by the containment oracle (oracle.py);
    nothing but a ``RobustTextError`` escapes."""
    state: dict = {}
    try:
        lower, upper = _checked_bounds(state, model, input_set, method, C, extra_inputs,
                                       bound_lower, bound_upper, with_ibp, alpha)
    except RobustTextError:
        raise
    except Exception as error:
        raise internal_error(error, method, state.get("prop")) from error
    return lower, upper


def internal_error(error: Exception, method: str, prop) -> RobustTextError:
    """A ``RobustTextError`` for an exception that no check foresaw, naming the operation and
    the model line being bounded and how to report it."""
    node = getattr(prop, "current", None)
    at = (f" while bounding {describe(node, prop.graph_module)} at {where(node)}"
          if node is not None else "")
    return RobustTextError(
        f"internal error in robusttext's {method} bounds{at}: {type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else ''}. {REPORT}")


def _checked_bounds(state, model, input_set, method, C, extra_inputs, bound_lower, bound_upper,
                    with_ibp, alpha):
    lower, upper, prop = _engine_bounds(state, model, input_set, method, C, extra_inputs,
                                        bound_lower, bound_upper, with_ibp, alpha)
    node = prop.output_node
    check_containment(model, input_set, extra_inputs, C, lower, upper, method,
                      f"{describe(node, prop.graph_module)} at {where(node)}",
                      prop.magnitude_read(node))
    return lower, upper


def _engine_bounds(state, model, input_set, method, C, extra_inputs, bound_lower, bound_upper,
                   with_ibp, alpha):
    graph_module, check = capture(model, input_set, extra_inputs)
    with state_kept(model) if check is not None else contextlib.nullcontext():
        prop = state["prop"] = _Propagation(model, input_set, extra_inputs, graph_module)
        prop.forward(method)  # refuses by name an operation that no rule bounds
        check_batch(prop)  # no operation mixed the examples (batch.py)
        if check is not None:
            check()  # the graph is the model (capture.py)
    out = prop.output_node
    out_lower, out_upper = prop.records[out].interval
    batch = out_lower.shape[0]
    outputs = math.prod(out_lower.shape[1:])
    if C is not None:
        if not isinstance(C, torch.Tensor) or C.dim() != 3 or C.shape[0] != batch or (
            C.shape[2] != outputs
        ):
            raise RobustTextError(
                f"C must have shape [batch={batch}, specs, outputs={outputs}], got "
                f"{tuple(C.shape) if isinstance(C, torch.Tensor) else type(C).__name__}"
            )
        C = C.to(dtype=out_lower.dtype, device=out_lower.device)
        spec = C.view(batch, C.shape[1], *out_lower.shape[1:])
    if method == "ibp":
        if C is None:
            lower, upper = out_lower, out_upper
        else:
            lower, upper = _ibp_with_spec(prop, out, spec, bound_lower, bound_upper)
        return (widen(lower, -1) if bound_lower else None,
                widen(upper, 1) if bound_upper else None, prop)
    if C is None:
        eye = torch.eye(outputs, dtype=out_lower.dtype, device=out_lower.device)
        spec = eye.view(outputs, *out_lower.shape[1:]).unsqueeze(0).expand(batch, -1,
                                                                           *out_lower.shape[1:])
    if method == "alpha-crown":
        lower, upper = optimised_backward(prop, out, spec, bound_lower, bound_upper, *alpha)
    else:
        lower, upper = prop.backward(out, spec if bound_lower else None,
                                     spec if bound_upper else None)
    if with_ibp:  # interval bounds are sound too; keep the tighter of the two per entry
        ibp_lower, ibp_upper = _ibp_with_spec(prop, out, spec, True, True)
        lower, upper = intersect((widen(ibp_lower, -1), widen(ibp_upper, 1)), (lower, upper))
        lower, upper = (lower if bound_lower else None), (upper if bound_upper else None)
    if C is None:
        lower = lower.view_as(out_lower) if lower is not None else None
        upper = upper.view_as(out_upper) if upper is not None else None
    return lower, upper, prop


def _ibp_with_spec(prop, out, spec, bound_lower, bound_upper):
    """Interval bounds on ``spec . out``, with ``spec`` folded into the last affine operation."""
    record = prop.records[out]
    rule = record.rule
    a_lower = spec if bound_lower else None
    a_upper = spec if bound_upper else None
    if rule is None or not rule.linear:
        lower, upper = record.interval
        return (concretize_interval(lower, upper, spec, -1) if bound_lower else None,
                concretize_interval(lower, upper, spec, 1) if bound_upper else None)
    ctx = record.ctx
    results, bias_lower, bias_upper = rule.backward(ctx, a_lower, a_upper)
    totals = [bias_lower, bias_upper]
    for source, pair in zip(ctx.inputs, results):
        lower, upper = prop.records[source].interval
        for side, (A, sign) in enumerate(zip(pair, (-1, 1))):
            if A is not None:
                totals[side] = totals[side] + concretize_interval(lower, upper, A, sign)
    return (totals[0] if bound_lower else None, totals[1] if bound_upper else None)
