"""The text task: a batch of sentences turned into the bound problem that the one margins
function (``robusttext.bounds.specs.margin_lower_bounds``) bounds, for certify, training,
evaluation and the benchmarks.

A text model follows the text-model contract (``robusttext.text.contract``): its ``body`` is
bounded over a ``TokenSubstitutionSet`` built from its ``embedding``, with the padding mask as
its extra input, either by an engine method (ibp, crown, crown-ibp, alpha-crown) or, for a body
that pools per-window features (``PooledBody``), by ``budget-ibp``. The method names are
declared in ``robusttext.methods``; ``auto`` is resolved per model by ``pick_method``.

>>> method = pick_method("auto", model.body)           # budget-ibp or crown-ibp
>>> problem = batch_problem(model, batch, labels, budget=2)
>>> lower = margin_lower_bounds(problem, method)       # [batch, classes - 1]
>>> certified = lower.amin(1) > 0                       # [batch]
"""

from __future__ import annotations

import torch
from torch import nn

from robusttext.bounds.input_sets import SubstitutionSet
from robusttext.bounds.pooling import is_pooled_body
from robusttext.bounds.specs import BoundProblem, margin_matrix
from robusttext.bounds.token_set import TokenSubstitutionSet
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO, POOLED_METHOD, TEXT_METHODS
from robusttext.perturb.encoded import EncodedBatch
from robusttext.text.contract import bounded_module, is_positionwise

__all__ = ["PositionwiseSet", "batch_problem", "body_problem", "check_method", "pick_method",
           "rows_as_read", "substitution_set"]


def pick_method(method: str, body: nn.Module) -> str:
    """``"auto"``: ``budget-ibp`` for a body that supports it, else ``crown-ibp`` (never looser
    than IBP: the engine keeps the tighter of the two); any other name unchanged."""
    if method != AUTO:
        return method
    return POOLED_METHOD if is_pooled_body(body) else "crown-ibp"


def check_method(method: str) -> str:
    """``method`` if it is one of ``TEXT_METHODS``, else RobustTextError naming them."""
    if method not in TEXT_METHODS:
        raise RobustTextError(f"unknown method {method!r}; choose one of {', '.join(TEXT_METHODS)}")
    return method


def substitution_set(model: nn.Module, batch: EncodedBatch, budget: int | None,
                     relaxation: str = "exact", eps: float = 1.0,
                     frozen_padding: bool = False) -> TokenSubstitutionSet:
    """The embeddings of ``batch`` and its candidates, the candidates moved to
    ``e + eps (e_k - e)``: original ``[batch, length, dim]``, candidates
    ``[batch, length, candidates, dim]``, at most ``budget`` positions changed. The first
    layer's bounds are computed once per distinct (token, candidates) row.

    The table is float32 (float64 for a float64 model). ``frozen_padding`` cuts its padding
    row from the gradient, as ``nn.Embedding(padding_idx=...)`` does (what a training loss
    needs: indexing the table directly would otherwise train the padding row, and the gradient
    would depend on how much padding a batch has)."""
    table = rows_as_read(model.embedding)
    if table.dtype != torch.float64:
        table = table.float()
    pad = model.embedding.padding_idx
    if frozen_padding and pad is not None and table.requires_grad:
        is_pad = torch.zeros(table.shape[0], 1, dtype=torch.bool, device=table.device)
        is_pad[pad] = True
        table = torch.where(is_pad, table.detach(), table)
    subs = TokenSubstitutionSet(table, batch.token_ids, batch.candidate_ids,
                                batch.candidate_mask, budget, relaxation, eps=eps)
    if is_positionwise(model.body):
        return PositionwiseSet.through(model.body, subs, batch.mask.to(subs.center))
    return subs


class PositionwiseSet(SubstitutionSet):
    """A substitution set carried through a ``Positionwise`` body's first layers: the original
    ``positionwise(e)`` and every candidate's exact image ``positionwise(e_k)`` at its own
    position, ``[batch, length, dim']`` and ``[batch, length, candidates, dim']``. Every
    rewrite's input to ``encode`` is one of these vectors per position, so bounding ``encode``
    over this set bounds the body over the rewrites (``body_problem`` does)."""

    @classmethod
    def through(cls, body: nn.Module, subs: SubstitutionSet, mask: torch.Tensor):
        """The images of ``subs`` (its candidates as moved by its eps) under
        ``body.positionwise``; ``mask`` ``[batch, length]`` float."""
        candidates = subs.candidates
        b, length, k, d = candidates.shape
        center = body.positionwise(subs.center, mask)
        if k:
            flat = candidates.transpose(1, 2).reshape(b * k, length, d)
            images = body.positionwise(flat, mask.repeat_interleave(k, 0))
            images = images.reshape(b, k, length, -1).transpose(1, 2)
        else:
            images = center.new_zeros(b, length, 0, center.shape[-1])
        return cls(center, images, subs.candidate_mask, subs.budget, subs.relaxation)


def rows_as_read(embedding: nn.Module) -> torch.Tensor:
    """The embedding table ``[vocab, dim]`` as the embedding's forward returns its rows.

    ``nn.Embedding(max_norm=m)`` rescales every row it reads whose ``norm_type``-norm exceeds
    ``m`` to norm ``m`` (by ``m / (norm + 1e-7)``, in place, before returning it), so a
    rewrite's embeddings are the rescaled rows: the table is rescaled the same way here, out of
    place (differentiably; a row already rescaled is left as it is). Any other option of
    ``nn.Embedding`` (``padding_idx``, ``scale_grad_by_freq``, ``sparse``) reads the rows as
    they are. A module that is not an ``nn.Embedding``, or whose forward is not
    ``nn.Embedding``'s (a subclass's own, an instance's, a forward hook), is refused by name:
    the rows it returns need not be the table's."""
    if not isinstance(embedding, nn.Embedding):
        raise RobustTextError(
            f"the model's embedding must be an nn.Embedding (token ids -> rows of its weight), "
            f"got {type(embedding).__name__}")
    if (type(embedding).forward is not nn.Embedding.forward or "forward" in vars(embedding)
            or embedding._forward_hooks or embedding._forward_pre_hooks):
        raise RobustTextError(
            f"the model's embedding ({type(embedding).__name__}) changes what nn.Embedding "
            f"returns (its own forward or a forward hook); robusttext bounds the rows of its "
            f"weight as nn.Embedding reads them: move the change into the body")
    table = embedding.weight
    if embedding.max_norm is None:
        return table
    norms = table.norm(p=embedding.norm_type, dim=1, keepdim=True)
    scale = torch.where(norms > embedding.max_norm, embedding.max_norm / (norms + 1e-7),
                        torch.ones_like(norms))
    return table * scale


def batch_problem(
    model: nn.Module,
    batch: EncodedBatch,
    labels: torch.Tensor,
    budget: int | None,
    relaxation: str = "exact",
    eps: float = 1.0,
    classes: int | None = None,
    frozen_padding: bool = False,
    subs: TokenSubstitutionSet | None = None,
) -> BoundProblem:
    """The text task's bound problem of a batch: the margins ``z_y - z_j`` over each sentence's
    set, for the one margins function ``robusttext.bounds.specs.margin_lower_bounds`` (which
    gives their lower bounds ``[batch, classes - 1]``).

    ``model`` follows the text-model contract; the set holds every rewrite of ``batch`` with at
    most ``budget`` positions (None: any number) replaced by their candidates (moved to
    ``e + eps (e_k - e)``), relaxed by ``relaxation``. ``classes``: the class count, read
    from the model's logits on ``batch`` when not given. ``frozen_padding``: see
    ``substitution_set``. ``subs``: the set of ``batch`` built once by ``substitution_set``
    (with these ``relaxation``, ``eps`` and ``frozen_padding``, at any budget), reused at
    ``budget`` instead of building it again.
    """
    if classes is None:
        with torch.no_grad():
            classes = model(batch.token_ids, batch.mask).shape[1]
    if subs is None:
        subs = substitution_set(model, batch, budget, relaxation, eps, frozen_padding)
    elif subs.budget != budget:
        subs = subs.with_budget(budget)
    C = margin_matrix(labels, classes)
    return body_problem(model.body, subs, C, batch.mask.to(subs.center))


def body_problem(body: nn.Module, input_set, C: torch.Tensor, mask: torch.Tensor) -> BoundProblem:
    """The bound problem of ``C @ body(x, mask)`` over ``input_set`` (a ``SubstitutionSet``,
    batch ``batch``): the module bounded is ``bounded_module(body, length)`` (the body itself
    unless it unrolls, its ``encode`` over a ``PositionwiseSet``), its extra input the mask
    ``[batch, length]`` float; ``C`` ``[batch, specs, classes]``."""
    module = bounded_module(body, mask.shape[1], isinstance(input_set, PositionwiseSet))
    return BoundProblem(module, input_set, C, (mask,))
