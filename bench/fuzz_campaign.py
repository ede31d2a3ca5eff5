"""A long fuzzing campaign of the bound engine: random graphs over the supported operations
(``tests/test_engine_fuzz.py``'s generator), every method checked against sampled points and
box corners, and against enumeration for substitution sets.

    python bench/fuzz_campaign.py --examples 5000 --seed 1     # prints graphs tried, violations
    python bench/fuzz_campaign.py --chunks 20 --examples 1000  # 20 processes, seeds 0..19
    python bench/fuzz_campaign.py --text --examples 500        # text mode (below)

``--text``: random sentences as people write them (``tests/test_text_fuzz.py``: case,
punctuation, contractions, numbers, accents, emoji) read by tokenizers of every family trained
on SST-2 phrases; each checked for the tokenizer's own ids, every rewrite read back as its row
and every certificate against ``transformers``' forward on every rewrite.

Runs on one thread. Each violation is printed with the graph that produced it; the last line is
``graphs tried: N, violations: V, errors: E (seconds)``. With ``--chunks`` every chunk runs in its
own process (one after the other), so that a crash inside torch itself (a generated model once
hit a SIGSEGV in torch's conv1d in its own forward pass) loses one chunk, which is reported.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from robusttext import RobustTextError  # noqa: E402
from tests.test_engine_fuzz import STATS, check, graphs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-every", type=int, default=250)
    parser.add_argument("--trace", help="write each graph to this file before checking it "
                        "(to find one that crashes the process)")
    parser.add_argument("--chunks", type=int, default=0,
                        help="run this many campaigns of --examples each, seeds --seed onwards, "
                             "each in its own process")
    parser.add_argument("--text", action="store_true",
                        help="fuzz sentences through tokenizers instead of graphs")
    args = parser.parse_args()
    if args.text:
        run_text(args)
        return
    if args.chunks:
        run_chunks(args)
        return
    torch.set_num_threads(1)
    counts = {"tried": 0, "violations": 0, "errors": 0}
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(graphs())
    def campaign(case):
        counts["tried"] += 1
        if args.trace:
            with open(args.trace, "a") as trace:
                print(counts["tried"], case, file=trace)
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
    print(f"method runs bounded: {STATS['bounded']}, refused: {STATS['refused']}")
    print(f"graphs tried: {counts['tried']}, violations: {counts['violations']}, "
          f"errors: {counts['errors']} ({time.perf_counter() - start:.0f}s)")


def run_text(args) -> None:
    from hypothesis import strategies as st

    from tests.hf_tiny import FAMILIES
    from tests.test_text_fuzz import check_sentence, sentences

    torch.set_num_threads(1)
    counts = {"tried": 0, "violations": 0}
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(FAMILIES), sentences())
    def campaign(family, sentence):
        counts["tried"] += 1
        problems = check_sentence(family, sentence)
        if problems:
            counts["violations"] += 1
            print(f"VIOLATION {problems}", flush=True)
        if counts["tried"] % args.report_every == 0:
            print(f"... {counts['tried']} sentences, {counts['violations']} violations "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)

    campaign()
    print(f"sentences tried: {counts['tried']}, violations: {counts['violations']} "
          f"({time.perf_counter() - start:.0f}s)")


def run_chunks(args) -> None:
    totals = {"tried": 0, "violations": 0, "errors": 0, "crashed": 0, "bounded": 0, "refused": 0}
    start = time.perf_counter()
    for chunk in range(args.chunks):
        command = [sys.executable, __file__, "--examples", str(args.examples), "--seed",
                   str(args.seed + chunk), "--report-every", str(args.examples)]
        done = subprocess.run(command, capture_output=True, text=True)
        for line in done.stdout.splitlines():
            if line.startswith(("VIOLATION", "error on")):
                print(f"seed {args.seed + chunk}: {line}", flush=True)
        final = re.search(r"graphs tried: (\d+), violations: (\d+), errors: (\d+)", done.stdout)
        runs = re.search(r"method runs bounded: (\d+), refused: (\d+)", done.stdout)
        if runs is not None:
            totals["bounded"] += int(runs.group(1))
            totals["refused"] += int(runs.group(2))
        if final is None:
            progress = re.findall(r"\.\.\. (\d+) graphs", done.stdout)
            totals["crashed"] += 1
            print(f"seed {args.seed + chunk}: the process died (exit {done.returncode}) after "
                  f"{progress[-1] if progress else 0}+ graphs; stderr: "
                  f"{done.stderr.strip().splitlines()[:1]}", flush=True)
            continue
        for key, value in zip(("tried", "violations", "errors"), final.groups()):
            totals[key] += int(value)
        print(f"seed {args.seed + chunk}: {final.group(0)}; total {totals['tried']} graphs, "
              f"{totals['violations']} violations ({time.perf_counter() - start:.0f}s)",
              flush=True)
    print(f"method runs bounded: {totals['bounded']}, refused: {totals['refused']}")
    print(f"graphs tried: {totals['tried']}, violations: {totals['violations']}, errors: "
          f"{totals['errors']}, chunks that crashed: {totals['crashed']} "
          f"({time.perf_counter() - start:.0f}s)")


if __name__ == "__main__":
    main()
