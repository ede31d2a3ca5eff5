"""Projected gradient descent (Madry et al. 2018) in an L-infinity ball clipped to [0, 1]."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Largest wrong logit minus the true logit, ``[batch]``; > 0 means misclassified."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    wrong = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return wrong - true


def pgd_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    steps: int = 20,
    restarts: int = 1,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Search the ball ``|x' - x|_inf <= eps``, ``x'`` in [0, 1], for misclassified points.

    ``images`` ``[batch, C, H, W]``, ``labels`` ``[batch]``. Each restart starts at a uniform
    random point (the first restart at the clean image when ``restarts == 1``), ascends the
    cross-entropy with signed gradients of size ``step_size`` (default ``2.5 * eps / steps``)
    and keeps, per example, the point with the largest margin loss seen.
    Returns ``(adversarial [batch, C, H, W], flipped [batch] bool)``: ``flipped`` is True where
    some point in the ball (the clean image included) is misclassified.
    """
    was_training = model.training
    model.eval()
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    lower, upper = (images - eps).clamp(min=0.0), (images + eps).clamp(max=1.0)
    with torch.no_grad():
        best = images.clone()
        best_loss = margin_loss(model(images), labels)
    for _ in range(restarts):
        if restarts == 1 or eps == 0:
            x = images.clone()
        else:
            noise = torch.rand(images.shape, generator=generator, device="cpu").to(images)
            x = lower + (upper - lower) * noise
        for _ in range(steps if eps > 0 else 0):
            x.requires_grad_(True)
            logits = model(x)
            loss = F.cross_entropy(logits, labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                current = margin_loss(logits, labels)
                improved = current > best_loss
                best[improved] = x.detach()[improved]
                best_loss = torch.where(improved, current, best_loss)
                x = torch.max(torch.min(x.detach() + step_size * grad.sign(), upper), lower)
        with torch.no_grad():
            current = margin_loss(model(x), labels)
            improved = current > best_loss
            best[improved] = x[improved]
            best_loss = torch.where(improved, current, best_loss)
    model.train(was_training)
    return best.detach(), best_loss > 0
