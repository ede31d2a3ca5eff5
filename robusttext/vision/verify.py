"""The vision task's bound problem: an image classifier over an L-infinity ball clipped to
[0, 1]. Its margins go through the one margins function, ``robusttext.bounds.specs``."""

from __future__ import annotations

import torch
from torch import nn

from robusttext.errors import RobustTextError
from robusttext.methods import ENGINE_METHODS as BOUND_METHODS
from robusttext.methods import BoundSettings, bound_settings
from robusttext.vision.config import check_eps  # noqa: F401  (re-exported: the eps check)


def image_ball(images: torch.Tensor, eps: float):
    """The L-infinity ball of radius ``eps`` around ``images`` ``[batch, C, H, W]`` (in [0, 1]),
    clipped to [0, 1]."""
    from robusttext.bounds import LinfBall

    return LinfBall(images, eps, lower=0.0, upper=1.0)


def image_problem(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  eps: float):
    """The vision task's bound problem of a batch (``robusttext.bounds.specs.BoundProblem``):
    the margins ``z_y - z_j`` (``j != y``) of ``model`` over the clipped ball of radius ``eps``
    around ``images`` ``[batch, C, H, W]``, labels ``[batch]``; no extra inputs."""
    from robusttext.bounds.specs import margin_problem

    return margin_problem(model, image_ball(images, eps), labels, num_classes(model))


def image_margin_bound(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       eps: float):
    """``bound(method)``: lower bounds ``[batch, classes - 1]`` on ``z_y - z_j`` (``j != y``)
    over the ball, by an engine method (a name, or a ``BoundSettings`` carried from the flags),
    through the one margins function (``robusttext.bounds.specs.margin_lower_bounds``).
    Differentiable; the problem (ball, specification) is built once for every method asked."""
    from robusttext.bounds.specs import margin_lower_bounds

    problem = image_problem(model, images, labels, eps)

    def bound(method: str | BoundSettings) -> torch.Tensor:
        name = bound_settings(method).method
        if name not in BOUND_METHODS:
            raise RobustTextError(f"bound method must be one of {BOUND_METHODS}, got {name!r}")
        return margin_lower_bounds(problem, method)

    return bound


def verified(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
    method: str | BoundSettings,
) -> torch.Tensor:
    """``[batch]`` bool: every margin lower bound is positive (the label is certified)."""
    with torch.no_grad():
        return (image_margin_bound(model, images, labels, eps)(method) > 0).all(dim=1)


def num_classes(model: nn.Module) -> int:
    """The class count: the output size of the model's last ``nn.Linear``."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise RobustTextError("the model has no final nn.Linear layer to read the class count")
    return last[-1].out_features
