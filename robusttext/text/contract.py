"""The text-model contract: an embedding, then a body the bound engine can trace.

A text classifier that robusttext certifies or trains is an ``nn.Module`` with

- ``embedding``: an ``nn.Embedding`` (token ids ``[batch, length]`` -> ``[batch, length, dim]``),
- ``body``: an ``nn.Module`` called as ``body(embeddings [batch, length, dim], mask [batch, length]
  float) -> logits [batch, classes]``,
- ``forward(token_ids, mask) = body(embedding(token_ids), mask)``.

The engine bounds ``body`` over a ``SubstitutionSet`` built from ``embedding``. Three optional
parts, declared as protocols, let a body be bounded better:

- ``Unrollable``: ``body.for_length(length)`` gives the module to trace for inputs of that many
  tokens (an unrolled recurrence), see ``bounded_module``;
- ``Positionwise``: ``body.positionwise(x, mask)`` computes its first layers, each position
  from its own vector alone, and ``body.encode(h, mask)`` the rest: the set is then made of
  every candidate's exact image under those layers (a LayerNorm's image of a convex hull is
  far wider than the hull of its images), and ``encode`` is bounded, see ``bounded_module``;
- ``robusttext.bounds.pooling.PooledBody``: ``features``, ``head``, ``window`` and
  ``linear_head`` of a body that pools per-window features, for ``budget-ibp``.

``check_text_model`` says clearly what a model lacks; ``wrap_text_model`` turns a model written
the ordinary way (``forward(token_ids, mask)`` that embeds somewhere inside) into one that
follows the contract by cutting its torch.fx graph at the embedding call::

    class MyClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 32)
            self.conv = nn.Conv1d(32, 64, 3, padding=1)
            self.out = nn.Linear(64, 2)

        def forward(self, ids, mask):              # ids [batch, length], mask [batch, length]
            h = torch.relu(self.conv(self.emb(ids).transpose(1, 2))) * mask.unsqueeze(1)
            return self.out(h.sum(2) / mask.sum(1, keepdim=True))

    model = wrap_text_model(MyClassifier(), embedding="emb")
    model.embedding        # the same nn.Embedding (shared weights)
    model.body(e, mask)    # an fx GraphModule: everything after the embedding
    model(ids, mask)       # equals MyClassifier()(ids, mask)
"""

from __future__ import annotations

import operator
from typing import Protocol

import torch
import torch.fx as fx
from torch import nn

from robusttext.bounds.graph import NeedsExamples, Tracer, runs_more_than_forward
from robusttext.bounds.pooling import PooledBody
from robusttext.errors import RobustTextError

__all__ = ["ContractTextModel", "PooledBody", "Positionwise", "Unrollable", "bounded_module",
           "check_text_model", "is_positionwise", "wrap_text_model"]

_HINT = ("a text model needs `embedding` (an nn.Embedding) and `body` (an nn.Module taking "
         "(embeddings [batch, length, dim], mask [batch, length])); wrap a model whose forward is "
         "(token_ids, mask) with robusttext.text.contract.wrap_text_model(model, "
         "embedding='name.of.embedding')")


def check_text_model(model: object) -> nn.Module:
    """Return ``model`` if it follows the text-model contract, else raise RobustTextError
    naming what is missing."""
    if not isinstance(model, nn.Module):
        raise RobustTextError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    name = type(model).__name__
    problems = []
    embedding = getattr(model, "embedding", None)
    if embedding is None:
        problems.append("it has no `embedding` attribute")
    elif not isinstance(embedding, nn.Embedding):
        problems.append(f"its `embedding` is a {type(embedding).__name__}, not an nn.Embedding")
    body = getattr(model, "body", None)
    if body is None:
        problems.append("it has no `body` attribute")
    elif not isinstance(body, nn.Module):
        problems.append(f"its `body` is a {type(body).__name__}, not an nn.Module")
    if problems:
        raise RobustTextError(f"model {name} does not follow the text-model contract: "
                              f"{'; '.join(problems)}. {_HINT}")
    return model


class Unrollable(Protocol):
    """The optional part of the text-model contract for a body whose graph depends on the input
    length: ``for_length(length)`` is a module (sharing the body's weights) that traces to
    exactly that many steps."""

    def for_length(self, length: int) -> nn.Module: ...


class Positionwise(Protocol):
    """The optional part of the text-model contract for a body whose first layers read each
    position alone (position embeddings, a LayerNorm): ``body(x, mask) = encode(positionwise(x,
    mask), mask)``, where ``positionwise(x, mask) [batch, length, dim']``'s position ``i``
    depends on ``x[:, i]`` and ``mask`` only. A body that declares it and mixes positions there
    would make the bounds unsound: declare it only where that holds by construction."""

    def positionwise(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...

    def encode(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


def is_positionwise(body: nn.Module) -> bool:
    """True for a body that declares ``Positionwise`` (both methods) and whose call is its
    class's ``forward``: a body with hooks or a ``forward`` of its own runs more than
    ``encode(positionwise(x))``, so it is bounded whole, as its call runs."""
    return (callable(getattr(body, "positionwise", None))
            and callable(getattr(body, "encode", None)) and not runs_more_than_forward(body))


class _Encode(nn.Module):
    """``body.encode`` as a module of its own, sharing the body's parameters (kept in the
    body's ``__dict__``, outside its state: saving the body is unchanged)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body.encode(h, mask)


def bounded_module(body: nn.Module, length: int, positionwise: bool = False) -> nn.Module:
    """The module whose graph is bounded for inputs of ``length`` tokens: with
    ``positionwise`` (a set of ``Positionwise`` images), the body's ``encode`` as a module,
    kept on the body so that its trace is reused; else ``body.for_length(length)`` for an
    ``Unrollable`` body, else ``body``."""
    if positionwise:
        if "_encode" not in body.__dict__:  # made once, its trace reused
            body.__dict__["_encode"] = _Encode(body)
        return body.__dict__["_encode"]
    for_length = getattr(body, "for_length", None)
    return body if for_length is None else for_length(length)


class ContractTextModel(nn.Module):
    """``embedding`` then ``body``: ``forward(ids, mask) = body(embedding(ids), mask)``.

    token_ids ``[batch, length]`` long, mask ``[batch, length]`` float -> logits
    ``[batch, classes]``.
    """

    def __init__(self, embedding: nn.Embedding, body: nn.Module):
        super().__init__()
        self.embedding = embedding
        self.body = body

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body(self.embedding(token_ids), mask)


def wrap_text_model(module: nn.Module, embedding: str) -> ContractTextModel:
    """A contract-following model made from ``module``, whose forward is ``(token_ids, mask)``.

    ``embedding`` is the dotted name of the ``nn.Embedding`` inside ``module`` (as in
    ``module.named_modules()``). The module is traced with torch.fx and its graph is cut at the
    one call of that embedding, which must take the first input (the token ids) directly; the
    token ids may not be used anywhere else. The result shares its parameters with ``module``.
    See the module docstring for an example.
    """
    if not isinstance(module, nn.Module):
        raise RobustTextError(f"wrap_text_model needs an nn.Module, got {type(module).__name__}")
    try:
        layer = module.get_submodule(embedding)
    except AttributeError:
        names = [n for n, m in module.named_modules() if isinstance(m, nn.Embedding)]
        known = ", ".join(repr(n) for n in names) or "none"
        raise RobustTextError(f"{type(module).__name__} has no submodule {embedding!r}; its "
                              f"nn.Embedding layers: {known}") from None
    if not isinstance(layer, nn.Embedding):
        raise RobustTextError(f"{embedding!r} in {type(module).__name__} is a "
                              f"{type(layer).__name__}, not an nn.Embedding")
    try:
        graph = _trace(module, embedding)
    except _TryWithExamples:  # shape code: cut per input shape, when the shapes are known
        return ContractTextModel(layer, _ShapedBody(module, embedding))
    body = fx.GraphModule(module, _cut_at_embedding(graph, embedding, type(module).__name__))
    return ContractTextModel(layer, body)


class _TryWithExamples(Exception):
    pass


class _KeepEmbedding(Tracer):
    """Keeps the embedding a single call_module node even when it is not a leaf by default."""

    def __init__(self, embedding: str, examples=None):
        super().__init__(examples)
        self.embedding = embedding

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname == self.embedding or super().is_leaf_module(m, qualname)


class _Calls(nn.Module):
    """``model(token_ids, mask)``, its ``logits`` where it returns a ``transformers`` output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, token_ids, mask):
        out = self.model(token_ids, mask)
        return out.logits if hasattr(out, "logits") else out


def _trace(module: nn.Module, embedding: str, examples=None) -> fx.Graph:
    try:
        return _KeepEmbedding(embedding, examples).trace(module)
    except NeedsExamples:
        if examples is None:
            raise _TryWithExamples from None
        raise
    except RobustTextError as error:
        raise RobustTextError(f"cannot trace {type(module).__name__} with torch.fx: "
                              f"{error}") from None
    except Exception as error:  # fx raises many kinds of errors on untraceable code
        if examples is None:
            raise _TryWithExamples from None
        raise RobustTextError(
            f"cannot trace {type(module).__name__} with torch.fx: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}") from None


class _ShapedBody(nn.Module):
    """The body of a wrapped model whose forward needs concrete shapes (``x.view(*shape)``,
    ``torch.finfo(x.dtype)``, a branch on a shape; ``transformers`` classifiers): cut from a
    trace of the model on inputs of each shape met, kept per shape."""

    def __init__(self, module: nn.Module, embedding: str):
        super().__init__()
        self.whole = _Calls(module)
        self.embedding_name = f"model.{embedding}"
        self.cut: dict = {}

    def forward(self, embeddings, mask):
        values = [v.tracer.example_of(v) if isinstance(v, fx.Proxy) else v
                  for v in (embeddings, mask)]
        key = tuple((tuple(v.shape), v.dtype) for v in values)
        body = self.cut.get(key)
        if body is None:
            ids = torch.zeros(values[0].shape[:2], dtype=torch.long, device=values[0].device)
            graph = _trace(self.whole, self.embedding_name, (ids, values[1]))
            body = fx.GraphModule(self.whole, _cut_at_embedding(
                graph, self.embedding_name, type(self.whole.model).__name__))
            self.cut = {**self.cut, key: body}
        return body(embeddings, mask)


def _cut_at_embedding(graph: fx.Graph, embedding: str, name: str) -> fx.Graph:
    """The graph of everything after the embedding: inputs (embeddings, the other inputs)."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise RobustTextError(f"{name}.forward takes no inputs; expected (token_ids, mask)")
    ids = placeholders[0]
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target == embedding]
    if len(calls) != 1:
        raise RobustTextError(f"{name}.forward calls the embedding {embedding!r} {len(calls)} "
                              "times; the contract needs exactly one call")
    call = calls[0]
    if call.args[:1] != (ids,) or len(call.args) != 1 or call.kwargs:
        raise RobustTextError(f"{name}.forward must call {embedding!r} on its first input "
                              f"({ids.name!r}, the token ids) directly")
    shape_queries = [u for u in ids.users if u is not call and _asks_shape(u)]
    other_uses = [u for u in ids.users if u is not call and u not in shape_queries]
    if other_uses:
        raise RobustTextError(f"{name}.forward uses the token ids {ids.name!r} outside the "
                              f"embedding (in {other_uses[0].format_node()}); the body may depend "
                              "on the ids only through the embedding (pass a mask instead)")
    body = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    env[call] = body.placeholder("embeddings")
    for node in graph.nodes:
        if node is ids or node is call:
            continue
        if node in shape_queries:  # the ids' shape is the embeddings' first two dims
            env[node] = _embeddings_shape(body, node, env[call])
            continue
        env[node] = body.node_copy(node, lambda n: env[n])
    body.lint()
    return body


def _asks_shape(node: fx.Node) -> bool:
    """``ids.size()``, ``ids.size(d)``, ``ids.shape`` or ``ids.device``."""
    if node.op == "call_method" and node.target == "size":
        return not node.kwargs and len(node.args) <= 2 and all(
            isinstance(d, int) for d in node.args[1:])
    return node.op == "call_function" and node.target is getattr and len(node.args) == 2 and (
        node.args[1] in ("shape", "device"))


def _embeddings_shape(body: fx.Graph, node: fx.Node, embeddings: fx.Node) -> fx.Node:
    """The node ``node`` asked of the token ids, asked of the embeddings ``[batch, length,
    dim]`` instead."""
    if node.op == "call_method" and len(node.args) == 2:
        d = node.args[1]
        return body.call_method("size", (embeddings, d if d >= 0 else d - 1))
    if node.op == "call_function" and node.args[1] == "device":
        return body.call_function(getattr, (embeddings, "device"))
    whole = body.call_method("size", (embeddings,))
    return body.call_function(operator.getitem, (whole, slice(None, 2)))
