"""Clean and worst-case losses of a text model over a perturbation space.

The worst case comes from lower bounds on the margins ``z_y - z_j`` over the substitution set
(``robusttext.text.bounds.margin_lower_bounds``), mixed and turned into a loss by the
task-neutral ``robusttext.train.certified`` (which vision's training uses too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robusttext.perturb import EncodedBatch
from robusttext.text.base import TextClassifier
from robusttext.text.bounds import margin_lower_bounds, substitution_set
from robusttext.train.certified import mixed_lower_bounds, worst_case_loss

__all__ = ["mixed_margin_lower_bounds", "robust_loss", "worst_case_loss"]


def mixed_margin_lower_bounds(
    model: TextClassifier,
    batch: EncodedBatch,
    labels: torch.Tensor,
    budget: int | None,
    method: str = "ibp",
    eps: float = 1.0,
    beta: float = 0.0,
    classes: int | None = None,
) -> torch.Tensor:
    """Lower bounds ``[batch, classes - 1]`` on ``z_y - z_j`` over every rewrite, as a training
    loss takes them (``robusttext.text.bounds.margin_lower_bounds``, exact relaxation, the
    padding row of the embedding kept out of the gradient).

    ``method="crown-ibp"`` mixes ``beta * CROWN-IBP + (1 - beta) * IBP`` (beta 1: CROWN-IBP
    alone, 0: IBP alone); ``"budget-ibp"`` keeps the budget through the pooling layer
    (``robusttext.bounds.pooling``). ``classes``: the class count (read from the logits when
    not given).
    """
    # one set for both bounds of a mix, so that their gradients meet in the same table
    subs = substitution_set(model, batch, budget, eps=eps, frozen_padding=True)

    def bound(m: str) -> torch.Tensor:
        return margin_lower_bounds(model, batch, labels, budget, m, eps=eps, classes=classes,
                                   frozen_padding=True, subs=subs)

    return mixed_lower_bounds(bound, method, beta)


def robust_loss(
    model: TextClassifier,
    batch: EncodedBatch,
    labels: torch.Tensor,
    budget: int | None,
    k: float,
    method: str = "ibp",
    eps: float = 1.0,
    beta: float = 0.0,
    amp: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``(1 - k) CE(clean) + k CE(worst case)`` and its parts (floats, for logging).

    ``amp`` autocasts the clean pass (CUDA only); the bounds stay float32.
    """
    device_type = batch.token_ids.device.type
    with torch.autocast(device_type, enabled=amp and device_type == "cuda"):
        logits = model(batch.token_ids, batch.mask)
    clean = F.cross_entropy(logits.float(), labels)
    parts = {"clean_loss": clean.item(),
             "clean_acc": (logits.argmax(1) == labels).float().mean().item()}
    if k <= 0.0:
        return clean, parts
    lower = mixed_margin_lower_bounds(model, batch, labels, budget, method, eps, beta,
                                      classes=logits.shape[1])
    worst = worst_case_loss(lower)
    parts["robust_loss"] = worst.item()
    parts["verified"] = (lower.amin(1) > 0).float().mean().item()
    return (1.0 - k) * clean + k * worst, parts
