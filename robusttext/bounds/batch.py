"""The batch as a type: every bounded node carries the batch at dimension 0, one example per
row, and no operation mixes the rows.

Rules see a node's shape, and ``[batch, ...]`` with the right size is no proof that dimension 0
is still the batch: ``W @ x`` with a constant ``W [b, b]``, ``x[..., 0, :]`` (an ellipsis that
reaches dimension 0), ``x.expand(b, *x.shape)`` (a new leading dimension), ``x + c`` with a
constant ``c [b, 1, n]`` (broadcasting puts the batch at dimension 1) all keep a leading size of
``b`` while one example's output reads another example's input, and CROWN then charges one
example's coefficients to another example's input.

``check_batch`` proves the property for a traced graph at the input's shapes by running it
three times on the input set's centre: as it is, and with every entry of the first (then the
last) example replaced by NaN. NaN reaches every output that reads it (through sums, products,
maxima, softmax, multiplication by 0), so an operation whose output has a NaN in another
example's rows where the clean run has none moves, contracts or broadcasts over the batch; it
is refused by name. The check runs once per graph and input shapes (the result is kept on the
traced module); a batch of one example cannot mix.
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
    nodes = [n for n in prop.nodes if n in prop.bounds and n is not prop.input_node]
    with torch.no_grad():
        clean = _run(prop, nodes, centre)
        for tainted in (0, prop.batch - 1):
            start = centre.clone()
            start[tainted] = float("nan")
            _compare(prop, nodes, clean, _run(prop, nodes, start), tainted)
    checked.add(key)


def _run(prop, nodes, start):
    values = {prop.input_node: start}
    for node in nodes:
        inputs = {n: values[n] for n in node.all_input_nodes if n in values}
        values[node] = prop.run(node, inputs, copy=True)
    return values


def _compare(prop, nodes, clean, probe, tainted):
    from robusttext.bounds.graph import describe, where

    for node in nodes:
        c, p = clean[node], probe[node]
        if not isinstance(p, torch.Tensor) or p.dim() == 0 or p.shape != c.shape:
            continue
        if not p.is_floating_point() and not p.is_complex():
            continue
        others = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
        others[tainted] = False
        reached = torch.isnan(p[others]) & ~torch.isnan(c[others])
        if bool(reached.any()):
            raise RobustTextError(
                f"{describe(node, prop.graph_module)} mixes the examples of the batch: its output "
                f"for one example depends on another example's input (it moves, contracts or "
                f"broadcasts over the batch dimension 0); robusttext bounds each example on its "
                f"own, with the batch first in every tensor (at {where(node)})"
            )
