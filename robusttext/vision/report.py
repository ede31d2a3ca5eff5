"""The report of ``robusttext vision certify``, made of text's report pieces
(``robusttext.certify.report``, ``robusttext.certify.html``): a table with a legend, JSON (the
accuracies as counts over the total, as text's), a self-contained HTML page showing every
example's image beside the counterexample PGD found in its ball and the outcome per bound
method, and a plot.

>>> result = evaluate(model, data, eps, methods=("ibp", "crown-ibp"), keep_counterexamples=True)
>>> print(format_table(result))
>>> write_html("report.html", result, data, "fashion-mnist", "fmnist-dm-small")
"""

from __future__ import annotations

import base64
import html
import math
import struct
import zlib
from pathlib import Path

import torch

from robusttext.certify.html import (
    FILTER_SCRIPT,
    GLOSSARY,
    glossary,
    margin_text,
    page_foot,
    page_head,
    write_page,
)
from robusttext.certify.report import aligned_table, pct, save_figure, use_agg
from robusttext.vision.evaluate import Evaluation, share

LEGEND = ("legend: verified by a method (proven for every image in the L-infinity ball, "
          "clipped to [0, 1], by that bound method) <= under attack (correct on the image and "
          "on the point PGD found in its ball) <= clean; attack success: the share of "
          "correctly classified images PGD flips")

# What the page's words mean for images (the bound methods' entries are text's GLOSSARY).
IMAGE_GLOSSARY = {
    "margin": "margin: the logit of the label minus the highest other logit; the certified "
              "margin is a lower bound on it over every image in the ball, so a positive one "
              "proves the label cannot change (shown to 3 significant digits)",
    "ball": "ball: every image within eps of the example in each pixel (the L-infinity "
            "ball), pixels kept in [0, 1]",
    "pgd": "PGD counterexample: the misclassified image that projected gradient descent "
           "found in the ball (Madry et al. 2018), shown beside the example",
}

# An image's outcome by one method (the keys and colours of text's page).
OUTCOMES = {
    "certified": "certified: proven for every image in the ball",
    "flipped": "flipped: PGD found a misclassified image in the ball (or the image itself is "
               "misclassified)",
    "open": "open: neither proven nor broken",
}

# The examples shown on the page: a page of every image of a 10,000-image split would be tens
# of megabytes.
HTML_EXAMPLES = 1000


def format_table(result: Evaluation, seconds: float | None = None) -> str:
    """One row for the radius: images, clean accuracy, accuracy under attack, attack success,
    verified accuracy per method (and the seconds, when given); then the legend and a note
    when PGD left some examples unattacked or a certificate was contradicted."""
    header, row, notes = table(result, seconds)
    return "\n".join([*aligned_table(header, [row]), LEGEND, *notes])


def table(result: Evaluation, seconds: float | None = None) -> tuple[list, list, list]:
    """``(header, row, notes)`` of ``format_table`` (the page shows the same cells)."""
    metrics = result.metrics()
    methods = list(result.verified)
    header = ["eps", "images", "clean", "under attack", "attack success",
              *(f"verified {m}" for m in methods)]
    success = attack_success(result)
    row = [f"{result.eps:g}", str(metrics["n"]), pct(metrics["clean_accuracy"]),
           pct(metrics["pgd_accuracy"]), "-" if success is None else pct(success),
           *(pct(share(result.verified[m])) for m in methods)]
    if seconds is not None:
        header.append("seconds")
        row.append(f"{seconds:.1f}")
    notes = []
    correct = int(result.correct.sum())
    if 0 <= result.pgd_attacked < correct:
        notes.append(f"note: PGD ({result.pgd_steps} steps, {result.pgd_restarts} restart(s)) "
                     f"ran on {result.pgd_attacked} of the {correct} correctly classified "
                     "images (--attack-verified-fraction); the others count as robust under "
                     "attack")
    if metrics["soundness_violations"]:
        notes.append(f"SOUNDNESS VIOLATION: {metrics['soundness_violations']} image(s) "
                     "certified yet misclassified or flipped by PGD")
    return header, row, notes


def attack_success(result: Evaluation) -> float | None:
    """The share of correctly classified images PGD flips (None when none is correct)."""
    correct = int(result.correct.sum())
    flipped = int((result.correct & ~result.pgd_robust).sum())
    return flipped / correct if correct else None


def report_json(result: Evaluation, extra: dict | None = None) -> dict:
    """The metrics (``Evaluation.metrics``), the attack success rate, ``extra`` (the seconds,
    the checkpoint) and one entry per example: label, prediction, whether PGD ran on it and
    flipped it, and per method whether it is verified and its certified margin."""
    out = {**result.metrics(), "attack_success_rate": attack_success(result), **(extra or {})}
    out["examples"] = [_example_json(result, i) for i in range(int(result.correct.numel()))]
    return out


def _example_json(result: Evaluation, i: int) -> dict:
    return {
        "index": i,
        "label": int(result.labels[i]),
        "prediction": int(result.prediction[i]),
        "pgd_flipped": bool(result.correct[i] and not result.pgd_robust[i]),
        "verified": {m: bool(v[i]) for m, v in result.verified.items()},
        "margin_lower": {m: _finite(float(v[i])) for m, v in result.margins.items()},
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def outcome(result: Evaluation, i: int, method: str) -> str:
    """One key of OUTCOMES for example ``i`` by ``method``: certified, flipped (the image
    itself or PGD's point misclassified) or open."""
    if bool(result.verified[method][i]):
        return "certified"
    if not bool(result.pgd_robust[i]):
        return "flipped"
    return "open"


def png_data_uri(image: torch.Tensor) -> str:
    """``image`` ``[C, H, W]`` in [0, 1] (C 1: grey, 3: colour) as a ``data:`` URI of a PNG
    file (8 bits per channel), written with zlib alone."""
    channels, height, width = image.shape
    if channels not in (1, 3):
        raise ValueError(f"a PNG image needs 1 or 3 channels, got {channels}")
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    rows = pixels.permute(1, 2, 0).reshape(height, width * channels)
    raw = b"".join(b"\x00" + bytes(row.tolist()) for row in rows)  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
           + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render(result: Evaluation, images: torch.Tensor, source: str, model: str,
           command: str | None = None, seconds: float | None = None) -> str:
    """The page as a string: ``images`` ``[N, C, H, W]`` are the examples of ``result``;
    ``command``: the command line, shown with the version at the foot of the page."""
    methods = list(result.verified)
    parts = [page_head(f"robusttext vision certify: {model} on {source}", _STYLE),
             f"<h1>robusttext vision certify</h1><p>model: <code>{html.escape(model)}</code>; "
             f"data: <code>{html.escape(source)}</code>; eps {result.eps:g}</p>",
             glossary([*IMAGE_GLOSSARY.values(), *(GLOSSARY[m] for m in methods
                                                  if m in GLOSSARY)]),
             _summary(result, seconds)]
    method_options = "".join(f'<option value="{m}">{m}</option>' for m in methods)
    outcome_options = "".join(f'<option value="{k}">{html.escape(OUTCOMES[k])}</option>'
                              for k in OUTCOMES)
    n = int(result.correct.numel())
    shown = min(n, HTML_EXAMPLES)
    parts.append(
        '<h2>Images</h2><p class="filters">show <select id="outcome"><option value="all">'
        f'every outcome</option>{outcome_options}</select> by method <select id="budget">'
        f'{method_options}</select> <span id="shown"></span></p>'
        + ("" if shown == n else f"<p class='note'>the first {shown} of {n} images are "
                                 "shown (--limit picks fewer)</p>"))
    parts.append('<table id="sentences"><thead><tr><th>#</th><th>label / prediction</th>'
                 '<th>image</th><th>PGD counterexample</th><th>per method</th></tr></thead>'
                 '<tbody>')
    parts += [_row(result, images, i, methods) for i in range(shown)]
    parts += ["</tbody></table>", FILTER_SCRIPT, page_foot(command)]
    return "\n".join(parts)


def write_html(path: str | Path, result: Evaluation, images: torch.Tensor, source: str,
               model: str, command: str | None = None, seconds: float | None = None) -> Path:
    """Write the page of ``render`` to ``path``."""
    return write_page(path, render(result, images, source, model, command, seconds))


def _summary(result: Evaluation, seconds: float | None) -> str:
    header, row, notes = table(result, seconds)
    notes_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    return ("<section><div class='summary'><table><thead><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in header)
            + "</tr></thead><tbody><tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
            + f"</tr></tbody></table></div><p class='legend'>{html.escape(LEGEND)}</p>"
            f"{notes_html}</section>")


def _row(result: Evaluation, images: torch.Tensor, i: int, methods: list[str]) -> str:
    label, prediction = int(result.labels[i]), int(result.prediction[i])
    cells, data = [], []
    for method in methods:
        key = outcome(result, i, method)
        data.append(f'data-b{method}="{key}"')
        cells.append(f'<div class="{key}"><b>{html.escape(method)}</b>: '
                     f'{html.escape(OUTCOMES[key].split(":")[0])}, certified margin '
                     f'{margin_text(float(result.margins[method][i]))}</div>')
    found = result.counterexamples.get(i)
    if prediction != label:
        beside = "<span class='rewrite'>the image itself is misclassified</span>"
    elif found is not None:
        beside = f'<img src="{png_data_uri(found)}" alt="PGD counterexample {i}">'
    else:
        beside = "<span class='rewrite'>none found</span>"
    wrong = " wrong" if prediction != label else ""
    return (f'<tr {" ".join(data)}><td>{i}</td><td class="labels{wrong}">class {label} / '
            f'class {prediction}</td><td><img src="{png_data_uri(images[i])}" '
            f'alt="image {i}"></td><td>{beside}</td><td>{"".join(cells)}</td></tr>')


def plot(path: str | Path, result: Evaluation) -> Path:
    """A bar per figure of the table (clean, under attack, verified per method), written to
    ``path`` (needs matplotlib)."""
    use_agg()
    import matplotlib.pyplot as plt

    names = ["clean", "under attack", *(f"verified\n{m}" for m in result.verified)]
    values = [share(result.correct), share(result.pgd_robust),
              *(share(v) for v in result.verified.values())]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.5))
    ax.bar(range(len(names)), [100 * v for v in values],
           color=["C7", "C1", *(f"C{i % 10}" for i in range(len(result.verified)))])
    ax.set_xticks(list(range(len(names))))
    ax.set_xticklabels(names, fontsize="small")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"eps {result.eps:g}, {int(result.correct.numel())} images", fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


_STYLE = "td img { width: 84px; image-rendering: pixelated; }\n"
