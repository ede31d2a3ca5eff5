"""What the engine's own checks cost: the containment oracle on every bound, and the first call
(tracing and checking the graph against the live module) against a cached one; and, for the
record, torch.export's first-call cost on the same models.

1. A CROWN-IBP certify run of a shipped BiLSTM (``word-counterfitted-lstm``) on the first
   ``--sentences`` SST-2 dev sentences, budgets 1-3: the seconds spent inside the oracle
   (``oracle.check_containment``, timed by a wrapper) as a share of the whole run, and the run's
   time with the oracle switched off (``oracle.checking(False)``).
2. CROWN-IBP bounds of DM-small/medium (CIFAR-10 shape, batch ``--batch``) with the oracle on and
   off.
3. First call and cached call of ``compute_bounds`` (IBP) on a fresh DM-small and on a small
   attention model, with fx tracing alone and ``torch.export.export`` of the same module.

    python bench/oracle_cost.py --sentences 100 --batch 64
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn

import robusttext.bounds.engine as engine
import robusttext.bounds.oracle as oracle
from robusttext.bounds import LinfBall, compute_bounds, margin_matrix
from robusttext.bounds.graph import trace
from robusttext.vision.models import INPUT_SHAPES, build_model

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"


def timed_oracle():
    spent = [0.0]
    honest = oracle.check_containment

    def wrapped(*args, **kwargs):
        start = time.perf_counter()
        try:
            return honest(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    engine.check_containment = wrapped
    return spent


def certify_share(sentences: int) -> None:
    from robusttext.certify import certify
    from robusttext.data import load_examples
    from robusttext.text import load_text_model

    bundle = load_text_model("word-counterfitted-lstm")
    examples = load_examples(str(DEV))[:sentences]
    run = lambda: certify(bundle.model, bundle.vocab, bundle.space, examples,  # noqa: E731
                          budgets=[1, 2, 3], method="crown-ibp", enumerate_limit=0)
    run()  # warm-up: tracing, the graph checks
    spent = timed_oracle()
    start = time.perf_counter()
    on = run()
    total_on = time.perf_counter() - start
    with oracle.checking(False):
        start = time.perf_counter()
        off = run()
        total_off = time.perf_counter() - start
    engine.check_containment = oracle.check_containment
    same = [e.margin_lower for e in on.examples] == [e.margin_lower for e in off.examples]
    print(f"certify crown-ibp, word-counterfitted-lstm, {len(examples)} sentences, budgets 1-3, "
          f"no enumeration: run {total_on:.2f} s with the oracle, of which the oracle "
          f"{spent[0]:.3f} s ({100 * spent[0] / total_on:.2f}%); {total_off:.2f} s without; "
          f"same margins: {same}")


def vision_share(batch: int, repeats: int) -> None:
    for name in ("dm-small", "dm-medium"):
        torch.manual_seed(0)
        channels, size = INPUT_SHAPES["cifar10"]
        model = build_model(name, channels, size).eval()
        x = torch.rand(batch, channels, size, size)
        ball = LinfBall(x, 2 / 255, lower=0.0, upper=1.0)
        C = margin_matrix(torch.randint(0, 10, (batch,)), 10)

        def run(model=model, ball=ball, C=C):
            with torch.no_grad():
                compute_bounds(model, ball, "crown-ibp", C=C, bound_upper=False)

        run()
        times = {}
        spent = timed_oracle()
        for on in (True, False, True, False):
            with oracle.checking(on):
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    times.setdefault(on, []).append(time.perf_counter() - start)
        engine.check_containment = oracle.check_containment
        a, b = statistics.median(times[True]), statistics.median(times[False])
        inside = spent[0] / len(times[True])
        print(f"crown-ibp {name} cifar10 batch {batch}: {a * 1e3:.1f} ms with the oracle, "
              f"{b * 1e3:.1f} ms without ({100 * (a - b) / b:+.1f}%, noisy); inside the oracle "
              f"{inside * 1e3:.1f} ms per call ({100 * inside / a:.2f}% of the checked run)")


class Attention(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 2)

    def split(self, x):
        return x.view(*x.size()[:-1], self.heads, -1).transpose(1, 2)

    def forward(self, x):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        h = nn.Softmax(dim=-1)(q @ k.transpose(-1, -2)) @ v
        h = h.transpose(1, 2).reshape(x.shape)
        if h.shape[-1] == x.shape[-1]:
            h = h + x
        return self.out(torch.relu(h).mean(1))


def first_calls() -> None:
    torch.manual_seed(0)
    cases = [("dm-small", lambda: build_model("dm-small", 3, 32).eval(),
              torch.rand(8, 3, 32, 32)),
             ("attention", lambda: Attention().eval(), torch.randn(8, 10, 16))]
    for name, make, x in cases:
        model = make()
        ball = LinfBall(x, 0.01)
        start = time.perf_counter()
        compute_bounds(model, ball, "ibp")
        first = time.perf_counter() - start
        start = time.perf_counter()
        compute_bounds(model, ball, "ibp")
        cached = time.perf_counter() - start
        start = time.perf_counter()
        trace(make(), (x,))
        fx_alone = time.perf_counter() - start
        start = time.perf_counter()
        try:
            torch.export.export(make(), (x,))
            exported = f"{time.perf_counter() - start:.3f} s"
        except Exception as error:  # what export refuses is part of the comparison
            exported = f"fails ({type(error).__name__})"
        print(f"{name}: compute_bounds ibp first call {first:.3f} s, cached {cached:.4f} s; "
              f"fx trace alone {fx_alone:.3f} s; torch.export.export {exported}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-certify", action="store_true")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    first_calls()
    vision_share(args.batch, args.repeats)
    if not args.skip_certify:
        certify_share(args.sentences)


if __name__ == "__main__":
    main()
