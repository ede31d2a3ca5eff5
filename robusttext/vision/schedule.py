"""The eps, kappa and beta schedules of certified training (Gowal et al. 2018; Zhang et al. 2020).

Time is counted in optimiser steps. ``eps`` is 0 for the warm-up, then ramps (linearly, or with
the "smoothed" polynomial-then-linear shape of the reference code) to its target, then holds.
``kappa`` (weight of the clean loss) and ``beta`` (weight of CROWN-IBP against IBP) move with the
fraction ``eps / eps_target``: ``kappa = kappa_start + (kappa_final - kappa_start) * fraction``
and likewise ``beta`` from ``beta_start`` to ``beta_final``.
"""

from __future__ import annotations

from dataclasses import dataclass

from robusttext.errors import RobustTextError


@dataclass(frozen=True)
class Schedule:
    """Values at a given optimiser step; see the module docstring."""

    eps_target: float
    warmup_steps: int
    ramp_steps: int
    kind: str = "linear"
    kappa_start: float = 1.0
    kappa_final: float = 0.5
    beta_start: float = 1.0
    beta_final: float = 0.0
    mid_point: float = 0.25
    power: float = 4.0

    def __post_init__(self):
        if self.kind not in ("linear", "smoothed"):
            raise RobustTextError(f"schedule must be 'linear' or 'smoothed', got {self.kind!r}")
        if self.warmup_steps < 0 or self.ramp_steps < 0:
            raise RobustTextError("warm-up and ramp lengths must be non-negative")

    def eps(self, step: int) -> float:
        """Training radius at optimiser step ``step`` (0-based)."""
        start, end = self.warmup_steps, self.warmup_steps + self.ramp_steps
        if step < start:
            return 0.0
        if step >= end or self.ramp_steps == 0:
            return self.eps_target
        if self.kind == "linear":
            return self.eps_target * (step - start) / (end - start)
        return _smoothed(step, start, end, self.eps_target, self.mid_point, self.power)

    def fraction(self, step: int) -> float:
        """``eps(step) / eps_target`` in [0, 1] (1 when the target is 0)."""
        return 1.0 if self.eps_target == 0 else self.eps(step) / self.eps_target

    def kappa(self, step: int) -> float:
        """Weight of the clean cross-entropy at ``step``."""
        f = self.fraction(step)
        return self.kappa_start + (self.kappa_final - self.kappa_start) * f

    def beta(self, step: int) -> float:
        """Weight of the CROWN-IBP bound (against IBP) at ``step``."""
        f = self.fraction(step)
        return self.beta_start + (self.beta_final - self.beta_start) * f


def _smoothed(step: int, start: int, end: int, target: float, mid_point: float, power: float):
    """Polynomial growth ``alpha * t**power`` up to ``mid_point`` of the ramp, then linear; the
    two pieces meet with equal value and slope (the reference "smoothed" schedule)."""
    mid = int((end - start) * mid_point) + start
    if mid <= start:
        return target * (step - start) / (end - start)
    t = float(mid - start) ** (power - 1.0)
    alpha = target / ((end - mid) * power * t + (mid - start) * t)
    mid_value = alpha * float(mid - start) ** power
    if step < mid:
        return alpha * float(step - start) ** power
    return mid_value + (target - mid_value) * (step - mid) / (end - mid)
