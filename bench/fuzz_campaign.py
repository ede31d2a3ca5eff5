"""A long fuzzing campaign of the bound engine: random graphs over the supported operations
(``tests/test_engine_fuzz.py``'s generator), every method checked against sampled points and
box corners, and against enumeration for substitution sets.

    python bench/fuzz_campaign.py --examples 5000 --seed 1     # prints graphs tried, violations

Runs on one thread. Each violation is printed with the graph that produced it; the last line is
``graphs tried: N, violations: V, refused: R (seconds)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from robusttext import RobustTextError  # noqa: E402
from tests.test_engine_fuzz import check, graphs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-every", type=int, default=250)
    args = parser.parse_args()
    torch.set_num_threads(1)
    counts = {"tried": 0, "violations": 0, "errors": 0}
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(graphs())
    def campaign(case):
        counts["tried"] += 1
        try:
            problems = check(case)
        except RobustTextError:
            problems = []
        except Exception as error:  # a crash of the engine (or of a generated model) is counted
            counts["errors"] += 1
            print(f"error on {case}: {type(error).__name__}: {error}", flush=True)
            problems = []
        if problems:
            counts["violations"] += 1
            print(f"VIOLATION {case}: {problems}", flush=True)
        if counts["tried"] % args.report_every == 0:
            print(f"... {counts['tried']} graphs, {counts['violations']} violations "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)

    campaign()
    print(f"graphs tried: {counts['tried']}, violations: {counts['violations']}, "
          f"errors: {counts['errors']} ({time.perf_counter() - start:.0f}s)")


if __name__ == "__main__":
    main()
