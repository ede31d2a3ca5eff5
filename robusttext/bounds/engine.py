"""``compute_bounds``: run a traced model on sets of inputs instead of single inputs.

The model is traced once with torch.fx; the engine then walks the graph like an interpreter.
Nodes that do not depend on the perturbed input are evaluated normally (constants); every other
node gets an interval from the rule of its operation (rules.py). CROWN walks the graph backwards
from a node with linear bounds and concretizes them over the input set.
"""

from __future__ import annotations

import math
from operator import getitem

import torch
import torch.fx as fx

from robusttext.bounds.graph import (
    SHAPE_FUNCTIONS,
    SHAPE_QUERIES,
    describe,
    op_name,
    refine,
    run_node,
    trace,
    where,
)
from robusttext.bounds.input_sets import Box, InputSet, SubstitutionSet, _concretize_box
from robusttext.bounds.rules import (
    NONLINEAR,
    REARRANGING_METHODS,
    REARRANGING_MODULES,
    RULES,
    AffineRule,
    _weight_and_bias,
)
from robusttext.bounds.rules_nonlinear import NONLINEAR_RULES
from robusttext.errors import RobustTextError

RULES = {**RULES, **NONLINEAR_RULES}

METHODS = ("ibp", "crown", "crown-ibp")
# Largest number of entries in one block of identity specifications for intermediate CROWN.
CROWN_BLOCK_ENTRIES = 2**25


class NodeContext:
    """What a rule sees of one node during propagation."""

    def __init__(self, prop: _Propagation, node: fx.Node):
        self.prop, self.node = prop, node
        self.module = (prop.graph_module.get_submodule(node.target)
                       if node.op == "call_module" else None)
        self.inputs = [n for n in node.all_input_nodes if n in prop.bounds]

    @property
    def description(self) -> str:
        return describe(self.node, self.prop.graph_module)

    @property
    def where(self) -> str:
        return where(self.node)

    def is_node(self, value) -> bool:
        return isinstance(value, fx.Node)

    def is_bounded(self, value) -> bool:
        return isinstance(value, fx.Node) and value in self.prop.bounds

    def interval(self, node):
        return self.prop.bounds[node]

    def example(self, node) -> torch.Tensor:
        """A tensor of the node's shape, dtype and device (its lower bound)."""
        return self.prop.bounds[node][0]

    def constant(self, node):
        return self.prop.constants[node]

    def node_args(self):
        return self.node.args

    def node_kwargs(self):
        return self.node.kwargs

    def call(self, substitutes: dict, zero_constants: bool = False):
        """Run the node with its bounded inputs replaced by ``substitutes``."""
        constants = self.prop.constants

        def value(n):
            if n in substitutes:
                return substitutes[n]
            v = constants[n]
            if zero_constants and isinstance(v, torch.Tensor) and v.is_floating_point():
                return torch.zeros_like(v)
            return v

        args = fx.node.map_arg(self.node.args, value)
        kwargs = fx.node.map_arg(self.node.kwargs, value)
        return run_node(self.node, self.prop.graph_module, args, kwargs)


class _Propagation:
    def __init__(self, model: torch.nn.Module, input_set: InputSet, extra_inputs,
                 widen: bool = False):
        self.graph_module = trace(model)
        self.nodes = list(self.graph_module.graph.nodes)
        self.input_set = input_set
        self.extra_inputs = tuple(extra_inputs)
        self.constants: dict = {}
        self.bounds: dict = {}
        self.ops: dict = {}
        self.is_box: dict = {}  # interval is a box of independent coordinates
        self.is_exact: dict = {}  # interval is the exact range of every coordinate
        self.input_node = None
        self.output_node = None
        # Replace NaN (from inf - inf in overflowing bounds) by infinities at every node; only
        # needed when the output came out NaN without it (compute_bounds then runs again).
        self.widen = widen

    # -- forward ---------------------------------------------------------------------------
    def forward(self, method: str) -> None:
        placeholders = 0
        for node in self.nodes:
            if node.op == "placeholder":
                self._placeholder(node, placeholders)
                placeholders += 1
            elif node.op == "get_attr":
                self.constants[node] = run_node(node, self.graph_module, (), {})
            elif node.op == "output":
                self._output(node)
            else:
                self._call(node, method)

    def _placeholder(self, node, index):
        if index == 0:
            self.input_node = node
            lower, upper = self.input_set.interval()
            self.bounds[node] = (lower, upper)
            self.is_box[node] = self.is_exact[node] = isinstance(self.input_set, Box)
            return
        if index - 1 < len(self.extra_inputs):
            self.constants[node] = self.extra_inputs[index - 1]
        elif node.args:  # the forward's default value
            self.constants[node] = node.args[0]
        else:
            raise RobustTextError(
                f"the model's input {node.target!r} has no value: pass it in extra_inputs "
                f"(got {len(self.extra_inputs)} extra input(s))"
            )

    def _output(self, node):
        result = node.args[0]
        if not isinstance(result, fx.Node) or result not in self.bounds:
            raise RobustTextError(
                "the model must return a single tensor that depends on its first input"
            )
        self.output_node = result

    def _call(self, node, method):
        bounded = [n for n in node.all_input_nodes if n in self.bounds]
        if not bounded:
            self.constants[node] = self._run(node, {})
            return
        if self._is_shape_query(node):
            self.constants[node] = self._run(node, {n: self.bounds[n][0] for n in bounded})
            return
        name = op_name(node, self.graph_module)
        if name is None:
            raise RobustTextError(
                f"robusttext has no bound rule for {describe(node, self.graph_module)}, used at "
                f"{where(node)}"
            )
        name = refine(name, node, lambda a: isinstance(a, fx.Node) and a in self.bounds)
        self.ops[node] = name
        ctx = NodeContext(self, node)
        if method == "crown" and name in NONLINEAR:
            for pre in ctx.inputs:
                self._tighten_by_crown(pre)
        try:
            special = self._substitution_first_layer(ctx, name)
            lower, upper = special if special is not None else RULES[name].ibp(ctx)
            if not isinstance(lower, torch.Tensor):
                raise RobustTextError(
                    f"{ctx.description} returns several tensors, which robusttext does not "
                    f"bound; slice the tensor instead (at {ctx.where})"
                )
            if self.widen:
                lower, upper = _widen(lower, -1), _widen(upper, 1)
            self.bounds[node] = (lower, upper)
        except RobustTextError:
            raise
        except Exception as error:
            raise RobustTextError(
                f"bounding {ctx.description} at {ctx.where} failed: {error}"
            ) from error
        single_box = len(bounded) == 1 and self.is_box[bounded[0]]
        self.is_box[node] = single_box and self._rearranges(node)
        self.is_exact[node] = special is not None or (
            single_box and isinstance(RULES[name], AffineRule)
        )

    def _run(self, node, substitutes):
        def value(n):
            return substitutes[n] if n in substitutes else self.constants[n]

        args = fx.node.map_arg(node.args, value)
        kwargs = fx.node.map_arg(node.kwargs, value)
        return run_node(node, self.graph_module, args, kwargs)

    @staticmethod
    def _is_shape_query(node) -> bool:
        if node.op == "call_method":
            return node.target in SHAPE_QUERIES
        if node.op != "call_function":
            return False
        if node.target is getattr:
            return len(node.args) > 1 and node.args[1] in SHAPE_QUERIES
        return node.target in SHAPE_FUNCTIONS

    def _rearranges(self, node) -> bool:
        if node.op == "call_method":
            return node.target in REARRANGING_METHODS
        if node.op == "call_module":
            return isinstance(self.graph_module.get_submodule(node.target), REARRANGING_MODULES)
        return node.op == "call_function" and node.target in (torch.flatten, torch.reshape,
                                                              torch.permute, torch.transpose,
                                                              getitem)

    def _substitution_first_layer(self, ctx, name):
        """Exact intervals of a per-token Linear or a Conv1d right after a SubstitutionSet."""
        if not isinstance(self.input_set, SubstitutionSet) or len(ctx.inputs) != 1:
            return None
        source = ctx.inputs[0]
        if name == "linear" and source is self.input_node:
            weight, bias = _weight_and_bias(ctx)
            return self.input_set.linear_interval(weight, bias)
        if name == "conv" and self._is_sequence_transpose(source):
            module = ctx.module
            if module is None or module.weight.dim() != 3 or isinstance(module.padding, str):
                return None
            return self.input_set.conv1d_interval(
                module.weight, module.bias, module.stride[0], module.padding[0],
                module.dilation[0], transposed_input=module.groups == 1,
            )
        return None

    def _is_sequence_transpose(self, node) -> bool:
        """True when ``node`` is the input ``[batch, length, dim]`` turned to ``[batch, dim,
        length]`` by transpose(1, 2) or permute(0, 2, 1)."""
        if node.all_input_nodes[:1] != [self.input_node]:
            return False
        args = tuple(a for a in node.args[1:])
        if node.op == "call_method" and node.target == "transpose" or (
            node.op == "call_function" and node.target is torch.transpose
        ):
            return sorted(d % 3 for d in args) == [1, 2]
        if node.op == "call_method" and node.target == "permute" or (
            node.op == "call_function" and node.target is torch.permute
        ):
            dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
            return tuple(d % 3 for d in dims) == (0, 2, 1)
        return False

    # -- backward (CROWN) ------------------------------------------------------------------
    def backward(self, start, A_lower, A_upper):
        """Bounds ``[batch, specs]`` on ``sum(A * start)``; ``A``: ``[batch, specs, *shape]``
        (either may be None to skip that side)."""
        pending = {start: [A_lower, A_upper]}
        totals = [0, 0]
        stop = self.nodes.index(start)
        for node in reversed(self.nodes[: stop + 1]):
            if node not in pending:
                continue
            a_lower, a_upper = pending.pop(node)
            if node is self.input_node:
                for side, (A, sign) in enumerate(((a_lower, -1), (a_upper, 1))):
                    if A is not None:
                        totals[side] = totals[side] + self.input_set.concretize(A, sign)
                continue
            ctx = NodeContext(self, node)
            try:
                results, bias_lower, bias_upper = RULES[self.ops[node]].backward(
                    ctx, a_lower, a_upper
                )
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
        return (_widen(totals[0], -1) if A_lower is not None else None,
                _widen(totals[1], 1) if A_upper is not None else None)

    def _tighten_by_crown(self, node):
        if self.is_exact.get(node, False):
            return
        ibp_lower, ibp_upper = self.bounds[node]
        shape = ibp_lower.shape
        count = math.prod(shape[1:])
        in_entries = max(1, self.bounds[self.input_node][0].numel())
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
        self.bounds[node] = (torch.maximum(ibp_lower, crown_lower),
                             torch.minimum(ibp_upper, crown_upper))
        self.is_exact[node] = False


def _widen(bound, sign):
    """Replace NaN in a lower (sign=-1) or upper (sign=+1) bound by -inf or +inf."""
    inf = float("inf")
    return torch.nan_to_num(bound, nan=sign * inf, posinf=inf, neginf=-inf)


def _concretize_interval(lower, upper, A, sign):
    """``min`` (sign=-1) or ``max`` (sign=+1) of ``sum(A * x)`` over ``lower <= x <= upper``."""
    return _concretize_box((lower + upper) / 2, (upper - lower) / 2, A, sign)


def compute_bounds(
    model: torch.nn.Module,
    input_set: InputSet,
    method: str = "ibp",
    C: torch.Tensor | None = None,
    extra_inputs=(),
    bound_lower: bool = True,
    bound_upper: bool = True,
):
    """Bounds on ``model(x)`` (or on ``C @ model(x)``) for every ``x`` in ``input_set``.

    Args:
        model: an ``nn.Module``; its first positional input is the perturbed one.
        input_set: ``LinfBall``, ``Box`` or ``SubstitutionSet``.
        method: ``"ibp"``, ``"crown"`` (backward linear bounds with CROWN intermediate bounds) or
            ``"crown-ibp"`` (IBP intermediate bounds, CROWN for the final layer).
        C: optional specification ``[batch, specs, outputs]``; it is folded into the last
            affine layer.
        extra_inputs: values of the model's further positional inputs (constants), e.g. a
            padding mask ``[batch, length]``.
        bound_lower, bound_upper: skip one side (returned as None) to save time.

    Returns:
        ``(lower, upper)``, each ``[batch, *output_shape]``, or ``[batch, specs]`` with ``C``.
    """
    if method not in METHODS:
        raise RobustTextError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(input_set, InputSet):
        raise RobustTextError(
            f"input_set must be a LinfBall, Box or SubstitutionSet, got {type(input_set).__name__}"
        )
    if not isinstance(model, torch.nn.Module):
        raise RobustTextError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    prop = _Propagation(model, input_set, extra_inputs)
    prop.forward(method)
    if any(torch.isnan(b).any() for b in prop.bounds[prop.output_node]):
        # Some interval overflowed (inf - inf): redo it with NaN widened to infinity per node.
        prop = _Propagation(model, input_set, extra_inputs, widen=True)
        prop.forward(method)
    out = prop.output_node
    out_lower, out_upper = prop.bounds[out]
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
        return (_widen(lower, -1) if bound_lower else None,
                _widen(upper, 1) if bound_upper else None)
    if C is None:
        eye = torch.eye(outputs, dtype=out_lower.dtype, device=out_lower.device)
        spec = eye.view(outputs, *out_lower.shape[1:]).unsqueeze(0).expand(batch, -1,
                                                                           *out_lower.shape[1:])
    lower, upper = prop.backward(out, spec if bound_lower else None,
                                 spec if bound_upper else None)
    # Interval bounds are sound too; keep the tighter of the two per entry.
    ibp_lower, ibp_upper = _ibp_with_spec(prop, out, spec, bound_lower, bound_upper)
    lower = torch.maximum(lower, _widen(ibp_lower, -1)) if lower is not None else None
    upper = torch.minimum(upper, _widen(ibp_upper, 1)) if upper is not None else None
    if C is None:
        lower = lower.view_as(out_lower) if lower is not None else None
        upper = upper.view_as(out_upper) if upper is not None else None
    return lower, upper


def _ibp_with_spec(prop, out, spec, bound_lower, bound_upper):
    """Interval bounds on ``spec . out``, with ``spec`` folded into the last affine operation."""
    rule = RULES[prop.ops[out]] if out in prop.ops else None
    a_lower = spec if bound_lower else None
    a_upper = spec if bound_upper else None
    if not isinstance(rule, AffineRule):
        lower, upper = prop.bounds[out]
        return (_concretize_interval(lower, upper, spec, -1) if bound_lower else None,
                _concretize_interval(lower, upper, spec, 1) if bound_upper else None)
    ctx = NodeContext(prop, out)
    results, bias_lower, bias_upper = rule.backward(ctx, a_lower, a_upper)
    totals = [bias_lower, bias_upper]
    for source, pair in zip(ctx.inputs, results):
        lower, upper = prop.bounds[source]
        for side, (A, sign) in enumerate(zip(pair, (-1, 1))):
            if A is not None:
                totals[side] = totals[side] + _concretize_interval(lower, upper, A, sign)
    return (totals[0] if bound_lower else None, totals[1] if bound_upper else None)
