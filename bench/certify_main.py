"""Time of the README's main command, ``robusttext certify`` with no arguments.

Runs ``python -m robusttext certify --quiet`` (every shipped model on the demo sentences) in a
fresh process ``--repeat`` times and prints, per run, the wall time and the CPU time (user +
system of the child), then the medians. The load average before each run is printed too: on a
shared machine the wall time grows with the other jobs' load while the CPU time does not, so a
figure is only comparable with one of the same load.

    OMP_NUM_THREADS=1 python bench/certify_main.py --repeat 3
    python bench/certify_main.py -- --enumerate-seconds none   # extra arguments after --
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(extra: list[str]) -> tuple[float, float, str]:
    """``(wall seconds, CPU seconds, standard output)`` of one fresh ``robusttext certify``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "robusttext", "certify", "--quiet", *extra],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("extra", nargs="*", help="arguments added to the command (after --)")
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          f", OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"# command: {sys.executable} -m robusttext certify --quiet {' '.join(args.extra)}")
    walls, cpus = [], []
    for run in range(args.repeat):
        load = os.getloadavg()[0]
        wall, cpu, out = run_once(args.extra)
        walls.append(wall)
        cpus.append(cpu)
        models = sum(" sentences from " in line for line in out.splitlines())
        print(f"run {run + 1}: wall {wall:6.2f} s, CPU {cpu:6.2f} s, load average before "
              f"{load:4.1f}, {models} models certified")
    print(f"median: wall {statistics.median(walls):.2f} s, CPU {statistics.median(cpus):.2f} s "
          f"({args.repeat} runs)")


if __name__ == "__main__":
    main()
