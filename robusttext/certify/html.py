"""``robusttext certify --html report.html``: one self-contained page of a certification.

The page holds, per model, the summary table with its legend and a plot of verified accuracy
and accuracy under attack against the budget (inline SVG), then one row per sentence: its
tokens, those that may change marked (their candidates in the tooltip), the outcome at each
budget (certified, robust by enumeration only, flipped, or open: neither proven nor broken),
the certified margin, and the flipping rewrite when one was found. Two selectors filter the
rows by outcome at a budget. No file, font or script is fetched from elsewhere.

The page's frame (``page_head``, ``glossary``, ``page_foot``, ``write_page``, the outcome filter
``FILTER_SCRIPT``) is also the page of ``robusttext vision certify --html``
(``robusttext.vision.report``).
"""

from __future__ import annotations

import html
from pathlib import Path

from robusttext.certify.report import (
    LEGEND,
    bounds_used,
    describe_space,
    enumeration_notes,
    exact_lines,
    robust_cell,
)
from robusttext.certify.results import Certification, ExampleResult
from robusttext.certify.sentence import read_tokens
from robusttext.errors import RobustTextError

OUTCOMES = {
    "certified": "certified: proven for every rewrite",
    "enumerated": "robust by enumeration, not certified",
    "searched": "robust by the exact search (--method exact), not certified",
    "flipped": "flipped: a misclassified rewrite exists (or the sentence itself)",
    "open": "open: neither proven nor broken",
    "timeout": "timeout: the exact search ran out of time",
}


# What the page's words mean, shown under its title (only the entries the page uses).
GLOSSARY = {
    "margin": "margin: the logit of the label minus the highest other logit; the certified "
              "margin is a lower bound on it over every rewrite within the budget, so a "
              "positive one proves the label cannot change (shown to 3 significant digits)",
    "glue": "glue tokens: the sentence split on whitespace, as GLUE's SST-2 files are "
            "written",
    "raw": "raw tokens: nltk's word tokenizer",
    "ibp": "ibp bounds: interval bound propagation, a box per layer (Gowal et al. 2018)",
    "crown": "crown bounds: linear bounds propagated backwards from the margins (Zhang et al. "
             "2018)",
    "crown-ibp": "crown-ibp bounds: CROWN with interval bounds for the inner layers, keeping "
                 "the tighter of the two (Zhang et al. 2020)",
    "alpha-crown": "alpha-crown bounds: CROWN with the relaxation slopes optimised per neuron "
                   "(Xu et al. 2021)",
    "budget-ibp": "budget-ibp bounds: interval bounds that keep the budget through the "
                  "pooling layer, the worst set of at most budget positions found exactly",
    "exact": "exact relaxation: the substitution set itself (the largest sum over at most "
             "budget positions of each position's best candidate), no looser box or simplex",
    "box": "box relaxation: each position anywhere in the box of its candidates (Jia et al. "
           "2019)",
    "simplex": "simplex relaxation: each position in the convex hull of its candidates (Huang "
               "et al. 2019)",
}


def outcome(r: ExampleResult) -> str:
    """One key of OUTCOMES for a sentence at one budget."""
    if r.certified:
        return "certified"
    if (r.prediction != r.label or r.attacked or r.exhaustive is False
            or r.exact == "counterexample"):
        return "flipped"
    if r.exhaustive:
        return "enumerated"
    return {"certified": "searched", "timeout": "timeout"}.get(r.exact, "open")


def budget_key(budget: int | None) -> str:
    return "any" if budget is None else str(budget)


def write_html(path: str | Path, results: dict[str, Certification], bundles: dict,
               source: str, command: str | None = None) -> Path:
    """Write the page for ``results`` (model name -> certification; ``bundles`` the loaded
    models of the same names, for their tokens and candidates) certified on ``source``;
    ``command``: the command line, shown with the version at the foot of the page."""
    return write_page(path, render(results, bundles, source, command))


def write_page(path: str | Path, page: str) -> Path:
    """Write the page ``page`` to ``path`` (its folder made); a failure in one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise RobustTextError(f"cannot write the HTML report {path}: {error}") from None
    return path


def page_head(title: str, style: str = "") -> str:
    """The page's start: its ``title`` (escaped here) and the shared style, then ``style``."""
    head = _HEAD.format(title=html.escape(title))
    return head.replace("</style>", style + "</style>") if style else head


def glossary(entries: list[str]) -> str:
    """The "How to read this page" box: ``entries``, each a sentence (escaped here)."""
    return ('<details class="glossary" open><summary>How to read this page</summary><ul>'
            + "".join(f"<li>{html.escape(e)}</li>" for e in entries) + "</ul></details>")


def page_foot(command: str | None) -> str:
    """The version and, when given, the command line; then the end of the page."""
    from robusttext import __version__

    foot = f"robusttext {__version__}" + (f"; command: <code>{html.escape(command)}</code>"
                                          if command else "")
    return f'<p class="foot">{foot}</p>\n</body></html>\n'


def render(results: dict[str, Certification], bundles: dict, source: str,
           command: str | None = None) -> str:
    """The page as a string."""
    keys = list(dict.fromkeys(budget_key(b) for r in results.values()
                              for b in r.settings["budgets"]))
    parts = [page_head(f"robusttext certify: {source}")]
    parts.append(f"<h1>robusttext certify</h1><p>data: <code>{html.escape(source)}</code></p>")
    used = ["margin"] + list(dict.fromkeys(
        word for name, r in results.items()
        for word in (bundles[name].space.tokenizer, r.settings["method"],
                     *r.settings.get("methods", {}).values(), r.settings["relaxation"])))
    parts.append(glossary([GLOSSARY[w] for w in used if w in GLOSSARY]))
    for name, result in results.items():
        parts.append(_summary(name, result, bundles[name].space))
    budget_options = "".join(f'<option value="{k}">{k}</option>' for k in keys)
    outcome_options = "".join(f'<option value="{k}">{html.escape(v)}</option>'
                              for k, v in OUTCOMES.items())
    parts.append(
        '<h2>Sentences</h2><p class="filters">show <select id="outcome"><option value="all">'
        f'every outcome</option>{outcome_options}</select> at budget <select id="budget">'
        f'{budget_options}</select> <span id="shown"></span></p>'
        '<p class="key">tokens <span class="may">marked like this</span> may change (hover '
        'for their candidates).</p>')
    parts.append('<table id="sentences"><thead><tr><th>model</th><th>#</th><th>label / '
                 'prediction</th><th>sentence</th><th>per budget</th></tr></thead><tbody>')
    for name, result in results.items():
        parts += _sentence_rows(name, result, bundles[name])
    parts.append("</tbody></table>")
    parts.append(FILTER_SCRIPT)
    parts.append(page_foot(command))
    return "\n".join(parts)


def _summary(name: str, result: Certification, space) -> str:
    rows = []
    methods = list(result.summaries[0].verified_accuracy_by_method or {})  # several: each one
    for s in result.summaries:
        verified = ("".join(f"<td>{_pct(s.verified_accuracy_by_method[m])}</td>"
                            for m in methods) if methods
                    else f"<td>{_pct(s.verified_accuracy)}</td>")
        exhaustive = ("not enumerated" if s.exhaustive_accuracy is None else
                      f"{robust_cell(s)} ({s.exhaustive_n}/{s.n})")
        success = "-" if s.attack_success_rate is None else _pct(s.attack_success_rate)
        rows.append(f"<tr><td>{budget_key(s.budget)}</td><td>{s.n}</td>"
                    f"<td>{_pct(s.clean_accuracy)}</td><td>{_pct(s.attack_accuracy)}</td>"
                    f"<td>{success}</td>{verified}"
                    f"<td>{exhaustive}</td></tr>")
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>"
                    for n in exact_lines(result) + enumeration_notes(result))
    settings = result.settings
    described = describe_space(space, settings["budgets"])
    verified_head = ("".join(f"<th>verified ({html.escape(m)})</th>" for m in methods)
                     if methods else "<th>verified</th>")
    first = (f"; the sentences below show the outcome by {html.escape(methods[0])}"
             if methods else "")
    return (f"<section><h2>{html.escape(name)}</h2><p>{html.escape(described)}; "
            f"{html.escape(bounds_used(settings))} bounds, "
            f"{html.escape(settings['relaxation'])} relaxation{first}</p><div "
            "class='summary'><table><thead><tr><th>budget (changed "
            "positions)</th><th>sentences</th><th>clean</th><th>under attack</th><th>attack "
            f"success</th>{verified_head}<th>exhaustive (enumerated)</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>" + _plot(result) + "</div>"
            f"<p class='legend'>{html.escape(LEGEND)}</p>{notes}</section>")


def _plot(result: Certification) -> str:
    """Verified (solid) and under-attack (dashed) accuracy against the budget, inline SVG."""
    rows = sorted((s for s in result.summaries if s.budget is not None), key=lambda s: s.budget)
    if not rows:
        return ""
    width, height, left, bottom, top, right = 320, 200, 40, 30, 10, 10
    low, high = rows[0].budget, rows[-1].budget
    span = max(high - low, 1)

    def x(b):
        return left + (b - low) / span * (width - left - right) if high > low else width / 2

    def y(v):
        return top + (1 - v) * (height - top - bottom)

    out = ['<div>', f'<svg class="plot" width="{width}" height="{height}" role="img" '
           'aria-label="accuracy against the budget">']
    for v in (0, 0.5, 1):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'class="grid"/><text x="{left - 4}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{int(100 * v)}%</text>')
    for s in rows:
        out.append(f'<text x="{x(s.budget):.1f}" y="{height - 10}" '
                   f'text-anchor="middle">{s.budget}</text>')
    for key, css in (("verified_accuracy", "verified"), ("attack_accuracy", "attack")):
        points = " ".join(f"{x(s.budget):.1f},{y(getattr(s, key)):.1f}" for s in rows)
        out.append(f'<polyline points="{points}" class="{css}"/>')
        out += [f'<circle cx="{x(s.budget):.1f}" cy="{y(getattr(s, key)):.1f}" r="3" '
                f'class="{css}"/>' for s in rows]
    out.append("</svg>")
    out.append('<div class="plotkey"><span class="verified">&#9473; verified</span> '
               '<span class="attack">&#9476; under attack</span> (accuracy against the '
               'budget)</div></div>')
    return "".join(out)


def _sentence_rows(name: str, result: Certification, bundle) -> list[str]:
    by_index: dict[int, list[ExampleResult]] = {}
    for r in result.examples:
        by_index.setdefault(r.index, []).append(r)
    space, vocab = bundle.space, bundle.vocab
    joiner = "" if space.level == "char" else " "
    rows = []
    for index, per_budget in sorted(by_index.items()):
        first = per_budget[0]
        read = read_tokens(space, vocab, first.text)
        shown = []
        for token, _, candidates in read:
            text = html.escape(token)
            if candidates:
                tip = html.escape(", ".join(candidates[:40])
                                  + (" ..." if len(candidates) > 40 else ""), quote=True)
                text = f'<span class="may" title="{len(candidates)}: {tip}">{text}</span>'
            shown.append(text)
        cells, data, previous = [], [], None
        for r in per_budget:
            key = outcome(r)
            data.append(f'data-b{budget_key(r.budget)}="{key}"')
            if r.prediction != r.label:
                note = "" if previous == "itself" else (
                    '<div class="rewrite">the sentence itself is misclassified</div>')
                previous = "itself"
            elif r.rewrite and r.rewrite != previous:
                note = (f'<div class="rewrite">flipped by: '
                        f'{_marked(read, r.rewrite, space.level)}</div>')
                previous = r.rewrite
            else:
                note = ""
            if r.exact is not None and r.exact_seconds > 0:  # decided by the search itself
                note += (f'<div class="rewrite">exact search: {html.escape(r.exact)} in '
                         f'{r.exact_seconds:.2f} s</div>')
            cells.append(f'<div class="{key}"><b>{budget_key(r.budget)}</b>: '
                         f'{html.escape(OUTCOMES[key].split(":")[0])}, certified margin '
                         f'{margin_text(r.margin_lower)}{note}</div>')
        wrong = " wrong" if first.prediction != first.label else ""
        rows.append(f'<tr {" ".join(data)}><td>{html.escape(name)}</td><td>{index}</td>'
                    f'<td class="labels{wrong}">class {first.label} / class '
                    f'{first.prediction}</td>'
                    f'<td class="text">{joiner.join(shown)}</td><td>{"".join(cells)}</td></tr>')
    return rows


def _marked(read: list[tuple[str, str, list[str]]], rewrite: str, level: str) -> str:
    """The rewrite, escaped, with the tokens that differ from the sentence (as the model's
    vocabulary reads it) in bold."""
    tokens = list(rewrite) if level == "char" else rewrite.split(" ")
    if len(tokens) != len(read):
        return html.escape(rewrite)
    joiner = "" if level == "char" else " "
    return joiner.join(html.escape(t) if t == seen else f"<b>{html.escape(t)}</b>"
                       for t, (_, seen, _) in zip(tokens, read, strict=True))


def margin_text(value: float) -> str:
    """A margin to 3 significant digits, never a signed zero such as ``-0.00``."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    shown = f"{value:.3g}"
    return "0" if float(shown) == 0 else shown


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }}
th {{ background: #f0f0f0; }}
.summary {{ display: flex; gap: 2em; align-items: flex-start; }}
.legend, .note, .key {{ max-width: 60em; font-size: 90%; color: #444; }}
.may {{ background: #fff1a8; border-bottom: 1px dotted #a08000; }}
.text {{ white-space: pre-wrap; max-width: 40em; }}
.certified {{ color: #176b1f; }} .enumerated {{ color: #2a5599; }}
.flipped {{ color: #b01c1c; }} .open {{ color: #7a5a00; }}
.searched {{ color: #2a5599; }} .timeout {{ color: #7a5a00; }}
.rewrite {{ color: #555; font-size: 90%; }}
.wrong {{ color: #b01c1c; font-weight: bold; }}
svg.plot text {{ font-size: 11px; fill: #333; }}
svg.plot .grid {{ stroke: #ddd; }}
svg.plot polyline {{ fill: none; stroke-width: 2; }}
svg.plot polyline.verified, svg.plot circle.verified {{ stroke: #176b1f; fill: #176b1f; }}
svg.plot polyline.attack {{ stroke: #b01c1c; stroke-dasharray: 5 3; fill: none; }}
svg.plot circle.attack {{ fill: #b01c1c; }}
svg.plot polyline.verified {{ fill: none; }}
.plotkey {{ font-size: 85%; }} .plotkey .verified {{ color: #176b1f; }}
.plotkey .attack {{ color: #b01c1c; }}
</style></head><body>"""

# Shows the rows whose data-b<key> attribute (the select "budget" picks the key) is the
# outcome the select "outcome" picks.
FILTER_SCRIPT = """<script>
function filterRows() {
  var outcome = document.getElementById("outcome").value;
  var budget = document.getElementById("budget").value;
  var rows = document.querySelectorAll("#sentences tbody tr"), shown = 0;
  rows.forEach(function (row) {
    var hide = outcome !== "all" && row.getAttribute("data-b" + budget) !== outcome;
    row.style.display = hide ? "none" : "";
    if (!hide) shown += 1;
  });
  document.getElementById("shown").textContent = shown + " of " + rows.length + " rows";
}
document.getElementById("outcome").addEventListener("change", filterRows);
document.getElementById("budget").addEventListener("change", filterRows);
filterRows();
</script>"""
