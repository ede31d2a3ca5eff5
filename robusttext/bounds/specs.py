"""What a certificate bounds: the margin specification of the logits, the task-neutral bound
problem (``BoundProblem``) and the one margins function (``margin_lower_bounds``) that text and
vision both call."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robusttext.bounds.engine import compute_bounds
from robusttext.bounds.input_sets import InputSet
from robusttext.bounds.pooling import pooled_margin_lower
from robusttext.errors import RobustTextError
from robusttext.methods import (
    ENGINE_METHODS,
    POOLED_METHOD,
    TEXT_METHODS,
    BoundSettings,
    bound_settings,
)


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


@dataclass(frozen=True)
class BoundProblem:
    """What the engine bounds, task-neutral: ``C @ module(x, *extra_inputs)`` for every ``x``
    in ``input_set``.

    A task turns a batch into one: text (``robusttext.text.bounds.batch_problem``): the body
    of the model (unrolled to the batch's length), the substitution set of its embeddings and
    the padding mask; vision (``robusttext.vision.verify.image_problem``): the network, the
    clipped L-infinity ball and no extra inputs.

    Attributes:
        module: the ``nn.Module`` bounded; its first positional input is the perturbed one.
        input_set: the set of its first input (``InputSet``: ``LinfBall``, ``Box``,
            ``SubstitutionSet``), batch ``batch``.
        C: the margin specification ``[batch, specs, classes]`` (``margin_matrix``: ``specs =
            classes - 1`` rows ``e_y - e_j``).
        extra_inputs: the module's further positional inputs, constants (a padding mask
            ``[batch, length]``).
    """

    module: nn.Module
    input_set: InputSet
    C: torch.Tensor
    extra_inputs: tuple = ()


def margin_problem(module: nn.Module, input_set: InputSet, labels: torch.Tensor,
                   num_classes: int, extra_inputs: tuple = ()) -> BoundProblem:
    """The problem of the margins ``z_y - z_j`` (``j != y``) of ``z = module(x,
    *extra_inputs)`` over ``input_set``, for ``labels`` ``[batch]`` of ``num_classes``
    classes."""
    return BoundProblem(module, input_set, margin_matrix(labels, num_classes), tuple(extra_inputs))


def margin_lower_bounds(problem: BoundProblem, method: str | BoundSettings,
                        alpha_steps: int | None = None) -> torch.Tensor:
    """The one margins function: lower bounds ``[batch, specs]`` on ``problem.C @
    problem.module(x, *problem.extra_inputs)`` over ``problem.input_set``. Differentiable.

    ``method``: an engine method (``ENGINE_METHODS``: the specification folded into the last
    layer by ``compute_bounds``) or ``budget-ibp`` (``robusttext.bounds.pooling``: a body that
    pools per-window features, its one extra input the mask); a name with ``alpha_steps``
    beside it (alpha-CROWN's optimisation steps; None: the engine's default), or a
    ``robusttext.methods.BoundSettings`` carried from the flags (its method and alpha steps
    are used here; its relaxation is the input set's).
    """
    bound = bound_settings(method, alpha_steps=alpha_steps)
    method = bound.method
    if method == POOLED_METHOD:
        return pooled_margin_lower(problem.module, problem.input_set, problem.C,
                                   *problem.extra_inputs)
    if method not in ENGINE_METHODS:
        raise RobustTextError(f"unknown method {method!r}; choose one of {', '.join(TEXT_METHODS)}")
    return compute_bounds(problem.module, problem.input_set, method, C=problem.C,
                          extra_inputs=problem.extra_inputs, bound_upper=False,
                          alpha_steps=bound.alpha_steps)[0]
