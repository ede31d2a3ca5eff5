"""Start-up time of ``robusttext --help`` and each sub-command's ``--help``.

Runs ``python -m robusttext.cli ARGS --help`` in a fresh process ``--repeat`` times per command
and prints the median wall time and the median CPU time (user + system of the child). On a
shared machine the wall time grows with the other jobs' load (printed per command) while the
CPU time does not; whether the command imported torch shows in both. ``--tree PATH``
(repeatable) measures other checkouts (an exported older commit, say) by putting each first on
``PYTHONPATH``; ``--tree installed`` is the installed one. The trees take turns run by run, so
a shared machine's load falls on all alike.

    OMP_NUM_THREADS=1 python bench/cli_startup.py --repeat 5
    git archive 92f182e robusttext | tar -x -C /tmp/before
    python bench/cli_startup.py --tree /tmp/before --tree installed
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

# The child: import robusttext from TREE (bypassing an editable install's import hook, which
# would otherwise win over sys.path), then run the command line.
CHILD = """
import runpy, sys
tree = sys.argv.pop(1)
if tree != "installed":
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, tree)
sys.argv[0] = "robusttext"
runpy.run_module("robusttext.cli", run_name="__main__")
"""

COMMANDS = ([], ["certify"], ["perturb"], ["train"], ["vision"], ["vision", "train"],
            ["vision", "certify"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--tree", action="append",
                        help="checkout to measure, repeatable (default: installed)")
    args = parser.parse_args()
    trees = args.tree or ["installed"]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.1f}")
    for command in COMMANDS:
        times: dict[str, list[float]] = {tree: [] for tree in trees}
        cpu: dict[str, list[float]] = {tree: [] for tree in trees}
        load = os.getloadavg()[0]
        for _ in range(args.repeat):
            for tree in trees:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", CHILD, tree, *command, "--help"],
                               check=True, stdout=subprocess.DEVNULL)
                times[tree].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[tree].append(after.ru_utime - before.ru_utime + after.ru_stime
                                 - before.ru_stime)
        shown = " ".join(["robusttext", *command, "--help"])
        for tree, spent in times.items():
            print(f"{shown:34s} {tree:16s} wall median {statistics.median(spent):5.2f} s "
                  f"(min {min(spent):.2f}, max {max(spent):.2f}), CPU median "
                  f"{statistics.median(cpu[tree]):5.2f} s, {args.repeat} runs, load {load:.1f}")


if __name__ == "__main__":
    main()
