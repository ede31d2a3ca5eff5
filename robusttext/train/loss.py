"""Clean and worst-case losses of a text model over a perturbation space.

The worst case comes from lower bounds on the margins ``z_y - z_j`` over the substitution set
(``robusttext.bounds.specs.margin_lower_bounds`` of the text task's problem,
``robusttext.text.bounds.batch_problem``), mixed and turned into a loss by the
task-neutral ``robusttext.train.certified`` (which vision's training uses too).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from robusttext.bounds.specs import margin_lower_bounds
from robusttext.perturb import EncodedBatch
from robusttext.text.base import TextClassifier
from robusttext.text.bounds import batch_problem, substitution_set
from robusttext.train.certified import mixed_lower_bounds, worst_case_loss

__all__ = ["robust_loss", "text_margin_bound", "worst_case_loss"]


def text_margin_bound(
    model: TextClassifier,
    batch: EncodedBatch,
    labels: torch.Tensor,
    budget: int | None,
    eps: float = 1.0,
    classes: int | None = None,
) -> Callable[[str], torch.Tensor]:
    """``bound(method)``: lower bounds ``[batch, classes - 1]`` on ``z_y - z_j`` over every
    rewrite, as a training loss takes them: the one margins function
    (``robusttext.bounds.specs.margin_lower_bounds``) of the text task's problem (exact
    relaxation, the padding row of the embedding kept out of the gradient), one set for every
    method asked (so that the gradients of a CROWN-IBP/IBP mix meet in the same table).
    ``classes``: the class count (read from the logits when not given). Vision's counterpart
    is ``robusttext.vision.verify.image_margin_bound``."""
    subs = substitution_set(model, batch, budget, eps=eps, frozen_padding=True)

    def bound(method: str) -> torch.Tensor:
        return margin_lower_bounds(batch_problem(model, batch, labels, budget, eps=eps,
                                                 classes=classes, frozen_padding=True,
                                                 subs=subs), method)

    return bound


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
    # method "crown-ibp": beta * CROWN-IBP + (1 - beta) * IBP; "ibp", "budget-ibp": alone
    lower = mixed_lower_bounds(text_margin_bound(model, batch, labels, budget, eps,
                                                 classes=logits.shape[1]), method, beta)
    worst = worst_case_loss(lower)
    parts["robust_loss"] = worst.item()
    parts["verified"] = (lower.amin(1) > 0).float().mean().item()
    return (1.0 - k) * clean + k * worst, parts
