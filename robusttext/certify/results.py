"""What certification produces: per-sentence results, per-budget summaries, the JSON report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class ExampleResult:
    """One sentence at one budget.

    certified:    the margin lower bound is positive (the label is proven on the whole set).
    margin_lower: the lowest bound on ``z_y - z_j`` over ``j != y`` and the set.
    attacked:     the search found a misclassified sentence in the set (the sentence itself
                  counts when the model already gets it wrong).
    attack_margin: the lowest margin the search saw.
    exhaustive:   True: every sentence of the set is classified correctly; False: one is not
                  (found by enumeration, or already shown by the search or the clean
                  prediction); None: the set is larger than the enumeration limit.
    set_size:     the exact number of sentences in the set.
    rewrite:      a misclassified sentence of the set (the attack's, else the enumeration's),
                  None when none was found.
    exact:        the answer of the complete search (``--method exact``,
                  ``robusttext.certify.exact``): ``certified``, ``counterexample`` or ``timeout``;
                  None when it did not run. ``exact_seconds``: the search time charged to it.
    dropped_candidates: candidate words left out of the set because their word pieces could not
                  be covered exactly (sub-word models, ``robusttext.perturb.subwords``; 0 for
                  word and character vocabularies, which drop nothing).
    by_method:    with several methods (``--method ibp,crown``), per method by the name given:
                  ``{"certified": .., "margin_lower": ..}`` (``exact`` adds its ``exact`` and
                  ``exact_seconds``); ``certified`` and ``margin_lower`` above are the first
                  method's. None (and left out of the JSON) with one method.
    """

    index: int
    text: str
    label: int
    prediction: int
    budget: int | None
    certified: bool
    margin_lower: float
    attacked: bool
    attack_margin: float
    exhaustive: bool | None
    set_size: int
    origin: str = ""
    rewrite: str | None = None
    dropped_candidates: int = 0
    exact: str | None = None
    exact_seconds: float = 0.0
    by_method: dict | None = None

    def to_json(self) -> dict:
        """The fields, with ``misclassified`` (the sentence itself is) and ``attacked`` as the
        search's finding only: false for a misclassified sentence, whose ``rewrite`` is the
        sentence itself; ``by_method`` only with several methods."""
        out = asdict(self)
        for key in ("margin_lower", "attack_margin"):
            out[key] = _finite(out[key])
        if out["by_method"] is None:
            del out["by_method"]
        else:
            for entry in out["by_method"].values():
                entry["margin_lower"] = _finite(entry["margin_lower"])
        out["misclassified"] = self.prediction != self.label
        out["attacked"] = self.attacked and not out["misclassified"]
        return out


@dataclass
class BudgetSummary:
    """Accuracies over ``n`` sentences at one budget, and the time each check took.

    ``attack_accuracy`` is the accuracy under attack (no misclassified rewrite found);
    ``attack_success_rate`` the share of the correctly classified sentences that the search
    flips (None when none is correct).
    ``exhaustive_accuracy`` is over the ``exhaustive_n`` sentences whose set was small enough
    to enumerate (None when there were none); it is the true robust accuracy on those.
    ``robust_range``: where the exact robust accuracy over all ``n`` sentences lies: a
    sentence settled exhaustively counts as it is; any other counts as robust at least when
    certified and at most when the search did not flip it. Equal bounds: it is exact, and
    always verified <= low <= high <= under attack.
    ``attack_seconds`` is the time the search spent up to this budget (one search serves every
    budget); ``exhaustive_seconds`` the enumeration of the sets enumerated at this budget.
    ``verified_accuracy_by_method``: with several methods, each one's verified accuracy by the
    name given (``verified_accuracy`` is the first's); None (left out of the JSON) with one.
    ``bounds_seconds`` is then the time of every method's bounds.
    """

    budget: int | None
    n: int
    clean_accuracy: float
    attack_accuracy: float
    verified_accuracy: float
    exhaustive_accuracy: float | None
    exhaustive_n: int
    bounds_seconds: float
    attack_seconds: float
    exhaustive_seconds: float
    attack_success_rate: float | None = None
    robust_range: tuple[float, float] | None = None
    exact_accuracy: float | None = None
    exact_decided: int = 0
    exact_timeouts: int = 0
    exact_seconds: float = 0.0
    verified_accuracy_by_method: dict | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        if out["verified_accuracy_by_method"] is None:
            del out["verified_accuracy_by_method"]
        out["timings"] = {k: round(out.pop(k), 4) for k in
                          ("bounds_seconds", "attack_seconds", "exhaustive_seconds")}
        return out


@dataclass
class Certification:
    """The results of ``certify``: ``summaries`` per budget, ``examples`` per sentence and budget
    (budget-major, then in input order) and the ``settings`` used."""

    summaries: list[BudgetSummary]
    examples: list[ExampleResult]
    settings: dict = field(default_factory=dict)

    def summary(self, budget: int | None) -> BudgetSummary:
        return next(s for s in self.summaries if s.budget == budget)

    def to_json(self, model: str | None = None) -> dict:
        """``{"summary": [...], "examples": [...], "settings": {...}}``; with ``model``, every
        summary and example entry carries ``"model": model``."""
        tag = {} if model is None else {"model": model}
        return {
            "summary": [{**tag, **s.to_json()} for s in self.summaries],
            "examples": [{**tag, **e.to_json()} for e in self.examples],
            "settings": self.settings,
        }


def summarize(results: list[ExampleResult], budget: int | None, seconds: dict) -> BudgetSummary:
    """The summary of one budget's results; ``seconds``: bounds, attack and exhaustive time."""
    n = len(results)
    known = [r.exhaustive for r in results if r.exhaustive is not None]
    correct = [r for r in results if r.prediction == r.label]
    return BudgetSummary(
        budget=budget,
        n=n,
        clean_accuracy=sum(r.prediction == r.label for r in results) / n,
        attack_accuracy=sum(not r.attacked for r in results) / n,
        verified_accuracy=sum(r.certified for r in results) / n,
        exhaustive_accuracy=sum(known) / len(known) if known else None,
        exhaustive_n=len(known),
        bounds_seconds=seconds["bounds"],
        attack_seconds=seconds["attack"],
        exhaustive_seconds=seconds["exhaustive"],
        attack_success_rate=(sum(r.attacked for r in correct) / len(correct) if correct
                             else None),
        robust_range=(
            sum(r.certified if r.exhaustive is None else r.exhaustive for r in results) / n,
            sum(not r.attacked if r.exhaustive is None else r.exhaustive for r in results) / n),
        **_exact_summary(results),
        **_by_method_summary(results),
    )


def _by_method_summary(results: list[ExampleResult]) -> dict:
    """Each method's verified accuracy over ``results`` (none with one method)."""
    if not results or results[0].by_method is None:
        return {}
    return {"verified_accuracy_by_method": {
        name: sum(r.by_method[name]["certified"] for r in results) / len(results)
        for name in results[0].by_method}}


def _exact_summary(results: list[ExampleResult]) -> dict:
    """The complete search's figures over ``results`` (none when it did not run)."""
    answers = [r.exact for r in results if r.exact is not None]
    if not answers:
        return {}
    return {"exact_accuracy": answers.count("certified") / len(results),
            "exact_decided": len(answers) - answers.count("timeout"),
            "exact_timeouts": answers.count("timeout"),
            "exact_seconds": sum(r.exact_seconds for r in results)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
