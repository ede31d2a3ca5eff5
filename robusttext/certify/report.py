"""Reports of a certification: a text table, a JSON file and a plot of accuracy per budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from robusttext.certify.results import Certification
from robusttext.errors import RobustTextError

LEGEND = ("legend: verified (proven for every rewrite in the budget) <= exhaustive (every "
          "rewrite tried: exact, on the sentences enumerated) <= under attack (correct on every "
          "rewrite the search tried); attack success: the share of correct sentences the "
          "search flips")


def describe_space(space, budgets: list[int | None]) -> str:
    """The space's level, tokens and sources, and the budget it was built for only when that
    is the one budget certified (the rows name their own budget)."""
    text = space.describe()
    if list(budgets) == [space.budget]:
        return text
    trained = "no limit" if space.budget is None else f"at most {space.budget}"
    names = ", ".join(s.name for s in space.sources) or "no sources"
    cut = "" if space.max_candidates is None else f", max {space.max_candidates} candidates"
    return (f"{space.level} level, {space.tokenizer} tokens; sources: {names}{cut} "
            f"(the model's own budget: {trained})")


def format_table(result: Certification) -> str:
    """One row per budget (the budget named in the row): clean accuracy, accuracy under
    attack, attack success rate, verified accuracy, exhaustive accuracy (with how many
    sentences were enumerated) and the seconds spent on bounds, attack and enumeration; then
    the legend and a note per budget where enumeration was skipped, saying why."""
    header = (f"{'budget':>17} {'sentences':>9} {'clean':>6} {'under attack':>12} "
              f"{'attack success':>14} {'verified':>8} {'exhaustive (enumerated)':>23}   "
              "seconds: bounds / attack / enumeration")
    searched = any(s.exact_accuracy is not None for s in result.summaries)
    if searched:
        header += " / exact search"
    lines = [header, "-" * len(header)]
    for s in result.summaries:
        if s.exhaustive_accuracy is None:
            exhaustive = "not enumerated"
        else:
            exhaustive = f"{_pct(s.exhaustive_accuracy)} ({s.exhaustive_n}/{s.n})"
        success = "-" if s.attack_success_rate is None else _pct(s.attack_success_rate)
        lines.append(
            f"{_positions(s.budget):>17} {s.n:>9} {_pct(s.clean_accuracy):>6} "
            f"{_pct(s.attack_accuracy):>12} {success:>14} {_pct(s.verified_accuracy):>8} "
            f"{exhaustive:>23}   {s.bounds_seconds:.2f} / {s.attack_seconds:.2f} / "
            f"{s.exhaustive_seconds:.2f}" + (f" / {s.exact_seconds:.2f}" if searched else ""))
    lines.append(LEGEND)
    lines += exact_lines(result)
    lines += enumeration_notes(result)
    return "\n".join(lines)


def exact_lines(result: Certification) -> list[str]:
    """With ``--method exact``, one line per budget: the exact robust accuracy the search
    found, how many sentences it decided and how many timed out (where the accuracy is then
    bounded, not exact)."""
    lines = []
    for s in result.summaries:
        if s.exact_accuracy is None:
            continue
        limit = result.settings.get("exact", {}).get("time_limit")
        if s.exact_timeouts:
            value = (f"between {_pct(s.exact_accuracy)} and "
                     f"{_pct(s.exact_accuracy + s.exact_timeouts / s.n)}")
            left = f"; {s.exact_timeouts} timed out at {limit:g} s each"
        else:
            value, left = _pct(s.exact_accuracy), ""
        lines.append(f"exact search at {_positions(s.budget)}: exact robust accuracy {value} "
                     f"({s.exact_decided} of {s.n} sentences decided{left}; "
                     f"{s.exact_seconds:.2f} s)")
    return lines


def enumeration_notes(result: Certification) -> list[str]:
    """One line per budget whose sets were not all enumerated: how many and why."""
    limit = result.settings.get("enumerate_limit")
    notes = []
    for s in result.summaries:
        skipped = s.n - s.exhaustive_n
        if not skipped:
            continue
        where = f"at {_positions(s.budget)}"
        if limit == 0:
            notes.append(f"note: {where}, enumeration is off (--enumerate-limit 0)")
            continue
        shown = "?" if limit is None else f"{limit:,}"
        notes.append(f"note: {where}, {skipped} of {s.n} sentences have more than {shown} "
                     "rewrites (--enumerate-limit) and were not enumerated"
                     + ("" if s.exhaustive_n == 0 else
                        f"; exhaustive covers the other {s.exhaustive_n}"))
    return notes


PLOT_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
HTML_FORMATS = (".html", ".htm")


def write_json(path: str | Path, report: dict) -> Path | str:
    """Write a report (``{"summary": ..., "examples": ..., ...}``) as indented JSON; ``-``
    writes it to standard output."""
    if str(path) == "-":
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
        sys.stdout.flush()
        return "standard output"
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
    except OSError as error:
        raise RobustTextError(f"cannot write the JSON report {path}: {error}") from None
    return path


def check_matplotlib() -> None:
    """RobustTextError unless matplotlib can be imported (plots are an optional extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RobustTextError("--plot needs matplotlib: pip install 'robusttext[plot]'") from None


def plot_accuracy(path: str | Path, results: dict[str, Certification]) -> Path:
    """Verified (solid) and attack (dashed) accuracy against the budget, one colour per model.

    ``results``: model name -> its certification. Budgets without a limit are left out.
    """
    check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for index, (name, result) in enumerate(results.items()):
        rows = sorted((s for s in result.summaries if s.budget is not None),
                      key=lambda s: s.budget)
        budgets = [s.budget for s in rows]
        colour = f"C{index}"
        ax.plot(budgets, [100 * s.verified_accuracy for s in rows], "o-", color=colour,
                label=f"{name}: verified")
        ax.plot(budgets, [100 * s.attack_accuracy for s in rows], "x--", color=colour,
                label=f"{name}: attack")
    ax.set_xlabel("budget (changed positions)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as error:
        raise RobustTextError(f"cannot write the plot {path}: {error}") from None
    finally:
        plt.close(fig)
    return path


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _positions(budget: int | None) -> str:
    """``"1 position"``, ``"3 positions"``, ``"any positions"``: the budget as a row names it."""
    if budget is None:
        return "any positions"
    return f"{budget} position{'' if budget == 1 else 's'}"
