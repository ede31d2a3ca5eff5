"""CROWN and alpha-CROWN on a smooth MLP (tanh and sigmoid), process CPU seconds per call.

CROWN's intermediate bounds pass through every earlier activation once per node, so the cost
of an activation's relaxation (a bisection for the S-shaped lines) is paid once per pass
unless the lines are kept; this prints the least and the median of 5 calls and the mean lower
bound (to check that two trees give the same bounds). Run it once per tree, alternately:

    for tree in /tmp/before . /tmp/before .; do
        PYTHONPATH=$tree python bench/crown_smooth_speed.py
    done
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

import robusttext
from robusttext.bounds import LinfBall, compute_bounds


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers = [nn.Linear(20, 64), nn.Tanh()]
    for i in range(5):
        layers += [nn.Linear(64, 64), nn.Sigmoid() if i % 2 else nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(64, 10)).eval()
    x = torch.randn(16, 20)
    tree = robusttext.__file__.split("/robusttext/")[0]
    for method in ("crown", "alpha-crown"):
        times = []
        with torch.no_grad():
            for _ in range(5):
                began = time.process_time()
                lower, _ = compute_bounds(model, LinfBall(x, 0.05), method, bound_upper=False)
                times.append(time.process_time() - began)
        print(f"{tree} {method}: 6-layer tanh/sigmoid MLP (64 wide), batch 16: CPU s least "
              f"{min(times):.3f}, median {sorted(times)[2]:.3f}, mean lower bound "
              f"{lower.mean().item():.5f}")


if __name__ == "__main__":
    main()
