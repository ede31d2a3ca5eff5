"""Specification matrices: which linear functions of the logits a certificate bounds."""

from __future__ import annotations

import torch

from robusttext.errors import RobustTextError
from robusttext.methods import BoundSettings, bound_settings


def margin_matrix(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows ``e_y - e_j`` for every ``j != y``.

    Args:
        labels: ``[batch]`` integer class labels.
        num_classes: number of logits.

    Returns:
        ``C`` of shape ``[batch, num_classes - 1, num_classes]``; ``C @ logits`` are the margins
        ``z_y - z_j``. The label is certified when every lower bound is positive.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise RobustTextError(f"labels must be a 1-D tensor, got shape {tuple(labels.shape)}")
    if num_classes < 2:
        raise RobustTextError(f"num_classes must be at least 2, got {num_classes}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise RobustTextError(
            f"labels must lie in [0, {num_classes - 1}], got values from "
            f"{int(labels.min())} to {int(labels.max())}"
        )
    eye = torch.eye(num_classes, device=labels.device)
    others = torch.arange(num_classes, device=labels.device)
    # [batch, num_classes - 1]: the classes other than the label, in increasing order.
    mask = others[None, :] != labels[:, None]
    other_ids = others.expand(labels.shape[0], -1)[mask].view(labels.shape[0], num_classes - 1)
    return eye[labels][:, None, :] - eye[other_ids]


def margin_lower_bounds(module, input_set, labels: torch.Tensor, num_classes: int,
                        method: str | BoundSettings, extra_inputs=()) -> torch.Tensor:
    """Lower bounds ``[batch, num_classes - 1]`` on the margins ``z_y - z_j`` (``j != y``) of
    ``z = module(x, *extra_inputs)`` over ``input_set``, by one of the engine's methods (a name,
    or a ``BoundSettings`` whose method and alpha-CROWN steps are used), with
    ``margin_matrix(labels, num_classes)`` folded into the last layer. Differentiable."""
    from robusttext.bounds.engine import compute_bounds

    bound = bound_settings(method)
    C = margin_matrix(labels, num_classes)
    return compute_bounds(module, input_set, bound.method, C=C, extra_inputs=extra_inputs,
                          bound_upper=False, alpha_steps=bound.alpha_steps)[0]
