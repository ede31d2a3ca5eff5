"""Budget-aware bounds for text models that pool per-window features (CNNs, bags of words).

Interval bounds forget the budget after the first layer: after a mean over the sequence, every
window may move to its own worst case, as if every position could change at once. For a body
of the form ``head(masked_mean(features(x), mask))`` whose feature window ``o`` reads only the
input positions ``o - left .. o + right``, a rewrite that changes the positions ``S`` leaves
every window away from ``S`` exactly at its clean value. So with ``d_o <= 0`` a lower bound on
window ``o``'s change (from the interval of its features over the set), the pooled change is at
least::

    sum over the windows touching S of d_o

and hence at least the smallest such sum over every set ``S`` of at most ``budget`` positions
that can change, which a dynamic programme over the positions finds exactly (windows are
intervals, so a position shares windows only with its nearest chosen neighbour). Since every
``d_o <= 0`` this is never below ``sum_o d_o`` (IBP's figure) nor below the sum of the
``budget`` smallest per-position totals ``A_p = sum_{o near p} d_o`` (which counts a window
read by two chosen positions twice). With ``left = right = 0`` (a bag of words) and a single
pooled coordinate this is the exact range.

``budget-ibp`` applies this to the margins: with a linear head the specification is folded into
each window's change before the budget is spent (one set ``S`` for every coordinate); otherwise
the pooled vector gets a per-coordinate interval and the head is bounded with IBP.

A body declares that it supports it by subclassing ``PooledBody`` (the optional part of the
text-model contract that the CNNs and the bag of words declare); having members of the same
names is not enough. The declaration is then checked on every batch before the bound uses it
(``check_decomposition``): the body's own forward must equal ``head(masked_mean(features(x),
mask))`` at the set's centre and at one rewrite of every position, and no feature window may
read a position outside its declared ``window``. A body that pools by max, or whose windows are
wider than it says, is refused by name instead of getting the masked-mean bound.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from robusttext.bounds.engine import compute_bounds, internal_error
from robusttext.bounds.input_sets import Box, SubstitutionSet
from robusttext.bounds.oracle import check_pooled
from robusttext.errors import RobustTextError
from robusttext.methods import POOLED_METHOD


class PooledBody(Protocol):
    """The optional part of the text-model contract that ``budget-ibp`` needs: a body of the
    form ``head(masked_mean(features(x), mask))``, declared by subclassing (``class
    MyBody(nn.Module, PooledBody)``).

    - ``features(x [batch, length, dim]) -> [batch, features, length]``, one window per
      position, window ``o`` reading the positions ``o - window[0] .. o + window[1]``;
    - ``head(pooled [batch, features]) -> logits [batch, classes]``;
    - ``linear_head``: the head's ``nn.Linear`` when the head is that layer alone, else None.
    """

    window: tuple[int, int]
    linear_head: nn.Linear | None

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def head(self, pooled: torch.Tensor) -> torch.Tensor: ...


def is_pooled_body(body: nn.Module) -> bool:
    """True when ``body``'s class declares ``PooledBody`` (subclasses it) and has every member
    (looked up with ``getattr``, so a head kept as a submodule counts)."""
    return PooledBody in type(body).__mro__ and all(
        hasattr(body, name) for name in ("features", "head", "window", "linear_head"))


def masked_mean_weights(mask: torch.Tensor) -> torch.Tensor:
    """``[batch, length]``: the weights of the masked mean over the real positions."""
    return mask / mask.sum(1, keepdim=True).clamp(min=1)


def check_decomposition(body: nn.Module, input_set: SubstitutionSet, mask: torch.Tensor,
                        clean: torch.Tensor) -> None:
    """Refuse (``RobustTextError``) a body whose forward is not ``head(masked_mean(features(x),
    mask))`` on this batch, or whose features read outside the declared ``window``.

    The forward is compared at the set's centre (``clean``: its features) and at one point of
    the set with every changeable position at its first candidate, on every call. The window is
    checked by replacing one position of the first sentence by NaN at a time (one copy per
    position) and looking where the features turn NaN: window ``o`` may read only ``o - left ..
    o + right``; once per body and length (which positions a window reads is the architecture's;
    only a weight exactly zero at that first check could hide a reading).
    """
    centre, candidates, chosen = input_set.center, input_set.candidates, input_set.mask
    first = chosen.to(torch.int64).argmax(-1)  # [batch, length]: a real candidate's index
    picked = candidates.gather(2, first[..., None, None].expand(-1, -1, 1, centre.shape[-1]))
    rewrite = torch.where(chosen.any(-1, keepdim=True), picked.squeeze(2), centre)
    weight = masked_mean_weights(mask.to(centre))[:, None]
    for x, features in ((centre, clean), (rewrite, None)):
        features = body.features(x) if features is None else features
        claimed = body.head((features * weight).sum(2))
        actual = body(x, mask.to(x))
        if claimed.shape != actual.shape:
            raise RobustTextError(
                f"{POOLED_METHOD}: {type(body).__name__}.head(masked_mean(features(x))) has shape "
                f"{tuple(claimed.shape)} but the body returns {tuple(actual.shape)}")
        rows = torch.isfinite(actual).all(1)
        scale = 1e-4 * (1 + actual[rows].abs().amax()) if rows.any() else 0
        if rows.any() and bool(((claimed[rows] - actual[rows]).abs() > scale).any()):
            raise RobustTextError(
                f"{POOLED_METHOD}: {type(body).__name__} declares PooledBody, but its forward is "
                f"not head(masked_mean(features(x), mask)) on this batch (largest difference "
                f"{(claimed[rows] - actual[rows]).abs().max().item():.3g}); use ibp, crown-ibp "
                f"or crown")
    length = centre.shape[1]
    left, right = body.window
    checked = body.__dict__.setdefault("_robusttext_windows_checked", set())
    if (length, left, right) in checked:  # the architecture's reading: once per length
        return
    probe = centre[:1].expand(length, -1, -1).clone()
    probe[torch.arange(length), torch.arange(length)] = float("nan")
    reads = torch.isnan(body.features(probe)).any(1)  # [position p, window o]
    p = torch.arange(length, device=reads.device)[:, None]
    o = torch.arange(reads.shape[1], device=reads.device)[None, :]
    outside = reads & ((p < o - left) | (p > o + right))
    if bool(outside.any()):
        p_bad, o_bad = (int(v[0]) for v in outside.nonzero(as_tuple=True))
        raise RobustTextError(
            f"{POOLED_METHOD}: {type(body).__name__} declares window={tuple(body.window)}, but "
            f"its feature window {o_bad} reads position {p_bad}; the window must cover every "
            f"position a feature reads")
    checked.add((length, left, right))


def pooled_margin_lower(body: nn.Module, input_set: SubstitutionSet, C: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    """``budget-ibp`` lower bounds ``[batch, specs]`` on ``C @ body(x, mask)``.

    C: ``[batch, specs, classes]``; mask: ``[batch, length]`` (1 = real token). Checked by the
    containment oracle (``oracle.check_pooled``) against the body's own margins.
    """
    try:
        lower = _pooled_margin_lower(body, input_set, C, mask)
    except RobustTextError:
        raise
    except Exception as error:  # nothing but a RobustTextError leaves the engine
        raise internal_error(error, POOLED_METHOD, None) from error
    check_pooled(body, input_set, mask, C, lower)
    return lower


def _pooled_margin_lower(body, input_set, C, mask):
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
    if not is_pooled_body(body):
        raise RobustTextError(
            f"{POOLED_METHOD} bounds need a body that pools per-window features (char-cnn, "
            f"word-cnn, bow); {type(body).__name__} does not: use ibp, crown-ibp or crown")
    if not isinstance(input_set, SubstitutionSet):
        raise RobustTextError(f"{POOLED_METHOD} bounds need a SubstitutionSet, got "
                              f"{type(input_set).__name__}")
    clean = body.features(input_set.center)
    if clean.dim() != 3 or clean.shape[2] != input_set.center.shape[1]:
        raise RobustTextError(
            f"{POOLED_METHOD}: the features must be [batch, features, length] with one window "
            f"per position ({input_set.center.shape[1]}), got {tuple(clean.shape)}")
    with torch.no_grad():
        check_decomposition(body, input_set, mask, clean.detach())
    low, high = compute_bounds(_part(body, "features"), input_set, "ibp")
    mask = mask.to(clean)
    weight = masked_mean_weights(mask)
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
    one per window) when at most ``input_set.budget`` positions change -> ``[batch, rows]``:
    the smallest sum of ``change`` over the windows that read some set of at most ``budget``
    changeable positions (exact for that problem; ``_smallest_union_sum``)."""
    if input_set.budget is None:
        return change.sum(-1)
    changeable = input_set.mask.any(-1)  # [batch, length]
    return _smallest_union_sum(change, changeable, input_set.budget, window)


def _smallest_union_sum(change: torch.Tensor, changeable: torch.Tensor, budget: int,
                        window) -> torch.Tensor:
    """``min`` over sets ``S`` of at most ``budget`` changeable positions of the sum of
    ``change`` ``[batch, rows, length]`` (``<= 0``) over the windows ``o`` with ``o - left <= p
    <= o + right`` for some ``p`` in ``S`` -> ``[batch, rows]`` (0 for the empty set).

    Dynamic programme over the positions in increasing order: ``best[p]`` is the smallest sum
    for ``k`` positions of which ``p`` is the last. Position ``p`` adds the windows ``p - right
    .. p + left``, less those already read by the previous position ``q`` (up to ``q + left``):
    all of them when ``p - q >= left + right + 1``, else those from ``q + left + 1`` on.
    """
    left, right = window
    width = left + right + 1
    length = change.shape[-1]
    if budget == 0 or length == 0:
        return torch.zeros_like(change.sum(-1))
    prefix = F.pad(change.cumsum(-1), (1, 0))  # [b, rows, length + 1]: sum of change[:i]
    positions = torch.arange(length, device=change.device)

    def window_sum(first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Sum of change[first..last] (clipped to the sentence), per position."""
        return (prefix[..., (last + 1).clamp(0, length)]
                - prefix[..., first.clamp(0, length)])

    inf = float("inf")
    blocked = ~changeable[:, None]  # [batch, 1, length]
    alone = window_sum(positions - right, positions + left)  # what p adds as the first position
    if budget == 1 or width == 1:  # no window is read twice: the budget smallest positions
        alone = alone.masked_fill(blocked, 0.0)
        return -(-alone).topk(min(budget, length), dim=-1).values.sum(-1)
    # what p adds after a previous position q = p - j, for j = 1 .. width - 1
    after = [window_sum(positions - j + left + 1, positions + left) for j in range(1, width)]
    best = alone.masked_fill(blocked, inf)
    result = torch.minimum(torch.zeros_like(best[..., 0]), best.min(-1).values)
    for _ in range(min(budget, length) - 1):
        # the best earlier set ends at q <= p - width (all of p's windows are new) ...
        step = F.pad(best.cummin(-1).values, (width, 0), value=inf)[..., :length] + alone
        # ... or at q = p - j, close enough to share windows with p
        for j, added in enumerate(after, start=1):
            step = torch.minimum(step, F.pad(best, (j, 0), value=inf)[..., :length] + added)
        best = step.masked_fill(blocked, inf)
        result = torch.minimum(result, best.min(-1).values)
    return result


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
