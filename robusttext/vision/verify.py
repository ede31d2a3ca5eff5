"""Margin bounds of an image classifier over an L-infinity ball, through robusttext.bounds."""

from __future__ import annotations

import torch
from torch import nn

from robusttext.errors import RobustTextError
from robusttext.methods import ENGINE_METHODS as BOUND_METHODS
from robusttext.vision.config import check_eps  # noqa: F401  (re-exported: the eps check)


def margin_lower_bounds(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, method: str
) -> torch.Tensor:
    """Lower bounds on ``z_y - z_j`` for ``j != y`` over the ball, ``[batch, classes - 1]``.

    ``images`` ``[batch, C, H, W]`` in [0, 1]; the ball is clipped to [0, 1]. Differentiable.
    """
    if method not in BOUND_METHODS:
        raise RobustTextError(f"bound method must be one of {BOUND_METHODS}, got {method!r}")
    from robusttext.bounds import LinfBall
    from robusttext.bounds.specs import margin_lower_bounds as engine_margin_lower_bounds

    ball = LinfBall(images, eps, lower=0.0, upper=1.0)
    return engine_margin_lower_bounds(model, ball, labels, _num_classes(model), method)


def verified(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, method: str
) -> torch.Tensor:
    """``[batch]`` bool: every margin lower bound is positive (the label is certified)."""
    with torch.no_grad():
        return (margin_lower_bounds(model, images, labels, eps, method) > 0).all(dim=1)


def _num_classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise RobustTextError("the model has no final nn.Linear layer to read the class count")
    return last[-1].out_features
