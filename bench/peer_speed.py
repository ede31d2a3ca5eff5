"""Bound speed and tightness of robusttext beside auto_LiRPA, in one process, on the same work.

For each case it times a forward pass and, on both libraries, IBP, CROWN-IBP (and CROWN on
DM-small): margin lower bounds only (robusttext ``bound_upper=False``, auto_LiRPA
``bound_upper=False``), the same specification matrix (``margin_matrix``: 9 rows for 10
classes, 1 for 2), float32, one thread, no gradients. Every timed operation gets its own copy of
the model; its first call (robusttext: tracing; auto_LiRPA: ``BoundedModule`` build + first
bound) is timed apart, then ``--repeats`` interleaved rounds call every operation once each, and
the steady figure is the median. Each row gives the steady process CPU time and wall time, the
CPU time's ratio to the forward pass and to the peer's same method, the first-call / steady
ratio (CPU) and the mean margin lower bound. CPU time is the figure to read on a shared
machine: under load the wall time also counts the time other processes held the cores.

Cases:
- DM-small / DM-medium / DM-large (``robusttext.vision.models``) on MNIST-shaped (1x28x28, eps
  0.1) and CIFAR-shaped (3x32x32, eps 2/255) random inputs in [0, 1], batch 32 and 128; CROWN
  (intermediate bounds by CROWN: one backward pass per neuron) on DM-small at ``--crown-batch``
  (default 2) with ``--crown-repeats`` rounds (default 3).
  auto_LiRPA's CROWN runs with ``conv_mode="matrix"``: its default patches mode fails on
  DM-small with torch 2.13 (a shape error in concretization).
- the Transformer body (``TransformerClassifier``, CenterNorm) and the BiLSTM at sentence lengths
  16, 32, 64 (every token real), batch ``--text-batch``, over a seeded synthetic substitution set:
  8 candidate slots per position, each real with probability 0.25, the candidates moved to
  ``e + text_eps (e_k - e)`` (as a training ramp does), at most ``--budget`` positions changed.
  robusttext runs ``margin_lower_bounds`` of ``body_problem`` (as certify and training do);
  auto_LiRPA gets the same set through a small ``PerturbationSynonym`` adapter (its dynamic
  programme over positions is the same exact top-budget concretization).
  auto_LiRPA cannot parse robusttext's BiLSTM body (an unrolled loop with masks and reversed
  indexing), so the LSTM is compared on ``GateLSTM``: the same function (the same weights) with
  each direction's gates written out as Linear + sigmoid/tanh, which both libraries bound; the
  rows ``robusttext (own body)`` give robusttext on its own BiLSTM body beside it.

    python bench/peer_speed.py --quick                      # a minute: the smallest cases
    PYTHONPATH=../shared/peers/auto_LiRPA python bench/peer_speed.py        # the whole table
    PYTHONPATH=... python bench/peer_speed.py --models dm-large,transformer --lengths 32

Without auto_LiRPA on the path it says so and times robusttext alone.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from robusttext.bounds import LinfBall, SubstitutionSet, compute_bounds, margin_matrix
from robusttext.bounds.specs import margin_lower_bounds
from robusttext.text import BiLSTM, TransformerClassifier
from robusttext.text.bounds import body_problem
from robusttext.vision.models import INPUT_SHAPES, build_model

VISION_MODELS = ("dm-small", "dm-medium", "dm-large")
TEXT_MODELS = ("transformer", "lstm")
VISION_EPS = {"mnist": 0.1, "cifar10": 2 / 255}
PEER_METHODS = {"ibp": "IBP", "crown-ibp": "CROWN-IBP", "crown": "CROWN"}
VOCAB = 15_000
CANDIDATES = 8


# -- the peer ---------------------------------------------------------------------------------
def import_peer():
    """The auto_LiRPA module, or None (with the reason printed) when it is not importable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import auto_LiRPA
    except ImportError as error:
        print(f"# auto_LiRPA is not importable ({error}): put ../shared/peers/auto_LiRPA on "
              "PYTHONPATH (see ../shared/peers/README.md); timing robusttext alone.")
        return None
    return auto_LiRPA


def peer_substitution(input_set: SubstitutionSet):
    """An auto_LiRPA perturbation holding exactly ``input_set`` (same candidates, same budget).

    auto_LiRPA's ``PerturbationSynonym`` reads its candidates from its example's vocabulary and
    token lists; this subclass takes them from the robusttext set instead and keeps the parent's
    ``concretize`` (a dynamic programme over positions with at most ``budget`` changes).
    """
    from auto_LiRPA.linear_bound import LinearBound
    from auto_LiRPA.perturbations import PerturbationSynonym

    class FixedSubstitution(PerturbationSynonym):
        def __init__(self, s: SubstitutionSet):  # the parent's would load a synonym file
            self.budget, self.eps, self.use_simple, self.train = s.budget, 1.0, False, False
            self.model = s  # the parent's concretize only checks that it is set
            self.set = s

        def init(self, x, aux=None, forward=False):
            s = self.set
            lower, upper = s.interval()
            candidates = s.candidates * s.mask[..., None]
            changeable = s.mask.any(-1).cpu().numpy()
            return (LinearBound(None, None, None, None, lower, upper), x,
                    (candidates, s.mask.to(candidates.dtype), changeable))

    return FixedSubstitution(input_set)


# -- the LSTM both libraries parse ----------------------------------------------------------------
class GateLSTM(nn.Module):
    """robusttext's ``BiLSTMBody`` on sentences of exactly ``length`` real tokens, written out
    per direction as Linear + sigmoid/tanh gates (the same weights, the same logits).

    ``forward(x [batch, length, dim], mask [batch, length]) -> [batch, classes]``; ``mask`` must
    be all ones (only its sum is used: mean pooling over the states).
    """

    def __init__(self, body, length: int):
        super().__init__()
        n = body.hidden
        self.hidden, self.length = n, length
        recurrent = (body.recurrent * body.block).detach()
        self.inputs, self.recurrent = nn.ModuleList(), nn.ModuleList()
        for d in (0, 1):  # body gate rows: [input, forget, output, cell], each [forward, backward]
            rows = torch.cat([torch.arange(g * 2 * n + d * n, g * 2 * n + (d + 1) * n)
                              for g in range(4)])
            inputs = nn.Linear(body.inputs.in_features, 4 * n)
            inputs.weight.data = body.inputs.weight.detach()[rows].clone()
            inputs.bias.data = body.inputs.bias.detach()[rows].clone()
            rec = nn.Linear(n, 4 * n, bias=False)
            rec.weight.data = recurrent[rows][:, d * n:(d + 1) * n].clone()
            self.inputs.append(inputs)
            self.recurrent.append(rec)
        self.out = copy.deepcopy(body.out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length = self.hidden, self.length
        totals = []
        for d in (0, 1):
            p = self.inputs[d](x)  # [batch, length, 4H]
            h = c = total = None
            for t in range(length):
                z = p[:, t if d == 0 else length - 1 - t]
                if h is not None:
                    z = z + self.recurrent[d](h)
                i, f, o = (torch.sigmoid(z[:, k * n:(k + 1) * n]) for k in range(3))
                g = torch.tanh(z[:, 3 * n:])
                c = i * g if c is None else f * c + i * g
                h = o * torch.tanh(c)
                total = h if total is None else total + h
            totals.append(total)
        return self.out(torch.cat(totals, 1) / mask.sum(1, keepdim=True))


# -- measuring --------------------------------------------------------------------------------
@dataclass
class Operation:
    """One timed operation: ``setup()`` builds it (on its own model copy) and returns the call,
    which returns the margin lower bounds (or None for a forward pass)."""

    side: str  # "robusttext", "auto_LiRPA", "robusttext (own body)", ...
    method: str  # "forward", "ibp", "crown-ibp", "crown"
    setup: Callable[[], Callable[[], torch.Tensor | None]]
    call: Callable | None = None
    first: float = math.nan  # CPU seconds of the first call
    first_wall: float = math.nan
    times: list = field(default_factory=list)  # wall-clock seconds per steady call
    cpu_times: list = field(default_factory=list)  # process CPU seconds per steady call
    mean_lower: float = math.nan
    error: str = ""


def run_case(operations: list[Operation], repeats: int, grad: bool = False) -> None:
    """First call of every operation (setup included), then ``repeats`` interleaved rounds;
    without gradients unless ``grad``. Records wall-clock and process CPU seconds."""
    with torch.set_grad_enabled(grad):
        for op in operations:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                op.call = op.setup()
                result = op.call()
            except Exception as error:  # a peer that cannot bound a model: say so, go on
                op.error = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                op.call = None
                continue
            op.first = time.process_time() - cpu
            op.first_wall = time.perf_counter() - start
            if result is not None:
                op.mean_lower = result.detach().mean().item()
        for _ in range(repeats):
            for op in operations:
                if op.call is None:
                    continue
                start, cpu = time.perf_counter(), time.process_time()
                op.call()
                op.cpu_times.append(time.process_time() - cpu)
                op.times.append(time.perf_counter() - start)


def report(case: str, operations: list[Operation]) -> list[str]:
    """Markdown rows ``| case | method | side | CPU ms | wall ms | x forward | x peer | first /
    steady | mean margin lower bound |``; the ratios are of CPU times (steady medians)."""
    cpu = {(op.side, op.method): statistics.median(op.cpu_times)
           for op in operations if op.cpu_times}
    forward = cpu.get(("robusttext", "forward"), math.nan)
    rows = []
    for op in operations:
        if op.error:
            rows.append(f"| {case} | {op.method} | {op.side} | failed: {op.error} | | | | | |")
            continue
        t = cpu[(op.side, op.method)]
        wall = statistics.median(op.times)
        peer = cpu.get(("auto_LiRPA", op.method))
        vs_peer = f"{t / peer:.2f}" if peer and op.side != "auto_LiRPA" and op.method != "forward" \
            else ""
        lower = "" if math.isnan(op.mean_lower) else f"{op.mean_lower:.4g}"
        rows.append(f"| {case} | {op.method} | {op.side} | {1e3 * t:.1f} | {1e3 * wall:.1f} | "
                    f"{t / forward:.2f} | {vs_peer} | {op.first / t:.1f} | {lower} |")
    return rows


def forward_pass(model, inputs):
    def setup():
        def call():
            model(*inputs)
        return call
    return setup


def robusttext_bound(model, input_set, method, C, extra_inputs=()):
    def setup():
        own = copy.deepcopy(model)  # its own trace, so that the first call traces
        return lambda: compute_bounds(own, input_set, method, C=C, extra_inputs=extra_inputs,
                                      bound_upper=False)[0]
    return setup


def peer_bound(peer, model, inputs, bounded, method, C, bound_opts=None):
    """auto_LiRPA on ``model`` with ``inputs`` (the first replaced by the ``bounded`` tensor)."""
    def setup():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = peer.BoundedModule(copy.deepcopy(model), inputs, device="cpu",
                                        bound_opts=bound_opts or {})

        def call():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return module.compute_bounds(x=(bounded, *inputs[1:]), C=C,
                                             method=PEER_METHODS[method], bound_upper=False)[0]
        return call
    return setup


def vision_case(data: str, name: str, batch: int):
    """A seeded DM model of ``data``'s input shape, ``batch`` images ``x`` in [0, 1], their
    random ``labels`` and the margin specification ``C`` ``[batch, 9, 10]``."""
    torch.manual_seed(0)
    channels, size = INPUT_SHAPES[data]
    model = build_model(name, channels, size).eval()
    x = torch.rand(batch, channels, size, size)
    labels = torch.randint(0, 10, (batch,))
    return model, x, labels, margin_matrix(labels, 10)


def vision_operations(peer, data: str, name: str, batch: int, methods) -> list[Operation]:
    model, x, _, C = vision_case(data, name, batch)
    ball = LinfBall(x, VISION_EPS[data], lower=0.0, upper=1.0)
    ops = [Operation("robusttext", "forward", forward_pass(model, (x,)))]
    for method in methods:
        ops.append(Operation("robusttext", method, robusttext_bound(model, ball, method, C)))
        if peer is not None:
            ptb = peer.PerturbationLpNorm(norm=float("inf"), eps=VISION_EPS[data],
                                          x_L=ball.lower, x_U=ball.upper)
            opts = {"conv_mode": "matrix"} if method == "crown" else None
            ops.append(Operation("auto_LiRPA", method, peer_bound(
                peer, model, (x,), peer.BoundedTensor(x, ptb), method, C, opts)))
    return ops


def substitution_set(embedding: nn.Embedding, batch: int, length: int, budget: int,
                     eps: float):
    """A seeded synthetic set ``(SubstitutionSet, mask [batch, length], C [batch, 1, 2])``."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (batch, length), generator=generator)
    cand_ids = torch.randint(1, VOCAB, (batch, length, CANDIDATES), generator=generator)
    cand_mask = torch.rand(batch, length, CANDIDATES, generator=generator) < 0.25
    labels = torch.randint(0, 2, (batch,), generator=generator)
    with torch.no_grad():
        original = embedding(ids)
        moved = original[:, :, None] + eps * (embedding(cand_ids) - original[:, :, None])
    return (SubstitutionSet(original, moved, cand_mask, budget), torch.ones(batch, length),
            margin_matrix(labels, 2))


def text_operations(peer, kind: str, length: int, batch: int, budget: int, eps: float,
                    methods) -> list[Operation]:
    torch.manual_seed(0)
    model = (TransformerClassifier(VOCAB, embed_dim=64, hidden=64) if kind == "transformer"
             else BiLSTM(VOCAB, embed_dim=64, hidden=64, max_length=64)).eval()
    subs, mask, C = substitution_set(model.embedding, batch, length, budget, eps)
    body = model.body
    ops = [Operation("robusttext", "forward", forward_pass(body, (subs.center, mask)))]
    compared = body
    if kind == "lstm":
        compared = GateLSTM(body, length).eval()
        with torch.no_grad():
            gap = (compared(subs.center, mask) - body(subs.center, mask)).abs().max().item()
        if gap > 1e-4:
            raise RuntimeError(f"GateLSTM differs from the BiLSTM body by {gap}")

    def own_body(method):
        def setup():
            own = copy.deepcopy(body)
            return lambda: margin_lower_bounds(body_problem(own, subs, C, mask), method)
        return setup

    for method in methods:
        if kind == "lstm":
            ops.append(Operation("robusttext (own body)", method, own_body(method)))
            ops.append(Operation("robusttext", method,
                                 robusttext_bound(compared, subs, method, C, (mask,))))
        else:
            ops.append(Operation("robusttext", method, own_body(method)))
        if peer is not None:
            ops.append(Operation("auto_LiRPA", method, peer_bound(
                peer, compared, (subs.center, mask),
                peer.BoundedTensor(subs.center, peer_substitution(subs)), method, C)))
    return ops


def cases(args):
    """``(case name, operations factory)`` in the order they run."""
    models = args.models.split(",")
    for data in args.data.split(","):
        for name in (m for m in VISION_MODELS if m in models):
            for batch in args.batches:
                yield (f"{name} {data} b{batch}",
                       lambda d=data, n=name, b=batch: vision_operations(
                           args.peer, d, n, b, args.methods))
            if name == "dm-small" and not args.no_crown:
                yield (f"{name} {data} b{args.crown_batch}",
                       lambda d=data, n=name: vision_operations(
                           args.peer, d, n, args.crown_batch, ("crown",)))
    for kind in (m for m in TEXT_MODELS if m in models):
        for length in args.lengths:
            yield (f"{kind} L{length} b{args.text_batch}",
                   lambda k=kind, n=length: text_operations(
                       args.peer, k, n, args.text_batch, args.budget, args.text_eps,
                       args.methods))


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(VISION_MODELS + TEXT_MODELS),
                        help="comma-separated: dm-small, dm-medium, dm-large, transformer, lstm")
    parser.add_argument("--data", default="mnist,cifar10", help="vision input shapes")
    parser.add_argument("--batches", type=ints, default=[32, 128], help="vision batches")
    parser.add_argument("--crown-batch", type=int, default=2,
                        help="batch of CROWN on DM-small (one backward pass per neuron: about "
                             "18 s a call at batch 2 on MNIST)")
    parser.add_argument("--crown-repeats", type=int, default=3, help="steady rounds of CROWN")
    parser.add_argument("--no-crown", action="store_true", help="skip CROWN on DM-small")
    parser.add_argument("--methods", type=lambda v: tuple(v.split(",")),
                        default=("ibp", "crown-ibp"),
                        help="bound methods of every case besides the forward pass")
    parser.add_argument("--lengths", type=ints, default=[16, 32, 64], help="sentence lengths")
    parser.add_argument("--text-batch", type=int, default=32)
    parser.add_argument("--budget", type=int, default=3, help="positions that may change")
    parser.add_argument("--text-eps", type=float, default=0.05,
                        help="candidates moved to e + eps (e_k - e)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved steady rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="dm-small MNIST batch 32, CROWN batch 1 once, transformer and lstm at "
                             "length 16, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.data, args.batches, args.crown_batch, args.crown_repeats = "mnist", [32], 1, 1
        args.lengths, args.repeats = [16], 3
        args.models = ",".join(m for m in args.models.split(",")
                               if m in ("dm-small", *TEXT_MODELS))
    torch.set_num_threads(args.threads)
    args.peer = import_peer()
    version = getattr(args.peer, "__version__", "absent")
    print(f"# torch {torch.__version__}, auto_LiRPA {version}, {torch.get_num_threads()} "
          f"thread(s), {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average at start {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# text: budget {args.budget}, eps {args.text_eps}, {CANDIDATES} candidate slots "
          f"(p 0.25); {args.repeats} interleaved rounds; first/steady: first call (setup "
          "included) over the steady median")
    print("| case | method | side | CPU ms | wall ms | x forward | x peer | first / steady | "
          "mean margin lower bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, factory in cases(args):
        operations = factory()
        crown = any(op.method == "crown" for op in operations)
        run_case(operations, args.crown_repeats if crown else args.repeats)
        print("\n".join(report(name, operations)), flush=True)
        print(f"# load average after {name}: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
