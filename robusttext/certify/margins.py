"""Margins of a text model: on given sentences, and lower bounds over a substitution set.

The margin of class ``y`` is ``min_{j != y} (z_y - z_j)`` over the logits ``z``; it is positive
exactly when ``y`` wins outright. A lower bound above zero over a set certifies ``y`` on every
sentence of the set.
"""

from __future__ import annotations

import torch
from torch import nn

from robusttext.perturb.encoded import EncodedBatch


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[n]``: ``z_y - max_{j != y} z_j`` for logits ``[n, classes]`` and labels ``[n]``."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.amax(dim=1)


def predict(model: nn.Module, token_ids: torch.Tensor, mask: torch.Tensor,
            chunk: int = 4096) -> torch.Tensor:
    """Logits ``[n, classes]`` of sentences ``token_ids [n, length]`` with ``mask [n, length]``,
    evaluated ``chunk`` rows at a time without gradients."""
    with torch.no_grad():
        return torch.cat([model(token_ids[i:i + chunk], mask[i:i + chunk])
                          for i in range(0, token_ids.shape[0], chunk)])


def margin_lower_bounds(
    model: nn.Module, batch: EncodedBatch, labels: torch.Tensor, num_classes: int,
    budget: int | None, method: str = "ibp", relaxation: str = "exact",
    alpha_steps: int | None = None,
) -> torch.Tensor:
    """Lower bounds ``[batch, classes - 1]`` on ``z_y - z_j`` over each sentence's set.

    ``model`` follows the text-model contract (``embedding``, ``body``); the set holds every
    rewrite of ``batch`` with at most ``budget`` positions replaced by their candidates.
    Differentiable in the model's parameters. ``alpha_steps``: alpha-CROWN's optimisation
    steps (None: the engine's default).
    """
    from robusttext.bounds import TokenSubstitutionSet, margin_matrix
    from robusttext.bounds.pooling import text_margin_lower

    table = model.embedding.weight
    subs = TokenSubstitutionSet(table, batch.token_ids, batch.candidate_ids,
                                batch.candidate_mask, budget, relaxation)
    original = subs.center  # [batch, length, dim]
    C = margin_matrix(labels, num_classes)
    steps = {} if alpha_steps is None else {"alpha_steps": alpha_steps}
    return text_margin_lower(model.body, subs, C.to(original), batch.mask.to(original), method,
                             **steps)
