"""Start-up time of ``robusttext --help`` and each sub-command's ``--help``.

Runs ``python -m robusttext.cli ARGS --help`` in a fresh process ``--repeat`` times per command
and prints the median wall time. ``--tree PATH`` measures another checkout (an exported older
commit, say) by putting it first on ``PYTHONPATH``.

    OMP_NUM_THREADS=1 python bench/cli_startup.py --repeat 5
    git archive 92f182e | tar -x -C /tmp/before && python bench/cli_startup.py --tree /tmp/before
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = ([], ["certify"], ["perturb"], ["train"], ["vision"], ["vision", "train"],
            ["vision", "certify"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--tree", help="checkout to measure (default: the installed one)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.tree:
        env["PYTHONPATH"] = args.tree + os.pathsep + env.get("PYTHONPATH", "")
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, tree {args.tree or 'installed'}")
    for command in COMMANDS:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "robusttext.cli", *command, "--help"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        shown = " ".join(["robusttext", *command, "--help"])
        print(f"{shown:40s} median {statistics.median(times):.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f}, {args.repeat} runs)")


if __name__ == "__main__":
    main()
