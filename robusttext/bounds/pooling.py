"""Budget-aware bounds for text models that pool per-window features (CNNs, bags of words).

Interval bounds forget the budget after the first layer: after a mean over the sequence, every
window may move to its own worst case, as if every position could change at once. For a body
of the form ``head(masked_mean(features(x), mask))`` whose feature window ``o`` reads only the
input positions ``o - left .. o + right``, a rewrite that changes the positions ``S`` leaves
every window away from ``S`` exactly at its clean value. So with ``d_o <= 0`` a lower bound on
window ``o``'s change (from the interval of its features over the set), the pooled change is at
least::

    sum over windows touching S of d_o  >=  sum over p in S of A_p,   A_p = sum_{o near p} d_o

(each window touching ``S`` is counted at least once, and every ``d_o <= 0``), hence at least
the sum of the ``budget`` smallest ``A_p`` over the positions that can change. It is also at
least ``sum_o d_o`` (every window once); the bound is the larger of the two. With ``left =
right = 0`` (a bag of words) and a single pooled coordinate this is the exact range.

``budget-ibp`` applies this to the margins: with a linear head the specification is folded into
each window's change before the budget is spent (one set ``S`` for every coordinate); otherwise
the pooled vector gets a per-coordinate interval and the head is bounded with IBP.

A body that supports it has ``features(x [batch, length, dim]) -> [batch, features, length]``,
``head(pooled [batch, features]) -> logits``, ``window = (left, right)`` and ``linear_head``
(its last ``nn.Linear`` when the head is that layer alone, else None).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robusttext.bounds.engine import METHODS, compute_bounds
from robusttext.bounds.input_sets import Box, SubstitutionSet
from robusttext.errors import RobustTextError

POOLED_METHOD = "budget-ibp"
TEXT_METHODS = (*METHODS, POOLED_METHOD)


def supports_pooled_bounds(body: nn.Module) -> bool:
    """True when ``body`` exposes ``features``, ``head``, ``window`` and ``linear_head``."""
    return all(hasattr(body, name) for name in ("features", "head", "window", "linear_head"))


def pick_method(method: str, body: nn.Module) -> str:
    """``"auto"``: ``budget-ibp`` for a body that supports it, else ``crown-ibp`` (never looser
    than IBP: the engine keeps the tighter of the two); any other name unchanged."""
    if method != "auto":
        return method
    return POOLED_METHOD if supports_pooled_bounds(body) else "crown-ibp"


def text_margin_lower(body: nn.Module, input_set: SubstitutionSet, C: torch.Tensor,
                      mask: torch.Tensor, method: str) -> torch.Tensor:
    """Lower bounds ``[batch, specs]`` on ``C @ body(x, mask)`` over ``input_set`` with any of
    ``TEXT_METHODS``; ``mask`` ``[batch, length]`` float."""
    if method == POOLED_METHOD:
        return pooled_margin_lower(body, input_set, C, mask)
    if method not in METHODS:
        raise RobustTextError(f"unknown method {method!r}; choose one of {', '.join(TEXT_METHODS)}")
    return compute_bounds(bounded_module(body, mask.shape[1]), input_set, method, C=C,
                          extra_inputs=(mask,), bound_upper=False)[0]


def bounded_module(body: nn.Module, length: int) -> nn.Module:
    """The module whose graph is bounded for inputs of ``length`` tokens: ``body.for_length(
    length)`` when the body has it (an unrolled recurrence traced to that many steps), else
    ``body``."""
    for_length = getattr(body, "for_length", None)
    return body if for_length is None else for_length(length)


def pooled_margin_lower(body: nn.Module, input_set: SubstitutionSet, C: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    """``budget-ibp`` lower bounds ``[batch, specs]`` on ``C @ body(x, mask)``.

    C: ``[batch, specs, classes]``; mask: ``[batch, length]`` (1 = real token).
    """
    pooled, down, up, weight = _window_changes(body, input_set, mask)
    head = body.linear_head
    if head is not None:
        C = C.to(pooled)
        a = C @ head.weight  # [batch, specs, features]
        base = (C @ head(pooled).unsqueeze(-1)).squeeze(-1)  # clean margins
        per_window = (a.clamp(min=0) @ down + a.clamp(max=0) @ up) * weight[:, None]
        return base + _budgeted_sum(per_window, input_set, body.window)
    box = Box(*_pooled_box(pooled, down, up, weight, input_set, body.window))
    return compute_bounds(_part(body, "head"), box, "ibp", C=C, bound_upper=False)[0]


def pooled_interval(body: nn.Module, input_set: SubstitutionSet, mask: torch.Tensor):
    """Budget-aware bounds ``(low, high)``, each ``[batch, features]``, on the pooled features
    ``masked_mean(features(x), mask)`` over ``input_set``."""
    return _pooled_box(*_window_changes(body, input_set, mask), input_set, body.window)


def _window_changes(body, input_set, mask):
    """The clean pooled features ``[batch, features]``, the largest decrease and increase of
    each window (``down <= 0 <= up``, ``[batch, features, length]``) and the pooling weights
    ``[batch, length]``."""
    if not supports_pooled_bounds(body):
        raise RobustTextError(
            f"{POOLED_METHOD} bounds need a body that pools per-window features (char-cnn, "
            f"word-cnn, bow); {type(body).__name__} does not: use ibp, crown-ibp or crown")
    if not isinstance(input_set, SubstitutionSet):
        raise RobustTextError(f"{POOLED_METHOD} bounds need a SubstitutionSet, got "
                              f"{type(input_set).__name__}")
    clean = body.features(input_set.center)
    if clean.shape[2] != input_set.center.shape[1]:
        raise RobustTextError(
            f"{POOLED_METHOD}: the features must have one window per position "
            f"({input_set.center.shape[1]}), got {clean.shape[2]}")
    low, high = compute_bounds(_part(body, "features"), input_set, "ibp")
    mask = mask.to(clean)
    weight = mask / mask.sum(1, keepdim=True).clamp(min=1)
    pooled = (clean * weight[:, None]).sum(2)
    return pooled, (low - clean).clamp(max=0), (high - clean).clamp(min=0), weight


def _pooled_box(pooled, down, up, weight, input_set, window):
    """Per pooled coordinate, its budget-aware bounds ``(low, high)``, each
    ``[batch, features]``."""
    w = weight[:, None]
    return (pooled + _budgeted_sum(down * w, input_set, window),
            pooled - _budgeted_sum(-up * w, input_set, window))


def _budgeted_sum(change: torch.Tensor, input_set: SubstitutionSet, window) -> torch.Tensor:
    """A lower bound on the total of ``change`` ``[batch, rows, length]`` (every entry <= 0,
    one per window) when at most ``input_set.budget`` positions change -> ``[batch, rows]``."""
    total = change.sum(-1)
    budget = input_set.budget
    if budget is None:
        return total
    if budget == 0:
        return torch.zeros_like(total)
    left, right = window
    b, rows, length = change.shape
    # per position p, the windows o = p - right .. p + left that read it
    padded = F.pad(change.reshape(b * rows, 1, length), (right, left))
    ones = torch.ones(1, 1, left + right + 1, dtype=change.dtype, device=change.device)
    per_position = F.conv1d(padded, ones).view(b, rows, length)
    changeable = input_set.mask.any(-1)  # [batch, length]
    per_position = per_position.masked_fill(~changeable[:, None], 0.0)
    worst = -(-per_position).topk(min(budget, length), dim=-1).values.sum(-1)
    return torch.maximum(total, worst)


def _part(body: nn.Module, name: str) -> nn.Module:
    """A module whose forward is ``body.<name>``, kept on the body (outside its state) so that
    its traced graph is reused."""
    parts = body.__dict__.setdefault("_bound_parts", {})
    if name not in parts:
        parts[name] = _Part(body, name)
    return parts[name]


class _Part(nn.Module):
    def __init__(self, body: nn.Module, name: str):
        super().__init__()
        self.body, self.name = body, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.body, self.name)(x)
