"""The schedule of certified training, text and vision alike, counted in optimiser steps.

Warm-up (clean training only), then a ramp, then a hold. ``eps`` is 0 for the warm-up, then
ramps (linearly, or with the "smoothed" polynomial-then-linear shape of Zhang et al. 2020's
code) to ``eps_target``, then holds; the ramp's progress is ``fraction = eps / eps_target``.
With it grow, linearly in the fraction:

- the **robust weight** ``w``, from ``robust_start`` to ``robust_final``: the loss is
  ``(1 - w) CE(clean) + w CE(worst case)`` (text and vision alike: the settings
  ``robust_weight_start`` -> ``robust_weight``; Gowal et al. 2018's ``kappa``, the weight of the
  clean loss, is ``1 - w``);
- ``beta``, the weight of CROWN-IBP against IBP, from ``beta_start`` to ``beta_final``.

Text ramps the candidate displacement ``e + eps (e_k - e)`` to 1 (Jia et al. 2019) and moves
already at the first ramp step (``lead=1``: after ``ramp_steps`` steps eps is at its target);
vision ramps the L-infinity radius from 0 at the first ramp step (``lead=0``), as its recorded
runs were trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from robusttext.errors import RobustTextError

KINDS = ("linear", "smoothed")


@dataclass(frozen=True)
class Schedule:
    """Values at a given optimiser step (0-based); see the module docstring."""

    warmup_steps: int
    ramp_steps: int
    eps_target: float = 1.0
    robust_start: float = 0.0
    robust_final: float = 0.5
    beta_start: float = 1.0
    beta_final: float = 0.0
    kind: str = "linear"
    lead: int = 0
    mid_point: float = 0.25
    power: float = 4.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise RobustTextError(f"schedule must be 'linear' or 'smoothed', got {self.kind!r}")
        if self.warmup_steps < 0 or self.ramp_steps < 0:
            raise RobustTextError("warm-up and ramp lengths must be non-negative")

    @classmethod
    def from_epochs(cls, steps_per_epoch: int, warmup_epochs: float, ramp_epochs: float,
                    **settings) -> Schedule:
        """The schedule of a run of ``steps_per_epoch`` steps per epoch."""
        return cls(round(warmup_epochs * steps_per_epoch), round(ramp_epochs * steps_per_epoch),
                   **settings)

    def eps(self, step: int) -> float:
        """The perturbation size at ``step``."""
        start, end = self.warmup_steps, self.warmup_steps + self.ramp_steps
        if step < start:
            return 0.0
        if step + self.lead >= end or self.ramp_steps == 0:
            return self.eps_target
        if self.kind == "linear":
            return self.eps_target * (step + self.lead - start) / (end - start)
        return _smoothed(step + self.lead, start, end, self.eps_target, self.mid_point,
                         self.power)

    def fraction(self, step: int) -> float:
        """``eps(step) / eps_target`` in [0, 1] (1 when the target is 0)."""
        return 1.0 if self.eps_target == 0 else self.eps(step) / self.eps_target

    def robust(self, step: int) -> float:
        """Weight of the worst-case cross-entropy at ``step``."""
        return self.robust_start + (self.robust_final - self.robust_start) * self.fraction(step)

    def beta(self, step: int) -> float:
        """Weight of the CROWN-IBP bound (against IBP) at ``step``."""
        return self.beta_start + (self.beta_final - self.beta_start) * self.fraction(step)


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
