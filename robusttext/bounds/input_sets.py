"""Input sets: the perturbations a certificate covers.

Each input set knows
- an elementwise interval that contains it (``interval()``), for interval bound propagation;
- how to *concretize* a linear bound: the minimum and maximum of ``sum(A * x)`` over the set,
  for every row of ``A`` (``concretize``).

Substitution sets also give exact intervals for a first Linear or Conv1d layer
(``linear_interval``, ``conv1d_interval``), which plain interval arithmetic would loosen.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from robusttext.errors import RobustTextError
from robusttext.methods import RELAXATIONS as METHOD_RELAXATIONS


def _check_tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise RobustTextError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise RobustTextError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value


def concretize_interval(lower, upper, A, sign):
    """``min`` (sign=-1) or ``max`` (sign=+1) of ``sum(A * x)`` over ``lower <= x <= upper``,
    from the ends: ``A+ upper + A- lower`` for the maximum, never the centre/radius form
    ``A c + |A| r``, which loses the narrow end of a wide interval in rounding (see
    rules/affine.py).

    A: ``[batch, specs, *shape]``; lower, upper: ``[batch, *shape]`` -> ``[batch, specs]``.
    """
    flat_a = A.reshape(*A.shape[:2], -1)  # a [batch]-shaped node has A [batch, specs]
    top, bottom = (upper, lower) if sign > 0 else (lower, upper)
    return (torch.einsum("bsn,bn->bs", flat_a.clamp(min=0), top.reshape(top.shape[0], -1))
            + torch.einsum("bsn,bn->bs", flat_a.clamp(max=0), bottom.reshape(bottom.shape[0], -1)))


class InputSet:
    """Base class. ``shape`` is the shape of one batch of inputs, ``[batch, *dims]``."""

    center: torch.Tensor

    def interval(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def concretize(self, A: torch.Tensor, sign: int) -> torch.Tensor:
        """``max`` (sign=+1) or ``min`` (sign=-1) of ``sum(A[b, s] * x[b])`` over the set.

        A: ``[batch, specs, *shape]`` -> ``[batch, specs]``.
        """
        return concretize_interval(*self.interval(), A, sign)

    def linear_interval(self, weight, bias):
        """Exact interval of a Linear layer applied to the set, or None to use ``interval()``."""
        return None

    def conv1d_interval(self, weight, bias, stride, padding, dilation, transposed_input):
        """Exact interval of a Conv1d applied to the set, or None to use ``interval()``."""
        return None


class Box(InputSet):
    """All ``x`` with ``lower <= x <= upper`` elementwise; both ``[batch, *dims]``."""

    def __init__(self, lower: torch.Tensor, upper: torch.Tensor):
        lower, upper = _check_tensor("lower", lower), _check_tensor("upper", upper)
        if lower.shape != upper.shape:
            raise RobustTextError(
                f"Box: lower has shape {tuple(lower.shape)} but upper has {tuple(upper.shape)}"
            )
        if (lower > upper).any():
            raise RobustTextError("Box: lower > upper at some positions")
        self.lower, self.upper = lower, upper
        self.center = (lower + upper) / 2

    def interval(self):
        return self.lower, self.upper


class LinfBall(Box):
    """All ``x`` with ``|x - center|_inf <= eps``, clamped to ``[lower, upper]`` when given.

    center: ``[batch, *dims]``; eps: a float or a tensor broadcastable to it (per example or
    per element); lower/upper: floats or tensors broadcastable to ``center`` (e.g. 0 and 1 for
    images).
    """

    def __init__(self, center: torch.Tensor, eps, lower=None, upper=None):
        center = _check_tensor("center", center)
        eps_t = torch.as_tensor(eps, dtype=center.dtype, device=center.device)
        if (eps_t < 0).any() or not torch.isfinite(eps_t).all():
            raise RobustTextError(f"LinfBall: eps must be finite and >= 0, got {eps}")
        try:
            eps_t = eps_t.expand_as(center) if eps_t.dim() <= center.dim() else None
        except RuntimeError:
            eps_t = None
        if eps_t is None:
            raise RobustTextError(
                f"LinfBall: eps of shape {tuple(torch.as_tensor(eps).shape)} does not broadcast "
                f"to the center's shape {tuple(center.shape)}"
            )
        low, high = center - eps_t, center + eps_t
        bounds = []
        for name, value in (("lower", lower), ("upper", upper)):
            if value is None:
                bounds.append(None)
                continue
            value = torch.as_tensor(value, dtype=center.dtype, device=center.device)
            try:
                value = value.expand_as(center)
            except RuntimeError:
                raise RobustTextError(
                    f"LinfBall: {name} of shape {tuple(value.shape)} does not broadcast to the "
                    f"center's shape {tuple(center.shape)}"
                ) from None
            bounds.append(value)
        if bounds[0] is not None and bounds[1] is not None and (bounds[0] > bounds[1]).any():
            raise RobustTextError("LinfBall: lower > upper at some positions")
        if bounds[0] is not None:
            low = torch.maximum(low, bounds[0])
        if bounds[1] is not None:
            high = torch.minimum(high, bounds[1])
        if (low > high).any():
            raise RobustTextError("LinfBall: the center lies outside [lower, upper]")
        self.eps = eps
        super().__init__(low, high)
        self.center_point = center


RELAXATIONS = METHOD_RELAXATIONS  # declared with the method names (robusttext.methods)


class SubstitutionSet(InputSet):
    """Sentences whose tokens may each be replaced by one of their candidates, at most ``budget``
    positions at once (every position when ``budget`` is None).

    Args:
        original: ``[batch, length, dim]`` embeddings of the original tokens.
        candidates: ``[batch, length, candidates, dim]`` embeddings of the substitutes.
        mask: ``[batch, length, candidates]`` bool, True where a candidate is real.
        budget: the most positions that may change, an int >= 0, or None for no limit.
        relaxation: ``"exact"``: for a linear function, the true maximum over the set (and its
            convex hull): ``a.e + sum of the budget largest max(0, max_k a_p.(e_pk - e_p))``;
            ``"box"``: per position the elementwise min/max over the candidates, every position at
            once, budget ignored (Jia et al. 2019); ``"simplex"``: ``budget`` times the largest
            single-position change (Huang et al. 2019).

    Memory grows with ``length x candidates``, never with the number of sentences.
    """

    def __init__(self, original, candidates, mask, budget, relaxation: str = "exact"):
        original = _check_tensor("original", original)
        candidates = _check_tensor("candidates", candidates)
        if original.dim() != 3:
            raise RobustTextError(
                "SubstitutionSet: original must be [batch, length, dim], got "
                f"{tuple(original.shape)}"
            )
        b, l, d = original.shape
        if candidates.dim() != 4 or candidates.shape[:2] != (b, l) or candidates.shape[3] != d:
            raise RobustTextError(
                "SubstitutionSet: candidates must be [batch, length, candidates, dim] = "
                f"[{b}, {l}, K, {d}], got {tuple(candidates.shape)}"
            )
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(candidates.shape[:3]):
            raise RobustTextError(
                f"SubstitutionSet: mask must have shape {tuple(candidates.shape[:3])}, got "
                f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}"
            )
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                                   or budget < 0):
            raise RobustTextError(
                f"SubstitutionSet: budget must be an int >= 0 or None, got {budget!r}"
            )
        if relaxation not in RELAXATIONS:
            raise RobustTextError(
                f"SubstitutionSet: unknown relaxation {relaxation!r}; choose one of {RELAXATIONS}"
            )
        self.center = original
        self.candidates = candidates
        self.candidate_mask = mask  # as given: ``self.mask`` is empty at budget 0
        self.mask = mask.bool() if budget != 0 else torch.zeros_like(mask, dtype=torch.bool)
        self.budget = budget
        self.relaxation = relaxation
        self._kept_differences = None

    def with_budget(self, budget: int | None) -> SubstitutionSet:
        """The same sentences and candidates at another ``budget`` (a copy of this set; between
        budgets above 0, whose masks agree, sharing the differences already computed)."""
        other = copy.copy(self)
        SubstitutionSet.__init__(other, self.center, self.candidates, self.candidate_mask,
                                 budget, self.relaxation)
        if other.mask is self.mask:  # the same mask tensor: the differences are the same too
            other._kept_differences = self._kept_differences
        return other

    # -- helpers -------------------------------------------------------------------------
    def _differences(self) -> torch.Tensor:
        """``[batch, length, candidates, dim]``: ``e_pk - e_p`` (zero where masked). Kept after
        the first call when it carries no gradient (CROWN concretizes over the set once per
        backward pass) and while none of the three tensors has been written in place (their
        version counters); with a gradient it is recomputed, so that no autograd graph is
        shared between two bounds."""
        versions = (self.center._version, self.candidates._version, self.mask._version)
        if self._kept_differences is not None and self._kept_differences[0] == versions:
            return self._kept_differences[1]
        diff = self.candidates - self.center[:, :, None, :]
        diff = diff * self.mask[..., None].to(diff.dtype)
        self._kept_differences = None if diff.requires_grad else (versions, diff)
        return diff

    @staticmethod
    def _best_gains(gains: torch.Tensor, mask: torch.Tensor, k_dim: int):
        """Largest increase and decrease over candidates (dim ``k_dim``), both >= 0.

        ``mask`` is the candidate mask broadcastable to ``gains``.
        """
        neg_inf = torch.finfo(gains.dtype).min
        up = gains.masked_fill(~mask, neg_inf).amax(k_dim).clamp(min=0)
        down = (-gains).masked_fill(~mask, neg_inf).amax(k_dim).clamp(min=0)
        return up, down

    def _takes_top(self, positions: int) -> bool:
        """True when ``_reduce`` over ``positions`` sums the ``budget`` largest gains (a budget
        above 0 and below the number of positions, relaxation not ``simplex``)."""
        return (self.budget is not None and 0 < self.budget < positions
                and self.relaxation != "simplex")

    def _reduce(self, gains: torch.Tensor, dim: int) -> torch.Tensor:
        """Combine non-negative per-position gains along ``dim`` under the budget: the sum (no
        budget, or a budget as wide as ``dim``), nothing (budget 0), ``budget`` times the
        largest (simplex), else the sum of the ``budget`` largest."""
        positions = gains.shape[dim]
        if self._takes_top(positions):
            if self.budget == 1:  # the largest alone: max is cheaper than topk
                return gains.amax(dim)
            return gains.topk(self.budget, dim=dim).values.sum(dim)
        if self.budget is None:
            return gains.sum(dim)
        if self.budget == 0 or positions == 0:
            return gains.sum(dim) * 0
        if self.relaxation == "simplex":
            return self.budget * gains.amax(dim)
        return gains.sum(dim)

    # -- InputSet API ----------------------------------------------------------------------
    def interval(self):
        """Per position, the elementwise min/max over the original and its candidates."""
        big = torch.finfo(self.candidates.dtype).max
        m = self.mask[..., None]
        low = self.candidates.masked_fill(~m, big).amin(2)
        high = self.candidates.masked_fill(~m, -big).amax(2)
        return torch.minimum(low, self.center), torch.maximum(high, self.center)

    def concretize(self, A, sign):
        """A: ``[batch, specs, length, dim]`` -> ``[batch, specs]``."""
        if self.relaxation == "box":
            return super().concretize(A, sign)
        base = torch.einsum("bsld,bld->bs", A, self.center)
        gains = torch.einsum("bsld,blkd->bslk", A, self._differences())
        up, down = self._best_gains(gains, self.mask[:, None], k_dim=3)
        chosen = up if sign > 0 else down
        return base + sign * self._reduce(chosen, dim=2)

    def linear_interval(self, weight, bias):
        """A per-token Linear: ``[batch, length, dim] -> [batch, length, out]``, exact."""
        if self.relaxation == "box":
            return None
        base = F.linear(self.center, weight, bias)
        gains = torch.einsum("blkd,od->blko", self._differences(), weight)
        up, down = self._best_gains(gains, self.mask[..., None], k_dim=2)
        # one position per output: the budget only decides whether it may change at all
        return base - self._reduce(down[..., None], -1), base + self._reduce(up[..., None], -1)

    def conv1d_interval(self, weight, bias, stride, padding, dilation, transposed_input):
        """Conv1d over the sequence (channels = embedding dim), exact with top-budget per window.

        weight: ``[out, dim, taps]``. Returns bounds ``[batch, out, out_length]``.
        """
        if self.relaxation == "box" or not transposed_input:
            return None
        x = self.center.transpose(1, 2)
        base = F.conv1d(x, weight, bias, stride, padding, dilation)
        taps = weight.shape[2]
        gains = torch.einsum("blkd,odt->blkot", self._differences(), weight)
        up, down = self._best_gains(gains, self.mask[..., None, None], k_dim=2)
        # up, down: [batch, length, out, taps]
        out_len = base.shape[2]
        bounds = []
        for g in (down, up):
            g = F.pad(g.permute(0, 2, 3, 1), (padding, padding))  # [batch, out, taps, padded_len]
            windows = torch.stack(
                [
                    g[:, :, t, t * dilation : t * dilation + stride * (out_len - 1) + 1 : stride]
                    for t in range(taps)
                ],
                dim=-1,
            )  # [batch, out, out_length, taps]: the gain of tap t at each output position
            bounds.append(self._reduce(windows, dim=-1))
        return base - bounds[0], base + bounds[1]
