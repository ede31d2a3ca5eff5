"""Reports of a certification: a text table, a JSON file and a plot of accuracy per budget."""

from __future__ import annotations

import json
from pathlib import Path

from robusttext.certify.results import Certification
from robusttext.errors import RobustTextError

COLUMNS = ("budget", "n", "clean", "attack", "verified", "exhaustive", "bounds", "attack",
           "enumerate")


def format_table(result: Certification) -> str:
    """One row per budget: accuracies (clean, under attack, verified, exhaustive where sets
    were enumerated, with how many) and the seconds spent on bounds, attack and enumeration."""
    header = (f"{'budget':>6} {'n':>6} {'clean':>7} {'attack':>7} {'verified':>8} "
              f"{'exhaustive':>17} {'bounds':>8} {'attack':>8} {'enumerate':>9}")
    lines = [header, "-" * len(header)]
    for s in result.summaries:
        if s.exhaustive_accuracy is None:
            exhaustive = "-"
        else:
            exhaustive = f"{_pct(s.exhaustive_accuracy)} ({s.exhaustive_n}/{s.n})"
        lines.append(
            f"{_budget(s.budget):>6} {s.n:>6} {_pct(s.clean_accuracy):>7} "
            f"{_pct(s.attack_accuracy):>7} {_pct(s.verified_accuracy):>8} {exhaustive:>17} "
            f"{s.bounds_seconds:>7.2f}s {s.attack_seconds:>7.2f}s {s.exhaustive_seconds:>8.2f}s")
    return "\n".join(lines)


def write_json(path: str | Path, report: dict) -> Path:
    """Write a report (``{"summary": ..., "examples": ..., ...}``) as indented JSON."""
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


def _budget(budget: int | None) -> str:
    return "any" if budget is None else str(budget)
