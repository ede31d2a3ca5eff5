"""The batch as a type: every bounded node carries the batch at dimension 0, one example per
row, and no operation mixes the rows.

Rules see a node's shape, and ``[batch, ...]`` with the right size is no proof that dimension 0
is still the batch: ``W @ x`` with a constant ``W [b, b]``, ``x[..., 0, :]`` (an ellipsis that
reaches dimension 0), ``x.expand(b, *x.shape)`` (a new leading dimension), ``x + c`` with a
constant ``c [b, 1, n]`` (broadcasting puts the batch at dimension 1) all keep a leading size of
``b`` while one example's output reads another example's input, and CROWN then charges one
example's coefficients to another example's input.

``check_batch`` proves the property for a traced graph at the input's shapes by running it on
the input set's centre with every entry of the first (then the
last) example replaced by NaN. NaN reaches every output that reads it (through sums, products,
maxima, softmax, multiplication by 0), so a model output with a NaN in another example's rows
where the clean output has none (known without running it where the output's bounds are
finite, else found by a third run) mixes the examples; the graph is then run node by node to find
the operation that moves, contracts or broadcasts over the batch, which is refused by name. An
operation whose mixing never reaches the output cannot change the bound. The check runs once
per graph and input shapes (the result is kept on the traced module), two or three forward
passes of the graph's own code; a batch of one example cannot mix.
"""

from __future__ import annotations

import torch

from robusttext.errors import RobustTextError


def _key(prop) -> tuple:
    def sig(value):
        if isinstance(value, torch.Tensor):
            return ("tensor", tuple(value.shape), value.dtype, value.device.type)
        return (type(value).__name__,)

    centre = prop.input_set.center
    return (sig(centre), tuple(sig(v) for v in prop.extra_inputs))


def check_batch(prop) -> None:
    """Raise ``RobustTextError`` naming the first operation of ``prop``'s graph whose output for
    one example depends on another example's input (``prop``: the engine's propagation, after
    its forward pass)."""
    if prop.batch is None or prop.batch < 2:
        return
    module = prop.graph_module
    checked = module.__dict__.setdefault("_robusttext_batch_checked", set())
    key = _key(prop)
    if key in checked:
        return
    centre = prop.input_set.center.detach()
    if centre.shape[:1] != (prop.batch,):
        return
    with torch.no_grad():
        # the clean output has no NaN where the output's bounds are finite (it lies inside
        # them): then the clean run is not needed
        lower, upper = prop.bounds[prop.output_node]
        finite = bool(torch.isfinite(lower).all() and torch.isfinite(upper).all())
        clean = None if finite else _model_output(prop, centre)
        for tainted in (0, prop.batch - 1):
            start = centre.clone()
            start[tainted] = float("nan")
            if _reached(clean, _model_output(prop, start), tainted):
                # find and name the first node that mixes (one node at a time: slower, only
                # on a refusal)
                nodes = [n for n in prop.nodes if n in prop.bounds and n is not prop.input_node]
                _compare(prop, nodes, _run(prop, nodes, centre), _run(prop, nodes, start),
                         tainted)
                raise RobustTextError(
                    "the model mixes the examples of the batch: its output for one example "
                    "depends on another example's input; robusttext bounds each example on "
                    "its own, with the batch first in every tensor")
    checked.add(key)


def _model_output(prop, start):
    """The traced graph's output on ``start`` and copies of the extra inputs (its own generated
    code, much faster than running node by node; an in-place write never reaches the caller's
    tensors)."""
    extra = [e.clone() if isinstance(e, torch.Tensor) else e for e in prop.extra_inputs]
    return prop.graph_module(start, *extra)


def _reached(clean, probe, tainted) -> bool:
    """True when NaN reached a row other than ``tainted`` of ``probe`` where ``clean`` has
    none."""
    if not isinstance(probe, torch.Tensor) or probe.dim() == 0 or not probe.is_floating_point():
        return False
    others = torch.ones(probe.shape[0], dtype=torch.bool, device=probe.device)
    others[tainted] = False
    reached = torch.isnan(probe[others])
    if clean is not None:  # None: known to have no NaN
        if clean.shape != probe.shape:
            return False
        reached &= ~torch.isnan(clean[others])
    return bool(reached.any())


def _run(prop, nodes, start):
    values = {prop.input_node: start}
    for node in nodes:
        inputs = {n: values[n] for n in node.all_input_nodes if n in values}
        values[node] = prop.run(node, inputs, copy=True)
    return values


def _compare(prop, nodes, clean, probe, tainted):
    from robusttext.bounds.graph import describe, where

    for node in nodes:
        if _reached(clean[node], probe[node], tainted):
            raise RobustTextError(
                f"{describe(node, prop.graph_module)} mixes the examples of the batch: its output "
                f"for one example depends on another example's input (it moves, contracts or "
                f"broadcasts over the batch dimension 0); robusttext bounds each example on its "
                f"own, with the batch first in every tensor (at {where(node)})"
            )
