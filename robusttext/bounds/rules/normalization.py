"""LayerNorm: refused as a module, rewritten into primitives when the model is traced.

``decompose_layer_norm`` (run on every traced graph by graph.py) replaces each ``nn.LayerNorm``
call, positional or keyword (``norm(input=x)``), by ``d = x - mean(x)``, ``y = d *
reciprocal(sqrt(mean(d * d) + eps)) * weight + bias`` over the normalised dimensions, which the
reductions, products and activations rules bound one by one. A LayerNorm call that reaches the
engine unrewritten is refused by name (the registration below).

The normalised ``z = d * reciprocal(...)`` is also clamped to ``[-r, r]`` with ``r`` a hair
above ``sqrt(n - 1)`` (``n`` normalised entries): ``d`` sums to 0, so ``d_i^2 <= (n - 1) / n *
sum(d^2) = (n - 1) mean(d^2)`` and ``|z_i| <= sqrt(n - 1)`` whatever the input. The clamp never
acts on a real forward pass; it caps the bounds where the variance's lower bound nears 0 and
``1 / sqrt(var + eps)`` is huge (a small ``eps``, as BERT's 1e-12).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.fx as fx
import torch.nn as nn

from robusttext.bounds.rules.registry import refuse_by_name
from robusttext.errors import RobustTextError

NORMALISED_SLACK = 1e-3  # relative room above sqrt(n - 1) for the rounding of a forward pass

refuse_by_name(
    (nn.LayerNorm,),
    "nn.LayerNorm is rewritten into primitives when the model is traced; this one was not "
    "(called outside the traced graph)",
)


def _layer_norm_input(node: fx.Node, layer: nn.LayerNorm):
    """The tensor a traced ``nn.LayerNorm`` call normalises (``norm(x)`` or ``norm(input=x)``)."""
    if len(node.args) == 1 and not node.kwargs:
        return node.args[0]
    if not node.args and set(node.kwargs) == {"input"}:
        return node.kwargs["input"]
    raise RobustTextError(
        f"nn.LayerNorm ({node.target}) is called with arguments {node.args!r} {dict(node.kwargs)!r}"
        f"; robusttext bounds it called on one tensor, norm(x) or norm(input=x)"
    )


def decompose_layer_norm(module: fx.GraphModule) -> None:
    """Rewrite every nn.LayerNorm call into primitives the engine bounds one by one:
    ``d = x - mean(x)``, ``y = d * reciprocal(sqrt(mean(d * d) + eps)) * weight + bias``."""
    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        layer = module.get_submodule(node.target)
        if type(layer) is not nn.LayerNorm:
            continue
        dims = tuple(range(-len(layer.normalized_shape), 0))
        with graph.inserting_before(node):
            x = _layer_norm_input(node, layer)
            mean = graph.call_method("mean", (x, dims), {"keepdim": True})
            centred = graph.call_function(operator.sub, (x, mean))
            square = graph.call_function(operator.mul, (centred, centred))
            variance = graph.call_method("mean", (square, dims), {"keepdim": True})
            shifted = graph.call_function(operator.add, (variance, layer.eps))
            inverse = graph.call_function(torch.reciprocal, (graph.call_function(
                torch.sqrt, (shifted,)),))
            out = graph.call_function(operator.mul, (centred, inverse))
            normalised = (out,)
            count = math.prod(layer.normalized_shape)
            if count >= 2:
                reach = math.sqrt(count - 1) * (1 + NORMALISED_SLACK)
                out = graph.call_function(torch.clamp, (out,), {"min": -reach, "max": reach})
                normalised += (out,)
            if layer.weight is not None:
                weight = graph.get_attr(f"{node.target}.weight")
                out = graph.call_function(operator.mul, (out, weight))
            if layer.bias is not None:
                bias = graph.get_attr(f"{node.target}.bias")
                out = graph.call_function(operator.add, (out, bias))
        for new in (mean, centred, square, variance, shifted, inverse, *normalised, out):
            new.meta["stack_trace"] = node.meta.get("stack_trace")
        node.replace_all_uses_with(out)
        graph.erase_node(node)
    graph.lint()
    module.recompile()
