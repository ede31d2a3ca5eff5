"""IBP margin bounds on the DM CNNs: process CPU time per call, for comparing two trees.

Times ``compute_bounds(model, LinfBall(x, eps, 0, 1), "ibp", C=margins, bound_upper=False)``
(no gradients, one thread) on seeded DM models and random images, with a forward pass beside
it, and prints one line per case: the median and the least CPU milliseconds of ``--calls``
steady calls (the first call is timed apart; the least is the figure least disturbed by other
processes on a shared machine), the ratio of the medians to the forward pass, and the mean
margin lower bound (so
that two trees can be checked to give the same bounds). Run it once per tree, alternately, to
compare a change with what came before it:

    for tree in /tmp/before . /tmp/before .; do
        PYTHONPATH=$tree python bench/ibp_speed.py --models dm-medium,dm-large --batch 128
    done

The first line names the ``robusttext`` that was imported, so a run says which tree it timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import robusttext
from robusttext.bounds import LinfBall, compute_bounds, margin_matrix
from robusttext.vision.models import build_model

SHAPES = {"mnist": (1, 28, 0.1), "cifar10": (3, 32, 2 / 255)}


def cpu_ms(fn, calls):
    """``(median, least)`` process CPU milliseconds of ``calls`` calls of ``fn``."""
    times = []
    for _ in range(calls):
        began = time.process_time()
        fn()
        times.append(1000 * (time.process_time() - began))
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="dm-small,dm-medium,dm-large")
    parser.add_argument("--data", default="mnist", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# robusttext from {os.path.dirname(robusttext.__file__)}; torch {torch.__version__}; "
          f"load {os.getloadavg()[0]:.1f}")
    for name in args.models.split(","):
        print(time_case(name, args.data, args.batch, args.calls), flush=True)


def time_case(name: str, data: str, batch: int, calls: int) -> str:
    channels, size, eps = SHAPES[data]
    torch.manual_seed(0)
    model = build_model(name, channels, size).eval()
    x = torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(2))
    C = margin_matrix(labels, 10)
    ball = LinfBall(x, eps, lower=0.0, upper=1.0)
    with torch.no_grad():
        began = time.process_time()
        lower = compute_bounds(model, ball, "ibp", C=C, bound_upper=False)[0]
        first = 1000 * (time.process_time() - began)
        forward = cpu_ms(lambda: model(x), calls)
        ibp = cpu_ms(lambda: compute_bounds(model, ball, "ibp", C=C, bound_upper=False), calls)
    return (f"{name} {data} b{batch}: forward {forward[0]:.1f} ms (least {forward[1]:.1f}), "
            f"IBP {ibp[0]:.1f} ms (least {ibp[1]:.1f}; {ibp[0] / forward[0]:.2f}x forward; "
            f"first call {first:.1f} ms), mean margin lower bound {lower.mean().item():.6g}")

if __name__ == "__main__":
    main()
