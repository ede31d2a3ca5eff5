"""Bound-engine speed on the certified-training CNNs of Gowal et al. 2018 (CPU, batch 128).

For MNIST-shaped (1x28x28) and CIFAR-10-shaped (3x32x32) inputs and DM-small/medium/large it
times a forward pass, IBP and CROWN-IBP with 10-class margins (9 specifications), and CROWN on
DM-small; each as a ratio to the forward pass, with the peak memory of the process that ran it;
and what the containment oracle (``robusttext.bounds.oracle``, on by default) adds to CROWN-IBP
(``crown-ibp-unchecked``: the same bounds with the oracle off).
Each measurement runs in its own process so that peak memory is its own.

    python bench/bounds_speed.py            # the whole table
    python bench/bounds_speed.py --batch 32 # smaller batches
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from robusttext.bounds import LinfBall, compute_bounds, margin_matrix
from robusttext.bounds.oracle import checking
from robusttext.vision.models import INPUT_SHAPES, build_model

MEASURES = ("forward", "ibp", "crown-ibp", "crown", "crown-ibp-unchecked")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(data: str, model_name: str, what: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    channels, size = INPUT_SHAPES[data]
    model = build_model(model_name, channels, size).eval()
    x = torch.rand(batch, channels, size, size)
    labels = torch.randint(0, 10, (batch,))
    C = margin_matrix(labels, 10)
    ball = LinfBall(x, 2 / 255 if data == "cifar10" else 0.1, lower=0.0, upper=1.0)

    method = what.removesuffix("-unchecked")

    def run():
        with torch.no_grad(), checking(not what.endswith("-unchecked")):
            if what == "forward":
                model(x)
            else:
                compute_bounds(model, ball, method, C=C, bound_upper=False)

    run()  # warm-up (tracing, allocator)
    base = peak_rss_mib()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_rss_mib": peak_rss_mib(), "base": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--crown-batch", type=int, default=8,
                        help="batch for CROWN (its intermediate bounds cost one backward pass "
                             "per neuron); its forward reference is re-timed at this batch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--one", nargs=3, metavar=("DATA", "MODEL", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(*args.one, args.batch, args.repeats)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} "
          f"(CROWN: batch {args.crown_batch}, ratio to a forward pass at that batch)")
    header = f"{'data':8} {'model':10} {'forward ms':>10} {'IBP x':>7} {'CROWN-IBP x':>11} " \
             f"{'CROWN x':>8} {'peak MiB (fwd/IBP/C-IBP/CROWN)':>32} {'oracle %':>8}"
    print(header)
    for data in ("mnist", "cifar10"):
        for model_name in ("dm-small", "dm-medium", "dm-large"):
            row = {}
            for what in MEASURES:
                if what == "crown" and model_name != "dm-small":
                    continue
                jobs = [(what, what, args.batch)]
                if what == "crown":
                    jobs = [("crown-forward", "forward", args.crown_batch),
                            ("crown", "crown", args.crown_batch)]
                for key, measured, batch in jobs:
                    command = [sys.executable, __file__, "--batch", str(batch), "--repeats",
                               str(args.repeats), "--threads", str(args.threads), "--one",
                               data, model_name, measured]
                    out = subprocess.run(command, capture_output=True, text=True, check=True)
                    row[key] = json.loads(out.stdout)
            fwd = row["forward"]["seconds"]
            ratio = {w: row[w]["seconds"] / fwd for w in row}
            if "crown" in row:
                ratio["crown"] = row["crown"]["seconds"] / row["crown-forward"]["seconds"]
            mem = "/".join(f"{row[w]['peak_rss_mib']:.0f}" for w in MEASURES[:4] if w in row)
            checked = row["crown-ibp"]["seconds"] / row["crown-ibp-unchecked"]["seconds"] - 1
            crown = f"{ratio['crown']:8.1f}" if "crown" in ratio else f"{'-':>8}"
            print(f"{data:8} {model_name:10} {fwd * 1000:10.1f} {ratio['ibp']:7.2f} "
                  f"{ratio['crown-ibp']:11.2f} {crown} {mem:>32} {100 * checked:8.1f}", flush=True)


if __name__ == "__main__":
    main()
