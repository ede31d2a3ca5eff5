"""Complete verification (``--method exact``) on the shipped text models, beside enumeration.

Per model and budget: certify with ``method="exact"`` (auto's bounds, the attack, enumeration
of sets up to ``--enumerate-limit``, then branch and bound on every sentence still open), and
print the verified, under-attack, exhaustive and exact figures, how many sentences the search
decided and how many timed out, the slowest search, and, on the sentences the search ran on
the sentences per second of the whole exact answer (bounds, attack and search) beside
enumerating every set of at most ``--compare-limit`` rewrites (``exhaustive_check``), whose
answers are compared with the search's.

    python bench/exact.py --models word-counterfitted char-enkey --budgets 1,2,3 \
        --data ../shared/data/sst2/dev.tsv --time-limit 10 --json bench/exact.json

Speed figures depend on the machine and its load; the results file records both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from robusttext.certify import certify
from robusttext.certify.exhaustive import exhaustive_check
from robusttext.data import load_examples
from robusttext.perturb.encoded import EncodedBatch
from robusttext.text.io import load_text_model


def compare_with_enumeration(model, vocab, space, examples, results, budget, limit):
    """Enumerate every decided sentence's set at ``budget`` with at most ``limit`` rewrites:
    ``(sentences, enumeration seconds, disagreements with the exact answer)``."""
    chosen = [r for r in results if r.budget == budget and r.exact != "timeout"
              and r.set_size <= limit]
    if not chosen:
        return 0, 0.0, 0
    rows, tokens = space.rows([examples[r.index].text for r in chosen], vocab)
    seconds, wrong = 0.0, 0
    for start in range(0, len(chosen), 32):  # one sentence's set at a time is the fair figure
        part = list(range(start, min(start + 32, len(chosen))))
        enc = EncodedBatch.from_rows([rows[i] for i in part], vocab.pad_id,
                                     [tokens[i] for i in part])
        labels = torch.tensor([chosen[i].label for i in part])
        begin = time.perf_counter()
        _, flipped = exhaustive_check(model, enc, labels, {j: budget for j in range(len(part))},
                                      budget + 1)
        seconds += time.perf_counter() - begin
        for j, i in enumerate(part):
            robust = not bool(flipped[j, budget])
            wrong += robust != (chosen[i].exact == "certified")
    return len(chosen), seconds, wrong


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.1f}" if n and seconds > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["word-counterfitted",
                                                       "word-counterfitted-lstm", "char-enkey",
                                                       "char-flips"])
    parser.add_argument("--budgets", default="1,2,3")
    parser.add_argument("--data", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--limit", type=int, default=None, help="first N sentences")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--enumerate-limit", type=int, default=10_000)
    parser.add_argument("--compare-limit", type=int, default=100_000,
                        help="enumerate the searched sentences' sets up to this size to compare")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="append one JSON line per model here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    examples = load_examples(args.data, limit=args.limit)
    machine = platform.processor() or platform.machine()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine}, "
          f"{os.cpu_count()} CPUs, torch threads {args.threads}; load average at start "
          f"{os.getloadavg()[0]:.1f}; {len(examples)} sentences of {args.data}; "
          f"time limit {args.time_limit:g} s")
    for name in args.models:
        bundle = load_text_model(name)
        model = bundle.model.eval()
        start = time.perf_counter()
        result = certify(model, bundle.vocab, bundle.space, examples, budgets=budgets,
                         method="exact", enumerate_limit=args.enumerate_limit,
                         exact_time_limit=args.time_limit)
        total = time.perf_counter() - start
        print(f"## {name} ({result.settings['exact']['bounds']} inside; certify total "
              f"{total:.0f} s; load average now {os.getloadavg()[0]:.1f})")
        print("| budget | verified | exact | under attack | exhaustive (n) | searched | "
              "decided | timeouts | slowest s | search s | exact sent./s | enumerated n "
              "| enum. sent./s | disagree |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        record = {"model": name, "budgets": {}}
        for s in result.summaries:
            mine = [r for r in result.examples if r.budget == s.budget]
            searched = [r for r in mine if r.exact_seconds > 0]
            slowest = max((r.exact_seconds for r in searched), default=0.0)
            n, enum_s, wrong = compare_with_enumeration(
                model, bundle.vocab, bundle.space, examples, result.examples, s.budget,
                args.compare_limit)
            exhaustive = ("-" if s.exhaustive_accuracy is None else
                          f"{100 * s.exhaustive_accuracy:.2f} ({s.exhaustive_n})")
            exact = 100 * s.exact_accuracy
            exact_text = (f"{exact:.2f}" if not s.exact_timeouts else
                          f"{exact:.2f}-{exact + 100 * s.exact_timeouts / s.n:.2f}")
            pipeline = s.bounds_seconds + s.attack_seconds + s.exact_seconds
            print(f"| {s.budget} | {100 * s.verified_accuracy:.2f} | {exact_text} | "
                  f"{100 * s.attack_accuracy:.2f} | {exhaustive} | {len(searched)} | "
                  f"{s.exact_decided} | {s.exact_timeouts} | {slowest:.2f} | "
                  f"{s.exact_seconds:.1f} | {s.n / pipeline:.1f} | {n} | {_rate(n, enum_s)} | "
                  f"{wrong} |", flush=True)
            record["budgets"][s.budget] = {
                **s.to_json(), "searched": len(searched), "slowest_seconds": slowest,
                "exact_pipeline_seconds": pipeline, "compared": n,
                "compared_enumeration_seconds": enum_s, "disagreements": wrong,
                "over_limit": [(r.index, round(r.exact_seconds, 2)) for r in searched
                               if r.exact == "timeout"]}
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
