"""The affine rule's interval: the ends form against the centre/radius form, with and without a
rigorous rounding term (issue 31, build 6): tightness and CPU time.

Three forms of ``y = W x + b`` over ``[lo, hi]`` (``c = (lo + hi) / 2``, ``r = (hi - lo) / 2``):

- ``ends``: robusttext's rule (``rules/affine._map_ends``): ``W+ hi + W- lo + b`` and the
  mirror, three or four products;
- ``centre``: ``W c + b -/+ |W| r``, two products, no account of rounding (what the rule used
  before the ends form; unsound on wide intervals, ``tests/test_wide_intervals.py``);
- ``centre+g``: ``W c + b -/+ |W| (r + g (|c| + r))`` with ``g = gamma(n + 2) = (n + 2) u / (1 -
  (n + 2) u)`` for the inner dimension ``n`` (in channels times taps) and the unit roundoff
  ``u`` of the dtype: the rounding of both products and of the final sum folded into the radius,
  two products, rigorous for any order of summation (Higham's bound on inner products).

For each DM model (CIFAR shape, seeded weights, random images, one thread) it prints the CPU
milliseconds of an IBP margin bound per form (median and least of ``--calls``), the ratio to a
forward pass and the mean margin lower bound; then the wide-interval case of
``tests/test_wide_intervals.py`` (true maximum ``-e + e^6 + 100``): the upper bound of each form.

    PYTHONPATH=. python bench/affine_rounding.py --models dm-small,dm-medium,dm-large --batch 64
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

import robusttext.bounds.rules.affine as affine
from robusttext.bounds import Box, LinfBall, compute_bounds, margin_matrix
from robusttext.vision.models import build_model

ENDS = affine._map_ends


def _centre(lo, hi, weight, bias, apply, channels, rounding=False):
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    if rounding:
        n = weight[0].numel() + 2
        u = torch.finfo(lo.dtype).eps / 2
        g = n * u / (1 - n * u)
        radius = radius + g * (centre.abs() + radius)
    mid = apply(centre, weight, bias)
    spread = apply(radius, weight.abs(), None)
    return mid - spread, mid + spread


FORMS = {
    "ends": ENDS,
    "centre": lambda *a: _centre(*a, rounding=False),
    "centre+g": lambda *a: _centre(*a, rounding=True),
}


def cpu_ms(fn, calls):
    times = []
    for _ in range(calls):
        began = time.process_time()
        fn()
        times.append(1000 * (time.process_time() - began))
    return statistics.median(times), min(times)


def time_model(name, batch, calls):
    torch.manual_seed(0)
    model = build_model(name, 3, 32).eval()
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(2))
    C = margin_matrix(labels, 10)
    ball = LinfBall(x, 2 / 255, lower=0.0, upper=1.0)
    lines = []
    with torch.no_grad():
        forward = cpu_ms(lambda: model(x), calls)
        lines.append(f"{name} cifar10 b{batch}: forward {forward[0]:.1f} ms "
                     f"(least {forward[1]:.1f})")
        for form, fn in FORMS.items():
            affine._map_ends = fn
            try:
                lower = compute_bounds(model, ball, "ibp", C=C, bound_upper=False)[0]
                ibp = cpu_ms(lambda: compute_bounds(model, ball, "ibp", C=C, bound_upper=False),
                             calls)
            finally:
                affine._map_ends = ENDS
            lines.append(f"  {form:9s} IBP {ibp[0]:.1f} ms (least {ibp[1]:.1f}; "
                         f"{ibp[0] / forward[0]:.2f}x forward), mean margin lower bound "
                         f"{lower.mean().item():.6g}")
    return "\n".join(lines)


def wide_interval():
    """``tests/test_wide_intervals.py``'s linear head on ``[0, 6]``."""
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 1).double()
            with torch.no_grad():
                self.head.weight.copy_(torch.tensor([[-1.0, 1.0]]))
                self.head.bias.fill_(100.0)

        def forward(self, x):
            return self.head(torch.cat([torch.exp(torch.exp(x - x)), torch.exp(x)], -1))

    box = Box(torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), 6.0,
                                                                 dtype=torch.float64))
    true_max = -math.e + math.exp(6.0) + 100.0
    lines = [f"wide interval ([1.0025, 1e175] after exp(exp)), true maximum {true_max:.6g}:"]
    for form, fn in FORMS.items():
        affine._map_ends = fn
        try:
            upper = compute_bounds(Head(), box, "ibp")[1].item()
        finally:
            affine._map_ends = ENDS
        verdict = "sound" if upper >= true_max else "UNSOUND"
        lines.append(f"  {form:9s} upper bound {upper:.6g} ({verdict})")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="dm-small,dm-medium,dm-large")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# torch {torch.__version__}; load {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
    print(wide_interval(), flush=True)
    for name in args.models.split(","):
        print(time_model(name, args.batch, args.calls), flush=True)


if __name__ == "__main__":
    main()
