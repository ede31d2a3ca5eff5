"""Schedules of certified training, counted in optimiser steps.

Warm-up (clean training only), then a linear ramp, then a hold:
- ``eps``: scale of the candidate displacement, ``e + eps (e_k - e)``, 0 -> 1 (Jia et al. 2019);
- ``k``: weight of the worst-case loss, 0 -> ``robust_weight``;
- ``beta``: weight of CROWN-IBP against IBP, ``beta_start`` -> ``beta_final`` (Zhang et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RobustSchedule:
    warmup_steps: int
    ramp_steps: int
    robust_weight: float = 0.5
    beta_start: float = 1.0
    beta_final: float = 0.0

    @classmethod
    def from_epochs(cls, steps_per_epoch: int, warmup_epochs: float, ramp_epochs: float,
                    **weights: float) -> RobustSchedule:
        return cls(round(warmup_epochs * steps_per_epoch), round(ramp_epochs * steps_per_epoch),
                   **weights)

    def fraction(self, step: int) -> float:
        """Progress of the ramp at ``step``: 0 during the warm-up, 1 after the ramp."""
        if step < self.warmup_steps:
            return 0.0
        if self.ramp_steps == 0:
            return 1.0
        return min(1.0, (step - self.warmup_steps + 1) / self.ramp_steps)

    def eps(self, step: int) -> float:
        return self.fraction(step) if self.robust_weight > 0 else 0.0

    def k(self, step: int) -> float:
        return self.robust_weight * self.fraction(step)

    def beta(self, step: int) -> float:
        return self.beta_start + (self.beta_final - self.beta_start) * self.fraction(step)
