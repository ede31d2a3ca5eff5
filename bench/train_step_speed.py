"""Certified-training step time: forward + backward of the robust loss, robusttext beside
auto_LiRPA where the peer runs the same model.

One step is ``zero_grad``, the loss ``0.5 CE(clean logits) + 0.5 CE(worst-case logits [0,
-margin lower bounds])`` (Gowal et al. 2018; Wong & Kolter 2018) and ``backward``; no optimiser
update. IBP and CROWN-IBP (beta 1: the CROWN-IBP bound alone). Times are medians of
``--repeats`` interleaved rounds after a first call (timed apart: tracing / the peer's graph
build), one thread, float32: process CPU and wall milliseconds, and the CPU time as a ratio to a
plain training step (clean loss, forward + backward) and to the peer's step.

- robusttext runs its own training paths: ``robusttext.train.loss.robust_loss`` for the text
  models (char CNN, word CNN, bag of words, BiLSTM, Transformer) and, for DM-small/medium/large,
  ``robusttext.train.certified.mixed_lower_bounds`` over ``vision.verify.image_margin_bound`` +
  ``worst_case_loss`` (the loss vision's training runs; at beta 1 it computes the CROWN-IBP bound
  alone; the row ``robusttext (bound alone)`` calls ``compute_bounds`` directly).
- auto_LiRPA: ``BoundedModule`` on the same model (for the LSTM, ``GateLSTM`` of
  bench/peer_speed.py: the same function written out as Linear + sigmoid/tanh gates), the
  same set (``PerturbationSynonym`` adapter; the embedding table gets gradients through the
  set on both sides), ``compute_bounds(..., bound_upper=False)``, the same loss.

Text: batch 32, seeded synthetic sets as in bench/peer_speed.py (budget 3, 8 candidate slots
with p 0.25, eps 0.05), 20 tokens (100 characters for the char CNN). Vision: batch 32 (``--batch``),
MNIST shape (eps 0.1; ``--data mnist,cifar10`` adds the CIFAR shape, eps 2/255).

    PYTHONPATH=../shared/peers/auto_LiRPA python bench/train_step_speed.py
    python bench/train_step_speed.py --models word-cnn,dm-small --data mnist --quick
    python bench/train_step_speed.py --models lstm-projected --length 40 --batch 64
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_speed import (  # noqa: E402  (bench/ is not a package)
    CANDIDATES,
    PEER_METHODS,
    VISION_EPS,
    GateLSTM,
    Operation,
    import_peer,
    peer_substitution,
    report,
    run_case,
    vision_case,
)

from robusttext.bounds import LinfBall, SubstitutionSet, compute_bounds, margin_matrix  # noqa: E402
from robusttext.perturb import EncodedBatch  # noqa: E402
from robusttext.text import (  # noqa: E402
    BagOfWords,
    BiLSTM,
    CharCNN,
    TransformerClassifier,
    WordCNN,
)
from robusttext.train.certified import mixed_lower_bounds  # noqa: E402
from robusttext.train.loss import robust_loss, worst_case_loss  # noqa: E402
from robusttext.vision.verify import image_margin_bound  # noqa: E402

TEXT_MODELS = ("char-cnn", "word-cnn", "bow", "lstm", "lstm-projected", "transformer")
VISION_MODELS = ("dm-small", "dm-medium", "dm-large")
METHODS = ("ibp", "crown-ibp")
KAPPA = 0.5  # weight of the clean loss


def text_model(kind: str, length: int | None = None):
    """``(model, vocabulary size, sentence length)``, seeded; ``length`` replaces the default
    sentence length (20 tokens, 100 characters)."""
    torch.manual_seed(0)
    if kind == "char-cnn":
        return CharCNN(70), 70, length or 100
    vocab = 15_000
    models = {"word-cnn": lambda: WordCNN(vocab), "bow": lambda: BagOfWords(vocab),
              "lstm": lambda: BiLSTM(vocab, embed_dim=64, hidden=64, max_length=64),
              # the shape of the shipped word-counterfitted-lstm: 50-d vectors, projection to 100
              "lstm-projected": lambda: BiLSTM(vocab, embed_dim=50, hidden=64, max_length=64,
                                               projection=100),
              "transformer": lambda: TransformerClassifier(vocab, embed_dim=64, hidden=64)}
    return models[kind](), vocab, length or 20


def step(model, loss_fn):
    """A training step: ``zero_grad``, the loss, ``backward``; returns the margin bounds."""
    def call():
        model.zero_grad(set_to_none=True)
        loss, lower = loss_fn()
        loss.backward()
        return lower
    return call


def text_operations(peer, kind: str, batch: int, budget: int, eps: float,
                    peer_char_crown_ibp: bool = False,
                    length: int | None = None) -> list[Operation]:
    model, vocab, length = text_model(kind, length)
    model.train(False)  # no dropout in these models; the bound engine wants eval mode
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab, (batch, length), generator=generator)
    cand_ids = torch.randint(1, vocab, (batch, length, CANDIDATES), generator=generator)
    cand_mask = torch.rand(batch, length, CANDIDATES, generator=generator) < 0.25
    labels = torch.randint(0, 2, (batch,), generator=generator)
    mask = torch.ones(batch, length)
    encoded = EncodedBatch(ids, mask, cand_ids, cand_mask, [])

    def plain():
        own = copy.deepcopy(model)
        return step(own, lambda: (F.cross_entropy(own(ids, mask), labels), None))

    def robusttext(method):
        def setup():
            own = copy.deepcopy(model)

            def loss():
                value, _ = robust_loss(own, encoded, labels, budget, KAPPA, method, eps, beta=1.0)
                return value, None
            return step(own, loss)
        return setup

    def auto_lirpa(method):
        def setup():
            own = copy.deepcopy(model)
            body = GateLSTM(own.body, length) if kind == "lstm" else own.body
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                subs = _text_set(own, ids, cand_ids, cand_mask, budget, eps)
                bounded = peer.BoundedModule(body, (subs.center.detach(), mask), device="cpu")
            C = margin_matrix(labels, 2)

            def loss():
                subs = _text_set(own, ids, cand_ids, cand_mask, budget, eps)
                x = peer.BoundedTensor(subs.center, peer_substitution(subs))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    lower = bounded.compute_bounds(x=(x, mask), C=C, method=PEER_METHODS[method],
                                                   bound_upper=False)[0]
                clean = F.cross_entropy(own(ids, mask), labels)
                return KAPPA * clean + (1 - KAPPA) * worst_case_loss(lower), lower
            return step(own, loss)
        return setup

    ops = [Operation("robusttext", "forward", plain)]
    for method in METHODS:
        ops.append(Operation("robusttext", method, robusttext(method)))
        slow = kind == "char-cnn" and method == "crown-ibp" and not peer_char_crown_ibp
        if peer is not None and not slow and kind != "lstm-projected":  # no GateLSTM for it
            ops.append(Operation("auto_LiRPA", method, auto_lirpa(method)))
    return ops


def _text_set(model, ids, cand_ids, cand_mask, budget, eps) -> SubstitutionSet:
    """The substitution set from the model's embedding table (differentiable in it)."""
    table = model.embedding.weight
    original = table[ids]
    moved = original[:, :, None] + eps * (table[cand_ids] - original[:, :, None])
    return SubstitutionSet(original, moved, cand_mask, budget)


def vision_operations(peer, data: str, name: str, batch: int) -> list[Operation]:
    model, x, labels, C = vision_case(data, name, batch)
    eps = VISION_EPS[data]

    def loss_of(logits, lower):
        return KAPPA * F.cross_entropy(logits, labels) + (1 - KAPPA) * worst_case_loss(lower)

    def plain():
        own = copy.deepcopy(model)
        return step(own, lambda: (F.cross_entropy(own(x), labels), None))

    def robusttext(method):
        def setup():
            own = copy.deepcopy(model)

            def loss():
                lower = mixed_lower_bounds(image_margin_bound(own, x, labels, eps), method, 1.0)
                return loss_of(own(x), lower), lower
            return step(own, loss)
        return setup

    def bound_alone(method):
        def setup():
            own = copy.deepcopy(model)
            ball = LinfBall(x, eps, lower=0.0, upper=1.0)

            def loss():
                lower = compute_bounds(own, ball, method, C=C, bound_upper=False)[0]
                return loss_of(own(x), lower), lower
            return step(own, loss)
        return setup

    def auto_lirpa(method):
        def setup():
            own = copy.deepcopy(model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bounded = peer.BoundedModule(own, (x,), device="cpu")
            ball = LinfBall(x, eps, lower=0.0, upper=1.0)
            ptb = peer.PerturbationLpNorm(norm=float("inf"), eps=eps, x_L=ball.lower,
                                          x_U=ball.upper)

            def loss():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    lower = bounded.compute_bounds(x=(peer.BoundedTensor(x, ptb),), C=C,
                                                   method=PEER_METHODS[method],
                                                   bound_upper=False)[0]
                return loss_of(bounded(x), lower), lower
            return step(bounded, loss)
        return setup

    ops = [Operation("robusttext", "forward", plain)]
    for method in METHODS:
        ops.append(Operation("robusttext", method, robusttext(method)))
        if method == "crown-ibp":
            ops.append(Operation("robusttext (bound alone)", method, bound_alone(method)))
        if peer is not None:
            ops.append(Operation("auto_LiRPA", method, auto_lirpa(method)))
    return ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TEXT_MODELS + VISION_MODELS))
    parser.add_argument("--data", default="mnist", help="vision input shapes: mnist, cifar10")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--text-eps", type=float, default=0.05)
    parser.add_argument("--length", type=int, help="sentence length (default: 20 tokens, 100 "
                        "characters for the char CNN)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-char-crown-ibp", action="store_true",
                        help="also time auto_LiRPA's CROWN-IBP step on the char CNN (its "
                             "concretization loops in Python over batch x 100 positions: about "
                             "100 s a step)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 round, MNIST shape only")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.data = 1, "mnist"
    torch.set_num_threads(args.threads)
    peer = import_peer()
    print(f"# torch {torch.__version__}, auto_LiRPA {getattr(peer, '__version__', 'absent')}, "
          f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load average at start "
          f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M %Z')}; batch {args.batch}")
    print("# 'forward' rows: a plain training step (clean loss); 'x forward': over that step")
    print("| case | method | side | CPU ms | wall ms | x forward | x peer | first / steady | "
          "mean margin lower bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    models = args.models.split(",")
    jobs = [(kind, lambda k=kind: text_operations(peer, k, args.batch, args.budget,
                                                  args.text_eps, args.peer_char_crown_ibp,
                                                  args.length))
            for kind in TEXT_MODELS if kind in models]
    jobs += [(f"{name} {data}", lambda n=name, d=data: vision_operations(peer, d, n, args.batch))
             for data in args.data.split(",") for name in VISION_MODELS if name in models]
    for case, factory in jobs:
        operations = factory()
        run_case(operations, args.repeats, grad=True)
        print("\n".join(report(case, operations)), flush=True)
        print(f"# load average after {case}: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
