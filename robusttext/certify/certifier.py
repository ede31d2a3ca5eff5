"""``certify``: bounds, attack and exhaustive checks for a list of labelled sentences."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from robusttext.bounds import RELAXATIONS
from robusttext.bounds.alpha import ALPHA_LR, check_alpha_settings
from robusttext.bounds.specs import margin_lower_bounds
from robusttext.certify.attack import beam_attack
from robusttext.certify.defaults import DEFAULT_BUDGETS, DEFAULT_ENUMERATE_LIMIT
from robusttext.certify.exact import check_time_limit, settle
from robusttext.certify.exhaustive import enumerate_sets, flipping_rewrite, set_sizes
from robusttext.certify.margins import predict
from robusttext.certify.reading import check_reading
from robusttext.certify.results import Certification, ExampleResult, summarize
from robusttext.certify.soundness import check_example
from robusttext.data import Example, check_labels
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO, EXACT_METHOD, BoundSettings, bound_settings
from robusttext.perturb.encoded import EncodedBatch
from robusttext.perturb.space import PerturbationSpace
from robusttext.perturb.subwords import SubwordSpace
from robusttext.perturb.vocabulary import Vocabulary
from robusttext.text.bounds import (
    batch_problem,
    check_method,
    pick_method,
    substitution_set,
)
from robusttext.text.contract import check_text_model


def check_budgets(budgets: Sequence[int | None]) -> list[int | None]:
    """Distinct budgets in the given order; each an int >= 0 or None (no limit)."""
    if isinstance(budgets, (int, str)) or not budgets:
        raise RobustTextError(f"budgets must be a non-empty list, got {budgets!r}")
    out: list[int | None] = []
    for budget in budgets:
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise RobustTextError(f"a budget is an integer >= 0, got {budget!r}")
        if budget is not None and budget < 0:
            raise RobustTextError(f"a budget is an integer >= 0, got {budget}")
        if budget not in out:
            out.append(budget)
    return out


def certify(
    model: nn.Module,
    vocab: Vocabulary,
    space: PerturbationSpace,
    examples: Sequence[Example | tuple[str, int]],
    budgets: Sequence[int | None] | None = None,
    method: str | BoundSettings | Sequence[str | BoundSettings] = "auto",
    relaxation: str | None = None,
    batch_size: int = 32,
    enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT,
    beam_width: int = 4,
    proposals: int | None = 16,
    device: str | torch.device | None = None,
    progress: bool | None = False,
    alpha_steps: int | None = None,
    enumerate_seconds: float | None = None,
    exact_time_limit: float | None = None,
) -> Certification:
    """Certify, attack and (for small sets) enumerate each sentence at each budget.

    ``model`` follows the text-model contract (see ``robusttext.text.contract``); ``space``
    gives the candidates of every position (its own budget is the default for ``budgets``, else
    1, 2, 3). ``method``: ``ibp``, ``crown-ibp``, ``crown``, ``alpha-crown``, ``budget-ibp``
    (CNNs and bags of words: IBP that keeps the budget through the pooling layer), ``exact``
    or ``auto`` (``budget-ibp`` where the model supports it, else ``crown-ibp``);
    ``relaxation``: ``exact`` (None: this), ``box`` or ``simplex``; ``alpha_steps``:
    alpha-CROWN's optimisation steps (None: ``robusttext.methods.ALPHA_STEPS``). ``method`` may
    instead be a ``robusttext.methods.BoundSettings`` carrying the whole choice (the command line
    passes one), with none of those keywords beside it. ``method`` may also be a list of these
    (several methods, as ``--method ibp,crown``): the attack and the enumeration run once, each
    method's bounds are computed, every result's own fields are the first method's and its
    ``by_method`` holds each method's (its summaries' ``verified_accuracy_by_method`` too);
    ``exact`` in the list runs the search once on ``auto``'s bounds, its answer in ``exact``.
    Sets of at most ``enumerate_limit``
    sentences are enumerated (0: never). ``beam_width``/``proposals`` set the search (see
    ``beam_attack``). ``progress``: show a progress bar on stderr, naming the step under way
    (attack, enumeration, bounds per budget); None: when stderr is a terminal.
    ``enumerate_seconds``: a time budget for the whole enumeration (None: none; at least one
    sentence is enumerated; the others have ``exhaustive`` None unless the search or the clean
    prediction settles them, counted per budget in ``settings["enumeration_timed_out"]``).
    ``method="exact"``: ``auto``'s bounds, then branch and bound (``robusttext.certify.exact``)
    decides every sentence they leave open within ``exact_time_limit`` seconds per sentence and
    budget (``exact``; None: 10).

    Every result passes the soundness invariant (``certify.soundness``; a contradiction raises
    SoundnessViolation naming the sentence), every sentence the reading invariant
    (``certify.reading``: the ids certified are the model's tokenizer's for the text, the clean
    logits its own forward on them; else ReadingMismatch). Rewrites (``ExampleResult.rewrite``)
    are text: the sentence with the changed words replaced.
    """
    check_text_model(model)
    given = _method_list(method, relaxation=relaxation, alpha_steps=alpha_steps,
                         exact_time_limit=exact_time_limit)
    bounds = {}  # the name as given -> its settings, auto resolved for this model
    for name, bound in given.items():
        if name == EXACT_METHOD:
            check_time_limit(bound.exact_time_limit)
        bounds[name] = bound.resolved(check_method(pick_method(
            AUTO if name == EXACT_METHOD else bound.method, model.body)))  # exact: auto's first
    exact = EXACT_METHOD in bounds
    bound = next(iter(bounds.values()))
    if len({b.relaxation for b in bounds.values()}) > 1:
        raise RobustTextError("every method of one certification takes the same relaxation")
    _check_options(bound.relaxation, batch_size, enumerate_limit, enumerate_seconds)
    if budgets is None:
        budgets = [space.budget] if space.budget is not None else list(DEFAULT_BUDGETS)
    budgets = check_budgets(budgets)
    examples = [e if isinstance(e, Example) else Example(*e) for e in examples]
    if not examples:
        raise RobustTextError("no sentences to certify")
    device = torch.device(device) if device is not None else model.embedding.weight.device
    run = _new_run(model.to(device).eval(), vocab, space, budgets, bounds, enumerate_limit,
                   beam_width, proposals, enumerate_seconds)
    # Every sentence is tokenised once, here: its row (per position, token and candidate ids)
    # serves the sort by length, the warm-up and its batch.
    rows, tokens = space.rows([e.text for e in examples], vocab)
    run.encode = lambda chosen: EncodedBatch.from_rows(
        [rows[i] for i in chosen], vocab.pad_id, [tokens[i] for i in chosen]).to(run.device)
    check_labels(examples, run.num_classes())
    order = sorted(range(len(examples)), key=lambda i: len(rows[i]))
    _run_batches(run, examples, order, batch_size, progress, exact)
    results = sorted(run.results, key=lambda r: (budgets.index(r.budget), r.index))
    summaries = [summarize([r for r in results if r.budget == b], b, run.seconds[b])
                 for b in budgets]
    settings = run.settings(exact, device)
    _reading_settings(settings, space, vocab, examples, tokens, rows)
    return Certification(summaries, results, settings)


def _method_list(method, **keywords) -> dict[str, BoundSettings]:
    """``certify``'s ``method`` (a name, a ``BoundSettings`` or a list of them) as the methods
    by name, in order, each one ``BoundSettings`` (``keywords``: the loose ones beside
    ``method``); a name given twice counts once."""
    items = [method] if isinstance(method, (str, BoundSettings)) else list(method or [])
    if not items:
        raise RobustTextError("method: name at least one bound method")
    out: dict[str, BoundSettings] = {}
    for item in items:
        if not isinstance(item, (str, BoundSettings)):
            raise RobustTextError(f"a method is a name or a BoundSettings, got {item!r}")
        bound = bound_settings(item, **keywords)
        out.setdefault(bound.method, bound)
    return out


def _run_batches(run: _Run, examples, order: list[int], batch_size: int,
                 progress: bool | None, exact: bool) -> None:
    """Certify ``examples`` in batches of ``batch_size`` taken in ``order`` (a progress bar
    naming the step under way); with ``exact``, branch and bound then decides the sentences
    the bounds left open (within the settings' ``exact_time_limit``)."""
    from tqdm import tqdm

    hide = None if progress is None else not progress
    with tqdm(total=len(examples), unit="sentence", disable=hide, leave=False,
              desc="certify", dynamic_ncols=True) as bar:
        run.stage = lambda text: bar.set_postfix_str(text, refresh=True)
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            run.batch([examples[i] for i in chosen], chosen, run.encode(chosen))
            bar.update(len(chosen))
        if exact:
            settle(run, [order[s:s + batch_size] for s in range(0, len(order), batch_size)],
                   examples)


def _new_run(model, vocab, space, budgets, bounds: dict[str, BoundSettings], enumerate_limit,
             beam_width, proposals, enumerate_seconds) -> _Run:
    """The run of ``certify`` on ``model`` (on its device, in eval mode): float32 or float64
    only; a padding row that is not zero is warned of (the padded batches' logits are then the
    results, not compared with a forward of each sentence alone); alpha-CROWN's steps are
    checked whatever the method (the default passes)."""
    if model.embedding.weight.dtype not in (torch.float32, torch.float64):
        raise RobustTextError("certify in float32 or float64, not "
                              f"{model.embedding.weight.dtype}")
    padded_alike = not model.embedding.weight[vocab.pad_id].any()
    if not padded_alike:
        warnings.warn("the embedding of the padding token is not zero, so a sentence's logits may "
                      "depend on the length of the others in its batch; results are those of "
                      "the padded batches", RuntimeWarning, stacklevel=3)
    for bound in bounds.values():
        check_alpha_settings(bound.alpha_steps, ALPHA_LR)
    # compare_logits: else the padded batches' logits are the results
    return _Run(model, vocab, space, budgets, bounds, enumerate_limit, beam_width, proposals,
                enumerate_seconds, compare_logits=padded_alike)


def _check_options(relaxation: str, batch_size, enumerate_limit, enumerate_seconds) -> None:
    """Refuse a relaxation, batch size, enumeration limit or time budget certify cannot use."""
    if relaxation not in RELAXATIONS:
        raise RobustTextError(f"unknown relaxation {relaxation!r}; choose one of "
                              f"{', '.join(RELAXATIONS)}")
    for name, value, least in (("batch_size", batch_size, 1), ("enumerate_limit",
                                                               enumerate_limit, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise RobustTextError(f"{name} must be an integer >= {least}, got {value!r}")
    if enumerate_seconds is not None and (isinstance(enumerate_seconds, bool) or not isinstance(
            enumerate_seconds, (int, float)) or not enumerate_seconds > 0):
        raise RobustTextError("enumerate_seconds must be a number of seconds > 0 or None, got "
                              f"{enumerate_seconds!r}")


def _reading_settings(settings: dict, space, vocab, examples, tokens, rows) -> None:
    """What the report says of how the sentences were read: the sub-word candidates dropped
    (a ``transformers`` space) and the tokens the model does not know."""
    if isinstance(space, SubwordSpace):
        settings["dropped_candidates"] = space.dropped_totals([e.text for e in examples])
    settings["unknown_tokens"] = unknown_tokens(vocab, tokens, rows)


class _Run:
    """State of one certification: settings, timings per budget and results so far."""

    def __init__(self, model, vocab, space, budgets, bounds: dict[str, BoundSettings],
                 enumerate_limit, beam_width, proposals, enumerate_seconds: float | None,
                 compare_logits: bool):
        self.model, self.vocab, self.space = model, vocab, space
        self.budgets = budgets
        # The methods by the name given (``auto``, ``exact``, ...), each with ``auto``
        # resolved for this model; ``bound``: the first (a result's own fields), ``several``:
        # whether results carry ``by_method``.
        self.bounds = bounds
        self.bound = next(iter(bounds.values()))
        self.several = len(bounds) > 1
        self.enumerate_limit = enumerate_limit
        self.beam_width, self.proposals = beam_width, proposals
        self.device = model.embedding.weight.device
        self.seconds = {b: {"bounds": 0.0, "attack": 0.0, "exhaustive": 0.0} for b in budgets}
        self.results: list[ExampleResult] = []
        self.classes: int | None = None
        self.setup_seconds = 0.0
        self.stage = lambda text: None  # shows the step under way (the progress bar)
        self.enumerate_seconds = enumerate_seconds
        self.deadline: float | None = None  # set when the enumeration starts
        self.timed_out = {b: 0 for b in budgets}  # sentences the time budget left out
        self.encode = None  # sentence indices -> their EncodedBatch on the device (certify's)
        self.compare_logits = compare_logits  # the reading invariant compares the clean logits

    def settings(self, exact: bool, device: torch.device) -> dict:
        """What the report records of how the run certified (``exact``: ``method="exact"``;
        ``device``: as the caller named it)."""
        bound, budgets = self.bound, self.budgets
        return {"method": bound.method, "relaxation": bound.relaxation, "budgets": budgets,
                "enumerate_limit": self.enumerate_limit,
                "enumerate_seconds": self.enumerate_seconds,
                "enumeration_timed_out": {str(b): self.timed_out[b] for b in budgets},
                "beam_width": self.beam_width, "proposals": self.proposals,
                "space": self.space.describe(), "device": str(device),
                **({"alpha_steps": bound.alpha_steps} if bound.method == "alpha-crown"
                   else {}),
                **({"exact": {"bounds": bound.method, "time_limit": bound.exact_time_limit}}
                   if exact and not self.several else {}),
                **(self._several_settings() if self.several else {}),
                "setup_seconds": round(self.setup_seconds, 4)}

    def _several_settings(self) -> dict:
        """With several methods: each one's bounds by the name given (auto resolved), and the
        alpha-CROWN steps and exact search settings of the methods that take them."""
        out: dict = {"methods": {name: b.method for name, b in self.bounds.items()}}
        alpha = self.bounds.get("alpha-crown")
        if alpha is not None and self.bound.method != "alpha-crown":
            out["alpha_steps"] = alpha.alpha_steps
        search = self.bounds.get(EXACT_METHOD)
        if search is not None:
            out["exact"] = {"bounds": search.method, "time_limit": search.exact_time_limit}
        return out

    def num_classes(self) -> int:
        """The model's class count, read from its logits on the first sentence; also traces
        the body once (the first trace costs seconds of one-time setup that the timings leave
        out)."""
        start = time.perf_counter()
        batch = self.encode([0])
        self.classes = predict(self.model, batch.token_ids, batch.mask).shape[1]
        labels = torch.zeros(1, dtype=torch.long, device=self.device)
        with torch.no_grad():
            for bound in self.bounds.values():
                margin_lower_bounds(batch_problem(self.model, batch, labels, 0,
                                                  bound.relaxation, classes=self.classes),
                                    bound)
        self.setup_seconds = time.perf_counter() - start
        return self.classes

    def batch(self, examples: list[Example], indices: list[int], enc: EncodedBatch) -> None:
        """Certify ``examples`` (the sentences ``indices``), encoded as ``enc``."""
        labels = torch.tensor([e.label for e in examples], device=self.device)
        n = len(examples)
        # Levels of the search and the enumeration: 0 .. the largest budget (None: every
        # changeable position).
        changeable = int(enc.candidate_mask.any(-1).sum(1).max())
        depth = {b: changeable if b is None else min(b, changeable) for b in self.budgets}
        levels = max(depth.values()) + 1

        self.stage(f"attack, {n} sentences, up to {levels - 1} changes")
        attack = beam_attack(self.model, enc, labels, levels - 1, self.beam_width,
                             self.proposals)
        clean = predict(self.model, enc.token_ids, enc.mask)
        check_reading(self.model, self.space, self.vocab, [e.text for e in examples],
                      enc.token_ids, enc.mask, clean, self.compare_logits,
                      [e.origin for e in examples])
        prediction = clean.argmax(1)

        sizes = {b: set_sizes(enc, b) for b in self.budgets}
        exhaustive_margin, exhaustive_flip, skipped = self._enumerate(enc, labels, attack, sizes,
                                                                      depth, levels)
        found: dict = {}  # (sentence, budget) -> the rewrite the enumeration found
        # Read everything per sentence from the host.
        prediction, exhaustive_margin = prediction.cpu(), exhaustive_margin.cpu()
        exhaustive_flip = exhaustive_flip.cpu()
        attack_margins, attack_flipped = attack.margins.cpu(), attack.flipped.cpu()
        subs = substitution_set(self.model, enc, self.budgets[0], self.bound.relaxation)
        for budget in self.budgets:
            d = depth[budget]
            self.seconds[budget]["attack"] += sum(attack.seconds[:d + 1])
            lowers = {}  # method name -> the margin lower bounds of the batch
            for name, bound in self.bounds.items():
                self.stage(f"{bound.method} bounds, budget "
                           f"{'any' if budget is None else budget}")
                start = time.perf_counter()
                with torch.no_grad():
                    problem = batch_problem(self.model, enc, labels, budget, bound.relaxation,
                                            classes=self.classes, subs=subs)
                    lowers[name] = margin_lower_bounds(problem, bound).amin(1).cpu()
                self.seconds[budget]["bounds"] += time.perf_counter() - start
            lower = next(iter(lowers.values()))
            for j in range(n):
                small = sizes[budget][j] <= self.enumerate_limit
                flipped = bool(attack_flipped[j, d])
                if not small or (j in skipped and not flipped):
                    exhaustive = None
                    self.timed_out[budget] += small
                elif flipped:
                    exhaustive = False
                else:
                    exhaustive = not bool(exhaustive_flip[j, d])
                rewrite = (self._rewrite(examples[j].text, attack.witness[j]) if flipped
                           else self._enumerated_flip(enc, j, examples[j].text, int(labels[j]),
                                                      budget, found)
                           if exhaustive is False else None)
                result = ExampleResult(
                    index=indices[j], text=examples[j].text, label=examples[j].label,
                    prediction=int(prediction[j]), budget=budget,
                    certified=bool(lower[j] > 0), margin_lower=float(lower[j]),
                    attacked=flipped, attack_margin=float(attack_margins[j, d]),
                    exhaustive=exhaustive, set_size=sizes[budget][j], origin=examples[j].origin,
                    rewrite=rewrite,
                    dropped_candidates=self._dropped(examples[j].text))
                if self.several:
                    result.by_method = {name: {"certified": bool(low[j] > 0),
                                               "margin_lower": float(low[j])}
                                        for name, low in lowers.items()}
                for low in lowers.values():  # every method's certificate is checked
                    certified = bool(low[j] > 0)
                    check_example(
                        text=result.text, origin=result.origin, budget=budget,
                        certified=certified, margin_lower=float(low[j]),
                        attacked=flipped, attack_margin=result.attack_margin,
                        witness=(rewrite if flipped and certified else None),
                        exhaustive=exhaustive, exhaustive_margin=float(exhaustive_margin[j, d]))
                self.results.append(result)

    def _enumerate(self, enc: EncodedBatch, labels, attack, sizes, depth, levels):
        """Enumerate each sentence once, at the largest budget whose set is small enough and
        whose answer the clean prediction and the search have not already settled; the
        smallest sets first, until the time budget (if any) is spent. Returns the lowest
        margins, the flips and the sentences the time budget left out."""
        plan: dict[int | None, dict[int, int | None]] = {}
        flipped_by_attack = attack.flipped.cpu()
        for j in range(len(enc)):
            needed = [b for b in self.budgets if sizes[b][j] <= self.enumerate_limit
                      and not bool(flipped_by_attack[j, depth[b]])]
            if needed:
                widest = max(needed, key=lambda b: depth[b])
                plan.setdefault(widest, {})[j] = widest
        lowest = torch.full((len(enc), levels), float("inf"), device=self.device)
        flipped = torch.zeros(len(enc), levels, dtype=torch.bool, device=self.device)
        skipped: set[int] = set()
        for budget, sentences in plan.items():
            sentences = dict(sorted(sentences.items(), key=lambda item: sizes[budget][item[0]]))
            total = sum(sizes[budget][j] for j in sentences)
            start = time.perf_counter()
            if self.enumerate_seconds is not None and self.deadline is None:
                self.deadline = start + self.enumerate_seconds
            if self.deadline is not None and start > self.deadline:
                skipped.update(sentences)
                continue
            shown = f"of {len(sentences)} ({total:,} rewrites)"
            m, f, done = enumerate_sets(
                self.model, enc, labels, sentences, levels, deadline=self.deadline,
                on_sentence=lambda k, shown=shown: self.stage(f"enumerating sentence {k} {shown}"))
            skipped.update(set(sentences) - set(done))
            if done:
                rows = torch.tensor(sorted(done), device=self.device)
                lowest[rows], flipped[rows] = m[rows], f[rows]
            lowest.sum().item()  # wait for the device before reading the clock
            self.seconds[budget]["exhaustive"] += time.perf_counter() - start
        return lowest, flipped, skipped

    def _dropped(self, text: str) -> int:
        """Candidates of ``text`` that a sub-word space left out (0 for other spaces)."""
        if isinstance(self.space, SubwordSpace):
            return self.space.dropped[text].total
        return 0

    def _enumerated_flip(self, enc: EncodedBatch, j: int, text: str, label: int,
                         budget: int | None, found: dict) -> str | None:
        """The misclassified rewrite that the enumeration proved exists (the search missed
        it), found again by enumerating sentence ``j``'s set at ``budget``."""
        if (j, budget) not in found:
            row = flipping_rewrite(self.model, enc, j, label, budget)
            found[j, budget] = None if row is None else self._rewrite(text, row)
        return found[j, budget]

    def _rewrite(self, text: str, ids: torch.Tensor) -> str:
        """The rewrite of ``text`` whose ids are ``ids``, as text (see the spaces' ``rewrite``)."""
        if isinstance(self.space, SubwordSpace):
            return self.space.rewrite(text, ids.tolist())
        return self.space.rewrite(text, self.vocab, ids.tolist())


def unknown_tokens(vocab, tokens: list[list[str]], rows) -> dict:
    """How many tokens of the sentences the model reads as its unknown token (``tokens``: the
    token strings, ``rows``: per position ``(id, candidates)``), and in how many sentences."""
    unk = getattr(vocab, "unk_id", None)
    if unk is None:  # a tokenizer's vocabulary
        unk = getattr(getattr(vocab, "tokenizer", None), "unk_token_id", None)
    counts = [sum(1 for token_id, _ in row if unk is not None and token_id == unk)
              for row in rows]
    return {"tokens": sum(counts), "sentences": sum(1 for c in counts if c),
            "of_tokens": sum(len(t) for t in tokens)}
