"""Sigmoid/tanh relaxations across the inflection point: how far apart the lines are, and what
that does to CROWN and CROWN-IBP on seeded tanh and sigmoid networks.

Prints, for the ``robusttext`` on the path (the first line names it, so that two trees can be
compared: ``PYTHONPATH=<tree> python bench/s_shaped_lines.py``):
- the mean gap between the upper and the lower line (averaged over 201 points per interval) on
  4,000 seeded intervals across 0, 1e-4 to 30 wide and lopsided both ways, float64;
- the mean margin lower bound of CROWN and CROWN-IBP on 5 seeded MLPs (10 -> 64 -> 64 -> 5,
  tanh or sigmoid) at 32 random points each, L-infinity radius 0.02, 0.1 and 0.3.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

import robusttext
from robusttext.bounds import LinfBall, compute_bounds, margin_matrix
from robusttext.bounds.rules import activations


def line_gap(name: str) -> float:
    f = getattr(torch, name)
    df = activations._sigmoid_derivative if name == "sigmoid" else activations._tanh_derivative
    rule = activations.SShapedRule(f, df)
    g = torch.Generator().manual_seed(0)
    n = 4000
    widths = torch.logspace(-4, 1.5, n, dtype=torch.float64)
    lo = -torch.rand(n, generator=g, dtype=torch.float64) * widths
    hi = torch.rand(n, generator=g, dtype=torch.float64) * widths.flip(0)
    slope_l, icpt_l, slope_u, icpt_u = rule.relax(None, lo, hi)
    x = lo + torch.linspace(0, 1, 201, dtype=torch.float64)[:, None] * (hi - lo)
    return ((slope_u - slope_l) * x + icpt_u - icpt_l).mean().item()


def network_bounds(activation, eps: float) -> dict:
    totals = {"crown": 0.0, "crown-ibp": 0.0}
    for seed in range(5):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(10, 64), activation(), nn.Linear(64, 64), activation(),
                              nn.Linear(64, 5)).eval()
        x = torch.randn(32, 10)
        C = margin_matrix(model(x).argmax(1), 5)
        with torch.no_grad():
            for method in totals:
                lower = compute_bounds(model, LinfBall(x, eps), method, C=C)[0]
                totals[method] += lower.mean().item() / 5
    return totals


def main() -> None:
    torch.set_num_threads(1)
    print(f"# robusttext from {os.path.dirname(robusttext.__file__)}; torch {torch.__version__}")
    for name in ("sigmoid", "tanh"):
        print(f"{name}: mean gap between the lines across 0: {line_gap(name):.4f}")
    for activation in (nn.Tanh, nn.Sigmoid):
        for eps in (0.02, 0.1, 0.3):
            bounds = network_bounds(activation, eps)
            print(f"{activation.__name__} MLP, eps {eps}: mean margin lower bound CROWN "
                  f"{bounds['crown']:.4f}, CROWN-IBP {bounds['crown-ibp']:.4f}", flush=True)


if __name__ == "__main__":
    main()
