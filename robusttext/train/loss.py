"""Clean and worst-case losses of a text model over a perturbation space.

The worst case comes from lower bounds on the margins ``z_y - z_j`` over the substitution set
(``compute_bounds`` with ``C = margin_matrix(labels, classes)``): cross-entropy on the logits
``[0, -m_1, ..., -m_{c-1}]`` with the true class first is an upper bound on the cross-entropy of
every rewrite (Wong & Kolter 2018; Gowal et al. 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robusttext.methods import POOLED_METHOD
from robusttext.perturb import EncodedBatch
from robusttext.text.base import TextClassifier
from robusttext.text.bounds import margin_lower_bounds, substitution_set


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

    if method == POOLED_METHOD:
        return bound(method)
    if method == "ibp" or beta <= 0.0:
        return bound("ibp")
    if beta >= 1.0:
        return bound("crown-ibp")
    return beta * bound("crown-ibp") + (1.0 - beta) * bound("ibp")


def worst_case_loss(margin_lower: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy on the worst-case logits ``[0, -margin_lower]`` (true class 0)."""
    logits = torch.cat([torch.zeros_like(margin_lower[:, :1]), -margin_lower], dim=1)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


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
