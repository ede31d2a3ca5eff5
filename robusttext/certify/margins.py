"""Margins of a text model on given sentences (its lower bounds over a substitution set are
``robusttext.bounds.specs.margin_lower_bounds`` of ``robusttext.text.bounds.batch_problem``).

The margin of class ``y`` is ``min_{j != y} (z_y - z_j)`` over the logits ``z``; it is positive
exactly when ``y`` wins outright. A lower bound above zero over a set certifies ``y`` on every
sentence of the set.
"""

from __future__ import annotations

import torch
from torch import nn


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
