"""Reports of a certification: a text table, a JSON file and a plot of accuracy per budget.

The pieces that do not depend on sentences (``aligned_table``, ``write_json``,
``check_matplotlib``, ``save_figure``, ``pct``) are also the report of ``robusttext vision
certify`` (``robusttext.vision.report``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from robusttext.certify.results import Certification
from robusttext.errors import RobustTextError

LEGEND = ("legend: verified (proven for every rewrite in the budget) <= exhaustive (the true "
          "robust accuracy: exact on the k/n sentences every rewrite of which was tried or "
          "that the search flips; with k < n, the range the others leave, each robust at least "
          "when verified and at most when not flipped) <= under attack (correct on every "
          "rewrite the search tried); attack success: the share of correct sentences the "
          "search flips")


def describe_space(space, budgets: list[int | None]) -> str:
    """The space's level, tokens and sources, and the budget the model's own space was built
    for only when that is not the one budget certified (the rows name their own budget). A
    space made from certify's flags (``from_flags`` set on it, or on the word-level space a
    ``SubwordSpace`` wraps) is not the model's: its budget is the largest certified."""
    text = space.describe()
    if list(budgets) == [space.budget]:
        return text
    trained = "no limit" if space.budget is None else f"at most {space.budget}"
    names = ", ".join(s.name for s in space.sources) or "no sources"
    cut = "" if space.max_candidates is None else f", max {space.max_candidates} candidates"
    text = f"{space.level} level, {space.tokenizer} tokens; sources: {names}{cut}"
    if getattr(getattr(space, "space", space), "from_flags", False):
        return text
    return f"{text} (the model's own budget: {trained})"


def bounds_used(settings: dict) -> str:
    """The bounds a certification used, as its report line names them: ``crown-ibp``; with
    several methods each by the name given, auto and exact with their bounds
    (``auto (budget-ibp), ibp``)."""
    methods = settings.get("methods")
    if not methods:
        return settings["method"]
    return ", ".join(name if name == bounds else f"{name} ({bounds})"
                     for name, bounds in methods.items())


def format_table(result: Certification) -> str:
    """One row per budget (the budget named in the row): clean accuracy, accuracy under
    attack, attack success rate, verified accuracy (with several methods, a column
    ``verified (METHOD)`` per method), exhaustive accuracy (with how many
    sentences were enumerated) and the seconds spent on bounds, attack and enumeration; then
    the legend and a note per budget where enumeration was skipped, saying why."""
    methods = list(result.summaries[0].verified_accuracy_by_method or {})  # several: each one
    titles = [f"verified ({m})" for m in methods] or ["verified"]
    header = (f"{'budget':>17} {'sentences':>9} {'clean':>6} {'under attack':>12} "
              f"{'attack success':>14} {' '.join(f'{t:>8}' for t in titles)} "
              f"{'exhaustive (enumerated)':>23}   seconds: bounds / attack / enumeration")
    searched = any(s.exact_accuracy is not None for s in result.summaries)
    if searched:
        header += " / exact search"
    lines = [header, "-" * len(header)]
    for s in result.summaries:
        if s.exhaustive_accuracy is None:
            exhaustive = "not enumerated"
        else:
            exhaustive = f"{robust_cell(s)} ({s.exhaustive_n}/{s.n})"
        success = "-" if s.attack_success_rate is None else _pct(s.attack_success_rate)
        shares = ([s.verified_accuracy_by_method[m] for m in methods] if methods
                  else [s.verified_accuracy])
        verified = " ".join(f"{_pct(v):>{max(8, len(t))}}"
                            for v, t in zip(shares, titles, strict=True))
        lines.append(
            f"{_positions(s.budget):>17} {s.n:>9} {_pct(s.clean_accuracy):>6} "
            f"{_pct(s.attack_accuracy):>12} {success:>14} {verified} "
            f"{exhaustive:>23}   {s.bounds_seconds:.2f} / {s.attack_seconds:.2f} / "
            f"{s.exhaustive_seconds:.2f}" + (f" / {s.exact_seconds:.2f}" if searched else ""))
    lines.append(LEGEND)
    lines += exact_lines(result)
    lines += enumeration_notes(result)
    if any(s.budget == 0 for s in result.summaries):
        lines.append("note: at 0 positions no rewrite is allowed, so every column is the "
                     "clean accuracy")
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
    """One line per budget whose sets were not all enumerated: how many and why (too large
    for ``--enumerate-limit``, or left when the ``--enumerate-seconds`` budget ran out)."""
    limit = result.settings.get("enumerate_limit")
    seconds = result.settings.get("enumerate_seconds")
    timed_out = result.settings.get("enumeration_timed_out") or {}
    notes = []
    for s in result.summaries:
        skipped = s.n - s.exhaustive_n
        if not skipped:
            continue
        where = f"at {_positions(s.budget)}"
        if limit == 0:
            notes.append(f"note: {where}, enumeration is off (--enumerate-limit 0)")
            continue
        late = timed_out.get(str(s.budget), 0)
        large = skipped - late
        covers = ("" if s.exhaustive_n == 0 else
                  f"; exhaustive covers the other {s.exhaustive_n}")
        if large:
            shown = "?" if limit is None else f"{limit:,}"
            notes.append(f"note: {where}, {large} of {s.n} {_sentences(s.n)} "
                         f"{'has' if large == 1 else 'have'} more than {shown} rewrites "
                         "(--enumerate-limit) and "
                         f"{'was' if large == 1 else 'were'} not enumerated"
                         + ("" if late else covers))
        if late:
            notes.append(f"note: {where}, the enumeration's time budget (--enumerate-seconds "
                         f"{seconds:g}) ran out: {late} of {s.n} {_sentences(s.n)} "
                         f"{'was' if late == 1 else 'were'} not enumerated{covers}; "
                         "--enumerate-seconds none enumerates every small set")
    return notes


def _sentences(n: int) -> str:
    return "sentence" if n == 1 else "sentences"


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


def aligned_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The header, a rule as wide as it, and the rows: every cell right-aligned to its
    column's widest entry, columns one space apart."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [" ".join(f"{str(cell):>{width}}" for cell, width in zip(row, widths, strict=True))
             for row in [header, *rows]]
    return [lines[0], "-" * len(lines[0]), *lines[1:]]


def check_matplotlib() -> None:
    """RobustTextError unless matplotlib can be imported (plots are an optional extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RobustTextError("--plot needs matplotlib: pip install 'robusttext[plot]'") from None


def plot_accuracy(path: str | Path, results: dict[str, Certification]) -> Path:
    """Verified and under-attack accuracy, per model, written to ``path``.

    ``results``: model name -> its certification; budgets without a limit are left out. With
    several budgets for some model: lines against the budget (integer ticks; one colour per
    model, solid verified, dashed under attack; the legend beside the axes, not over the
    data). With one budget per model (the shipped models, each at its own): a bar per model
    and figure, the budget named under each model.
    """
    use_agg()
    return save_figure(accuracy_figure(results), path)


def use_agg() -> None:
    """matplotlib, checked (``check_matplotlib``), drawing to files (no window)."""
    check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")


def save_figure(fig, path: str | Path) -> Path:
    """Write the matplotlib figure ``fig`` to ``path`` (its folder made), then close it; a
    failure in one line."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as error:
        raise RobustTextError(f"cannot write the plot {path}: {error}") from None
    finally:
        plt.close(fig)
    return path


def accuracy_figure(results: dict[str, Certification]):
    """The matplotlib figure of ``plot_accuracy`` (the caller closes it)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    rows = {name: sorted((s for s in result.summaries if s.budget is not None),
                         key=lambda s: s.budget) for name, result in results.items()}
    rows = {name: r for name, r in rows.items() if r}
    if not rows:
        raise RobustTextError("--plot: no budget with a limit to plot (--budget any has no "
                              "axis)")
    if all(len(r) == 1 for r in rows.values()):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 1.5), 3.8))
        names = list(rows)
        where = range(len(names))
        ax.bar([i - 0.2 for i in where], [100 * rows[n][0].verified_accuracy for n in names],
               0.4, label="verified", color="C0")
        ax.bar([i + 0.2 for i in where], [100 * rows[n][0].attack_accuracy for n in names],
               0.4, label="under attack", color="C1", alpha=0.6)
        ax.set_xticks(list(where))
        ax.set_xticklabels([f"{n}\n{_positions(rows[n][0].budget)}" for n in names],
                           rotation=30, ha="right", fontsize="small")
        ax.legend(fontsize="small", loc="lower right")
    else:
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
        for index, summaries in enumerate(rows.values()):
            budgets = [s.budget for s in summaries]
            colour = f"C{index % 10}"
            ax.plot(budgets, [100 * s.verified_accuracy for s in summaries], "o-",
                    color=colour)
            ax.plot(budgets, [100 * s.attack_accuracy for s in summaries], "x--",
                    color=colour)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("budget (changed positions)")
        handles = [Line2D([], [], color=f"C{i % 10}", label=name)
                   for i, name in enumerate(rows)]
        handles += [Line2D([], [], color="grey", marker="o", label="verified"),
                    Line2D([], [], color="grey", marker="x", linestyle="--",
                           label="under attack")]
        ax.legend(handles=handles, fontsize="small", loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def robust_cell(s) -> str:
    """The robust accuracy over all of a summary's sentences: exact, or its range."""
    low, high = s.robust_range if s.robust_range is not None else (s.exhaustive_accuracy,) * 2
    return _pct(low) if _pct(low) == _pct(high) else f"{_pct(low)}-{_pct(high)}"


def pct(value: float) -> str:
    """An accuracy in [0, 1] as a percentage to one decimal, as every report shows it."""
    return f"{100 * value:.1f}%"


_pct = pct


def _positions(budget: int | None) -> str:
    """``"1 position"``, ``"3 positions"``, ``"any positions"``: the budget as a row names it."""
    if budget is None:
        return "any positions"
    return f"{budget} position{'' if budget == 1 else 's'}"
