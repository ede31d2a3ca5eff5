"""The training loop: clean or certified training of a text model, with checkpoints and resume.

``train(config)`` builds the perturbation space, the data, the vocabulary and the model, trains
with Adam under the robust schedule, writes a checkpoint to ``config.out`` after every epoch
(weights, optimizer moments, vocabulary, restricted perturbation space, configuration, metrics)
and resumes from it when the folder already holds an unfinished run of the same configuration.

Under ``torchrun`` the same call trains on every process (``robusttext.distributed``): the
model runs inside ``DistributedDataParallel`` with the bounds computed in its forward, each
global batch of ``batch_size`` sentences is split across the ranks, and only rank 0 prints,
evaluates and writes the checkpoint (unwrapped weights, so any world size can resume it).
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from robusttext import distributed
from robusttext.bounds.oracle import checking
from robusttext.checkpoint import META_FILE, optimizer_tensors, restore_optimizer
from robusttext.config import SAME, changed_settings
from robusttext.errors import RobustTextError
from robusttext.perturb import PerturbationSpace, Vocabulary, load_source
from robusttext.text.base import TextClassifier
from robusttext.text.embeddings import pretrained_embeddings
from robusttext.text.hf import finetune
from robusttext.text.hf.model import HFTextModel
from robusttext.text.io import load_text_model, save_text_model
from robusttext.text.kinds import MODEL_KINDS, build_model
from robusttext.text.vectors import (
    VocabularyTable,
    WordVectors,
    load_vectors,
    table_for_vocabulary,
)
from robusttext.train import parallel
from robusttext.train.batches import batch_order, iterate_batches, token_lengths
from robusttext.train.config import TrainConfig
from robusttext.train.data import Example, load_training_examples
from robusttext.train.evaluate import evaluate
from robusttext.train.holdout import holdout_split
from robusttext.train.loop import EpochLoop, run_epochs
from robusttext.train.schedule import Schedule

VALIDATION_FILE = "validation.tsv"
"""The held-out validation sentences of a run, written into its folder."""
BEST_DIR = "best"
"""The sub-folder of a run holding the checkpoint of the epoch chosen on the validation split."""

# Settings passed to the model's constructor when given (each model takes its own subset).
MODEL_SETTINGS = TrainConfig.names(model=True)
# Settings a resumed run must share with the checkpoint it continues (its data, space or model
# depend on them).
SAME_ON_RESUME = TrainConfig.names(resume=SAME)


def build_space(config: TrainConfig) -> PerturbationSpace:
    """The perturbation space of ``config`` at its model's level (words for a ``transformers``
    model continued with ``start_from``)."""
    level = "word" if config.start_from else MODEL_KINDS[config.model].level
    if config.space_file:
        obj = json.loads(Path(config.space_file).read_text()) if Path(
            config.space_file).is_file() else None
        if obj is None:
            raise RobustTextError(f"{config.space_file}: no such perturbation space file")
        space = PerturbationSpace.from_json(obj)
        if (space.level, space.tokenizer) != (level, config.tokenizer):
            raise RobustTextError(f"{config.space_file}: a {space.level}-level space with "
                                  f"{space.tokenizer!r} tokens does not fit a {config.model} "
                                  f"on {config.tokenizer!r} tokens")
        return PerturbationSpace(space.sources, **{**space.settings(), "budget": config.budget})
    if not config.sources:
        raise RobustTextError("no substitution sources: give at least one in 'sources'")
    sources = []
    for name in config.sources:
        options = {"max_senses": config.wordnet_senses} if name == "wordnet" else {}
        sources.append(load_source(name, **options))
    return PerturbationSpace(sources, budget=config.budget, level=level,
                             tokenizer=config.tokenizer,
                             max_candidates=config.max_candidates,
                             stop_words=config.stop_words)


def build_vocabulary(examples: list[Example], space: PerturbationSpace,
                     config: TrainConfig, vectors: WordVectors | None = None) -> Vocabulary:
    """Tokens of the training sentences (characters at the char level); with
    ``config.vocab_from_space``, then the space's candidates of those tokens that have a row in
    ``vectors`` (in order of first appearance), so substitutes keep their own vectors instead of
    collapsing into the unknown token; with ``config.alias_candidates``, the candidates of the
    space's one source that are not tokens become aliases of the token they vary (see
    ``Vocabulary``)."""
    vocab = Vocabulary.build((space.split(e.text)[0] for e in examples),
                             min_count=config.min_count, max_size=config.max_vocab)
    if config.vocab_from_space and vectors is not None:
        vocab = _add_candidates_with_vectors(vocab, space, vectors)
    if not config.alias_candidates:
        return vocab
    if len(space.sources) != 1 or space.level != "word":
        raise RobustTextError("--alias-candidates needs a word-level space with exactly one "
                              f"source, not {space.describe()}")
    vocab = Vocabulary(vocab.tokens, alias_source=space.sources[0])
    distributed.current().say(f"vocabulary: {len(vocab.aliases)} candidates of "
                              f"{space.sources[0].name} read as the token they vary")
    return vocab


def _add_candidates_with_vectors(vocab: Vocabulary, space: PerturbationSpace,
                                 vectors: WordVectors) -> Vocabulary:
    known = set(vocab.tokens)
    added: list[str] = []
    for token in vocab.tokens[2:]:
        for candidate in space.token_candidates(token):
            if candidate not in known and (vectors.row(candidate) is not None
                                           or vectors.row(candidate.lower()) is not None):
                known.add(candidate)
                added.append(candidate)
    distributed.current().say(f"vocabulary: {len(vocab)} training tokens + {len(added)} "
                              "candidate words with vectors")
    return Vocabulary([*vocab.tokens, *added])


def vector_rows(config: TrainConfig, vocab: Vocabulary,
                vectors: WordVectors) -> VocabularyTable:
    """The rows of ``vectors`` for ``vocab`` (the missing tokens counted and reported)."""
    rows = table_for_vocabulary(vectors, vocab, dim=config.embed_dim, seed=config.seed)
    distributed.current().say(rows.describe())
    return rows


def new_model(config: TrainConfig, vocab: Vocabulary,
              rows: VocabularyTable | None = None) -> TextClassifier:
    """A fresh model for ``vocab``, its table from ``rows`` (word vectors) when given."""
    sizes = {k: getattr(config, k) for k in MODEL_SETTINGS if getattr(config, k) is not None}
    table = None
    if rows is not None:
        table = rows.table
        sizes["embed_dim"] = table.shape[1]
    elif config.pretrained:
        table, found = pretrained_embeddings(config.pretrained, vocab, seed=config.seed)
        distributed.current().say(f"pretrained embeddings from {config.pretrained}: {found} "
                                  f"of {len(vocab)} tokens found")
        if sizes.get("embed_dim", table.shape[1]) != table.shape[1]:
            raise RobustTextError(f"embed_dim {sizes['embed_dim']} differs from the "
                                  f"{table.shape[1]} dimensions of {config.pretrained}")
        sizes["embed_dim"] = table.shape[1]
    model = build_model(config.model, vocab_size=len(vocab), **sizes)
    if table is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(table)
    if config.freeze_embeddings:
        model.embedding.weight.requires_grad_(False)
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_at(config: TrainConfig, epoch: int) -> float:
    return config.lr * config.lr_decay ** sum(1 for e in config.lr_decay_epochs if epoch >= e)


def _resume_point(config: TrainConfig, out: Path):
    """The loaded bundle of an unfinished or finished run in ``out``, or None."""
    if not (out / META_FILE).is_file():
        return None
    bundle = load_text_model(out)
    if bundle.kind != config.model:
        raise RobustTextError(f"{out} holds a {bundle.kind} checkpoint, but the configuration "
                              f"trains a {config.model}; use another --out")
    saved = bundle.meta.get("training_config", {})
    differs = changed_settings(saved, config, SAME_ON_RESUME)
    if differs:
        raise RobustTextError(
            f"{out} holds a run with other settings ({', '.join(differs)}: "
            + "; ".join(differs.values())
            + "); its perturbation space or data would not match. Use another --out")
    space = bundle.space
    if (space.level, space.tokenizer, space.budget) != (
        MODEL_KINDS[config.model].level, config.tokenizer, config.budget
    ):
        raise RobustTextError(f"{out}: the checkpoint's perturbation space ({space.describe()}) "
                              "does not match the configuration")
    return bundle


def train(config: TrainConfig) -> dict:
    """Train as ``config`` says; return the final metrics (also in ``out/metrics.json``).

    Under torchrun every rank calls this; each returns rank 0's metrics.
    """
    config.validate()
    job = distributed.start(config.device)
    with job.guard("training"):
        return _train(config, job)


@dataclass
class _Data:
    """The sentences of a run: ``train`` (less the held-out ``validation`` split) and ``dev``."""

    train: list[Example]
    validation: list[Example]
    dev: list[Example]


@dataclass
class _State:
    """Where a run stands: its vocabulary and model, the epoch and step it continues from, the
    best validation epoch so far and the word-vector report of its table."""

    vocab: Vocabulary
    model: TextClassifier
    epoch: int
    step: int
    best: dict | None
    vector_report: dict
    bundle: object | None  # the loaded checkpoint it resumes, or None for a new run
    # a continued transformers model (start_from): its space through the tokenizer and the
    # optimizer moments it resumes with
    space: object | None = None
    moments: dict | None = None


def _train(config: TrainConfig, job: distributed.Job) -> dict:
    out = Path(config.out)
    space = build_space(config)
    data = _load_data(config, job, out)
    seed_everything(config.seed)
    state = _start(config, job, out, space, data.train)
    _check_same_start(job, out, state.epoch, state.step)
    model, vocab = state.model.to(job.device), state.vocab
    space = state.space or space
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        saved_space = space if config.start_from else (
            space.restrict_to(vocab) if space.level == "word" else space)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=_lr_at(config, state.epoch),
                                 weight_decay=config.weight_decay)
    moments = state.moments if config.start_from else (
        state.bundle.extra_tensors if state.bundle is not None else None)
    if moments:
        restore_optimizer(optimizer, moments)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(config, state.epoch)

    lengths = token_lengths(data.train, space)
    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
    schedule = Schedule.from_epochs(
        steps_per_epoch, config.warmup_epochs, config.ramp_epochs,
        eps_target=1.0 if config.robust else 0.0, robust_start=config.robust_weight_start,
        robust_final=config.robust_weight,
        beta_start=config.beta_start, beta_final=config.beta_final, lead=1)
    kind = model.architecture if config.start_from else config.model
    job.say(f"training a {kind} ({sum(p.numel() for p in model.parameters())} "
            f"parameters, vocabulary {len(vocab)}) on {len(data.train)} examples, "
            f"{steps_per_epoch} steps per epoch, on {job.device}"
            + (f" (rank 0 of {job.world} processes)" if job.distributed else "")
            + f"; space: {space.describe()}")
    wrapped = parallel.wrap_for_training(model, job)
    sampler = parallel.DistributedBatchSampler(
        lambda epoch: batch_order(lengths, config.batch_size, shuffle=True,
                                  seed=config.seed * 100003 + epoch), job.rank, job.world)
    history: list[dict] = []
    metrics: dict = {}

    def train_epoch(epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(config, epoch)
        wrapped.train()
        sampler.set_epoch(epoch)
        order = list(sampler)
        started = time.time()
        totals, counts, skipped, state.step = _run_epoch(
            config, job, wrapped, optimizer, params, schedule, data.train, space, vocab,
            order, epoch, state.step)
        record = _epoch_record(job, totals, counts, skipped, len(order), epoch, state.step,
                               schedule, started)
        improved = _watch(config, job, model, vocab, space, data, record, state)
        history.append(record)
        job.say(json.dumps(record), flush=True)
        if improved:
            _save_model(out / BEST_DIR, model, vocab, saved_space,
                        training_config=config.to_json(), word_vectors=state.vector_report,
                        state={"epoch": epoch + 1, "step": state.step, "best": state.best})

    def end_epoch(epoch: int, final: bool) -> None:
        nonlocal metrics
        if final and data.dev and job.is_main:
            metrics = _final_evaluation(config, job, model, vocab, space, saved_space, data,
                                        state)
        if job.is_main:
            _save(out, model, vocab, saved_space, config, optimizer, epoch + 1, state.step,
                  history, metrics, state.best, state.vector_report)

    run_epochs(EpochLoop(config.epochs, config.time_limit_minutes, job.any_true, job.say),
               state.epoch, train_epoch, end_epoch)
    if not metrics and state.bundle is not None:
        metrics = state.bundle.meta.get("metrics", {})
    if job.is_main:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return job.all_gather(metrics)[0]


def _load_data(config: TrainConfig, job: distributed.Job, out: Path) -> _Data:
    """The training sentences (limited, less the validation split, which is written into
    ``out``) and the dev sentences (limited)."""
    examples = load_training_examples(config.train, config.train_split)
    if config.train_limit is not None:
        perm = torch.randperm(len(examples), generator=torch.Generator().manual_seed(config.seed))
        examples = [examples[i] for i in perm[: config.train_limit].tolist()]
    dev = load_training_examples(config.dev, config.dev_split) if config.dev else []
    if config.eval_limit is not None:
        dev = dev[: config.eval_limit]
    validation: list[Example] = []
    if config.validation_fraction > 0:
        held = holdout_split(examples, config.validation_fraction, config.seed,
                             lambda text: text.split())
        examples, validation = held.train, held.validation
        job.say(held.describe() + f" (seed {config.seed})")
        if job.is_main:
            _write_examples(out / VALIDATION_FILE, validation)
    distributed.check_world(len(examples), job.world, "training examples")
    return _Data(examples, validation, dev)


def _start(config: TrainConfig, job: distributed.Job, out: Path, space: PerturbationSpace,
           examples: list[Example]) -> _State:
    """The state of the unfinished run in ``out`` (resumed), else of a new one; for
    ``start_from``, the transformers model it continues (``robusttext.text.hf.finetune``)."""
    if config.start_from:
        return _continue(config, job, out, space)
    bundle = _resume_point(config, out)
    if bundle is None:
        vectors = load_vectors(config.vectors) if config.vectors else None
        vocab = build_vocabulary(examples, space, config, vectors)
        rows = vector_rows(config, vocab, vectors) if vectors is not None else None
        vector_report = {} if rows is None else {
            "source": rows.source, "dim": rows.table.shape[1], "found": rows.found,
            "missing": len(rows.missing), "missing_examples": rows.missing[:50]}
        del vectors
        return _State(vocab, new_model(config, vocab, rows), 0, 0, None, vector_report, None)
    if config.freeze_embeddings:
        bundle.model.embedding.weight.requires_grad_(False)
    saved = bundle.meta.get("state", {})
    state = _State(bundle.vocab, bundle.model, saved.get("epoch", 0), saved.get("step", 0),
                   saved.get("best"), bundle.meta.get("word_vectors", {}), bundle)
    job.say(_resume_line(out, state, config))
    return state


def _continue(config: TrainConfig, job: distributed.Job, out: Path,
              space: PerturbationSpace) -> _State:
    """The state of a run continuing the transformers model ``config.start_from`` (resumed
    when ``out`` holds an unfinished one)."""
    same = ("start_from", *(k for k in SAME_ON_RESUME if k not in ("model", *MODEL_SETTINGS)))
    begun = finetune.start(config, out, space, job.device, same)
    saved = begun.state
    state = _State(begun.vocab, begun.model, saved.get("epoch", 0), saved.get("step", 0),
                   saved.get("best"), {}, None, begun.space, begun.optimizer)
    job.say(_resume_line(out, state, config) if saved else
            f"continuing {config.start_from} ({begun.model.architecture}) with its tokenizer")
    return state


def _resume_line(out: Path, state: _State, config: TrainConfig) -> str:
    if state.epoch >= config.epochs:
        return (f"{out}: already trained for {state.epoch} epochs; nothing to do (raise "
                "--epochs to train longer, or use another --out)")
    return f"resuming {out} after epoch {state.epoch} (step {state.step})"


def _run_epoch(config, job, wrapped, optimizer, params, schedule, examples, space, vocab,
               order, epoch: int, step: int):
    """One epoch of optimiser steps over this rank's batches ``order``; returns the summed
    per-batch figures, the count of robust and clean batches, the steps skipped for a
    non-finite gradient, and the step reached."""
    totals: dict[str, float] = {}
    counts = {"robust": 0, "clean": 0}
    skipped = 0
    bar = tqdm(iterate_batches(examples, space, vocab, [local for local, _ in order],
                               job.device),
               total=len(order), desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=None if config.progress and job.is_main else True,
               mininterval=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for (_, batch, labels), (_, global_size) in zip(bar, order):
            weight = parallel.local_weight(len(labels), global_size, job.world)
            with checking(config.oracle_every > 0 and step % config.oracle_every == 0):
                loss, parts = wrapped(
                    batch, labels, weight, budget=config.budget, k=schedule.robust(step),
                    method=config.method, eps=schedule.eps(step), beta=schedule.beta(step),
                    amp=config.amp)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # The gradients are already summed over ranks, so every rank takes the same
            # decision: a non-finite gradient (an overflowing bound) skips the step instead
            # of writing NaN into the weights.
            norm = torch.nn.utils.clip_grad_norm_(
                params, config.grad_clip if config.grad_clip > 0 else float("inf"))
            if torch.isfinite(norm):
                optimizer.step()
            else:
                skipped += 1
            step += 1
            for key, value in parts.items():
                # this rank's share of the global batch's mean (1 on one process)
                totals[key] = totals.get(key, 0.0) + value * weight / job.world
            counts["robust" if "verified" in parts else "clean"] += 1
            if job.is_main and config.progress:
                shown = loss.item() / weight if weight else 0.0
                bar.set_postfix(loss=f"{shown:.3f}", eps=f"{schedule.eps(step):.2f}",
                                refresh=False)
    return totals, counts, skipped, step


def _epoch_record(job, totals, counts, skipped: int, steps: int, epoch: int, step: int,
                  schedule: Schedule, started: float) -> dict:
    """The history line of an epoch (means over every rank); an epoch whose every step had a
    non-finite gradient is an error."""
    totals = job.all_sum(totals)  # per-batch means over the whole global batch
    robust_batches, clean_batches = counts["robust"], counts["clean"]
    record = {"epoch": epoch + 1, "step": step, "seconds": round(time.time() - started, 1),
              "eps": round(schedule.eps(step - 1), 4), "k": round(schedule.robust(step - 1), 4)}
    for key, value in totals.items():
        n = robust_batches if key in ("robust_loss", "verified") else (
            robust_batches + clean_batches)
        record["train_" + key] = round(value / max(1, n), 4)
    if skipped:
        record["skipped_steps"] = skipped
        job.say(f"warning: {skipped} of {steps} steps of epoch {epoch + 1} had a "
                "non-finite gradient and were skipped", flush=True)
        if skipped == steps:
            raise RobustTextError(
                f"every step of epoch {epoch + 1} had a non-finite gradient (the bounds "
                "overflowed); lower --lr, lengthen --ramp-epochs or lower --robust-weight")
    return record


def _watch(config, job, model, vocab, space, data: _Data, record: dict, state: _State) -> bool:
    """Evaluate the epoch on the validation split (else on dev, only logged) into ``record``;
    True when it is the best validation epoch so far (``state.best`` updated)."""
    # Model selection on the held-out training sentences (the dev set is then not looked
    # at); without them, the dev figures of the epoch are only logged.
    prefix, watched = ("val", data.validation) if data.validation else ("dev", data.dev)
    if not watched or not job.is_main:
        return False
    quick = evaluate(model, vocab, space, watched, budgets=[config.budget],
                     method=config.eval_methods[0], batch_size=2 * config.batch_size)
    record[f"{prefix}_clean"] = round(quick["clean_accuracy"], 4)
    record[f"{prefix}_verified_{config.budget}"] = round(
        quick["verified_accuracy"][str(config.budget)], 4)
    if not data.validation:
        return False
    score = _selection_score(config, quick)
    if state.best is not None and score <= state.best["score"]:
        return False
    state.best = {"epoch": record["epoch"], "score": score}
    return True


def _final_evaluation(config, job, model, vocab, space, saved_space, data: _Data,
                      state: _State) -> dict:
    """The dev figures, measured once, on the epoch chosen on the validation split (else the
    last); the chosen checkpoint gets them too."""
    out, best = Path(config.out), state.best
    chosen = model
    if data.validation and best is not None:
        # The dev set is evaluated once, on the model chosen on the validation split.
        chosen = load_text_model(out / BEST_DIR, device=job.device).model
        job.say(f"evaluating the epoch chosen on the validation split "
                f"({config.select_by}): epoch {best['epoch']}", flush=True)
    budgets = list(config.eval_budgets) + ([None] if config.eval_all_words else [])
    metrics = evaluate(chosen, vocab, space, data.dev, budgets=budgets,
                       method=config.eval_methods[0], batch_size=2 * config.batch_size,
                       enumerate_limit=config.enumerate_limit, progress=config.progress)
    for method in config.eval_methods[1:]:  # the verified accuracy of each further method
        more = evaluate(chosen, vocab, space, data.dev, budgets=budgets, method=method,
                        batch_size=2 * config.batch_size, progress=config.progress)
        metrics.setdefault("verified_accuracy_by_method", {})[more["method"]] = \
            more["verified_accuracy"]
    metrics["dev"] = config.dev
    if data.validation and best is not None:
        metrics["selected_epoch"] = best["epoch"]
        metrics["selected_by"] = config.select_by
    print("final:", json.dumps(metrics), flush=True)
    if data.validation and best is not None:
        bundle_best = load_text_model(out / BEST_DIR)
        _save_model(out / BEST_DIR, bundle_best.model, vocab, saved_space,
                    training_config=config.to_json(), metrics=metrics,
                    word_vectors=state.vector_report, state=_saved_state(bundle_best))
    return metrics


def _check_same_start(job: distributed.Job, out: Path, epoch: int, step: int) -> None:
    """Every rank must resume from the same point (``out`` on a shared file system)."""
    starts = job.all_gather((epoch, step))
    if any(s != starts[0] for s in starts):
        raise RobustTextError(
            f"the ranks found different runs in {out} (epoch, step per rank: {starts}); on "
            "several machines --out must be a folder every machine sees (a shared file system)")


def _selection_score(config: TrainConfig, figures: dict) -> float:
    """The validation figure that ``config.select_by`` maximises (``last``: the epoch)."""
    if config.select_by == "clean":
        return figures["clean_accuracy"]
    if config.select_by == "verified":
        # ties broken by clean accuracy
        return figures["verified_accuracy"][str(config.budget)] + 1e-3 * figures[
            "clean_accuracy"]
    return float("inf")


def _write_examples(path: Path, examples: list[Example]) -> None:
    """``sentence<TAB>label`` lines with a header, like the SST-2 files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{e.text.strip()}\t{e.label}\n"
                                                 for e in examples))


def _save(out, model, vocab, space, config, optimizer, epoch, step, history, metrics,
          best=None, vector_report=None):
    previous = []
    log = out / "history.jsonl"
    if log.is_file():
        previous = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        previous = [r for r in previous if r["epoch"] < history[0]["epoch"]]
    out.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(json.dumps(r) + "\n" for r in previous + history))
    _save_model(out, model, vocab, space, training_config=config.to_json(),
                metrics=metrics, extra_tensors=optimizer_tensors(optimizer),
                word_vectors=vector_report or {},
                state={"epoch": epoch, "step": step, **({"best": best} if best else {})})


def _saved_state(bundle) -> dict:
    """The ``state`` a checkpoint was saved with (a continued transformers model keeps it in
    its ``robusttext.json``)."""
    if "state" in bundle.meta:
        return bundle.meta["state"]
    return finetune.read_state(bundle.path)


def _save_model(directory, model, vocab, space, *, training_config, metrics=None,
                extra_tensors=None, word_vectors=None, state=None):
    """A robusttext checkpoint, or for a continued ``transformers`` model a folder of its own
    kind (``robusttext.text.hf.finetune.save``)."""
    if isinstance(model, HFTextModel):
        finetune.save(directory, model, space, training_config=training_config,
                      metrics=metrics, state=state, optimizer=extra_tensors)
        return
    save_text_model(directory, model, vocab, space, training_config=training_config,
                    metrics=metrics, extra_tensors=extra_tensors,
                    word_vectors=word_vectors or {}, state=state)
