"""Exhaustive checks: every sentence of a small set, run through the model in batches.

Rewrites are built from the same tensors the bounds use (the ``EncodedBatch``): a rewrite is a
choice of at most ``budget`` positions and one candidate at each, listed by
``robusttext.perturb.counting.enumerate_edits``. Certify and training's evaluation both check
through ``exhaustive_check``. Rows from several sentences
share forward passes; the result is, per sentence, the lowest margin and whether some rewrite is
misclassified, for each number of changes up to the sentence's budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from robusttext.certify.margins import margins, predict
from robusttext.perturb.counting import count_sentences, enumerate_edits
from robusttext.perturb.encoded import EncodedBatch


def set_sizes(batch: EncodedBatch, budget: int | None) -> list[int]:
    """Exact number of sentences (the original included) in each sentence's set."""
    counts = batch.candidate_mask.sum(-1).tolist()  # [batch][length]
    return [count_sentences(row, budget) for row in counts]


def rewrites(
    token_ids: torch.Tensor, candidate_ids: torch.Tensor, candidate_mask: torch.Tensor,
    budget: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rewrite of one sentence: ``(rows [n, length] long, changes [n] long)``.

    ``token_ids [length]``, ``candidate_ids``/``candidate_mask [length, K]``. Rows come with 0
    changes first (the sentence itself), then 1, 2, ... up to ``budget`` (None: no limit).
    """
    options = [candidate_ids[p][candidate_mask[p]].tolist() for p in range(len(token_ids))]
    edits = list(enumerate_edits(options, budget))
    n = len(edits)
    rows = token_ids[None, :].repeat(n, 1)
    changes = torch.tensor([len(e) for e in edits], dtype=torch.long, device=token_ids.device)
    flat = [(i, p, t) for i, edit in enumerate(edits) for p, t in edit]
    if flat:
        index = torch.tensor(flat, dtype=torch.long, device=token_ids.device)
        rows[index[:, 0], index[:, 1]] = index[:, 2]
    return rows, changes


def default_chunk(device: torch.device | str) -> int:
    """Rows per forward pass of the enumeration: 256 on the CPU, 4096 on an accelerator.

    On the CPU, larger chunks spend their time allocating memory: enumerating the 102,288
    rewrites of the demo sentences with the shipped BiLSTM took 15 s of user and 14 s of system
    time at 4096 rows, 13 s and 0.4 s at 256 (``bench/archive/certify_main_results.md``).
    """
    return 256 if torch.device(device).type == "cpu" else 4096


def exhaustive_check(
    model: nn.Module, batch: EncodedBatch, labels: torch.Tensor, plan: dict[int, int | None],
    levels: int, chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate every rewrite of the sentences named in ``plan``.

    ``plan``: sentence index -> the budget to enumerate its set at (None: no limit); sentences
    not in ``plan`` are skipped. ``levels``: how many change counts to report (0 .. levels - 1).

    Returns ``(lowest_margin, flipped)``, each ``[batch, levels]``: over the rewrites with at most
    ``d`` changes, the lowest margin of the label (+inf where not enumerated) and whether one is
    misclassified. Entries for ``d`` above a sentence's budget repeat its value at the budget.
    """
    lowest, flipped, _ = enumerate_sets(model, batch, labels, dict(sorted(plan.items())),
                                        levels, chunk)
    return lowest, flipped


def enumerate_sets(
    model: nn.Module, batch: EncodedBatch, labels: torch.Tensor, plan: dict[int, int | None],
    levels: int, chunk: int | None = None, deadline: float | None = None,
    on_sentence: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``exhaustive_check`` in the order of ``plan``, stopping at a time budget.

    ``deadline``: a ``time.perf_counter()`` value; once it has passed, no further sentence is
    started (the first sentence of ``plan`` always is, and a started sentence is finished).
    ``on_sentence(k)`` is called as the ``k``-th sentence (1-based) starts. Returns
    ``(lowest_margin, flipped, done)``, ``done`` the indices enumerated whole; the rows of the
    others are as if they were not in ``plan``.
    """
    device = batch.token_ids.device
    chunk = chunk or default_chunk(device)
    b = len(batch)
    lowest = torch.full((b, levels), float("inf"), device=device)
    flipped = torch.zeros(b, levels, dtype=torch.bool, device=device)
    pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    pending_rows = 0
    done: list[int] = []

    def flush():
        nonlocal pending, pending_rows
        if not pending:
            return
        rows = torch.cat([r for _, r, _ in pending]).to(device)
        owner = torch.cat([torch.full((len(r),), i) for i, r, _ in pending]).to(device)
        changes = torch.cat([c for _, _, c in pending]).clamp(max=levels - 1).to(device)
        logits = predict(model, rows, batch.mask[owner], chunk)
        m = margins(logits, labels[owner]).to(lowest.dtype)
        wrong = (logits.argmax(1) != labels[owner])
        slot = owner * levels + changes
        lowest.view(-1).scatter_reduce_(0, slot, m, "amin")
        flipped.view(-1).scatter_reduce_(0, slot, wrong, "amax")
        pending, pending_rows = [], 0

    host = batch.to("cpu")  # rewrites are built on the host, evaluated on the device
    for i, budget in plan.items():
        if done and deadline is not None and time.perf_counter() > deadline:
            break
        if on_sentence is not None:
            on_sentence(len(done) + 1)
        rows, changes = rewrites(host.token_ids[i], host.candidate_ids[i],
                                 host.candidate_mask[i], budget)
        pending.append((i, rows, changes))
        pending_rows += len(rows)
        done.append(i)
        if pending_rows >= chunk:
            flush()
    flush()
    # At most d changes: running minimum / any over the change counts.
    return (torch.cummin(lowest, 1).values, torch.cummax(flipped.int(), 1).values.bool(),
            done)


def flipping_rewrite(
    model: nn.Module, batch: EncodedBatch, index: int, label: int, budget: int | None,
    chunk: int | None = None,
) -> torch.Tensor | None:
    """A misclassified rewrite of sentence ``index`` at ``budget`` (the one with the lowest
    margin of ``label``), ``[length]`` token ids; None when every rewrite is classified
    ``label``. Enumerates the whole set: call it on small sets only."""
    host = batch.to("cpu")
    rows, _ = rewrites(host.token_ids[index], host.candidate_ids[index],
                       host.candidate_mask[index], budget)
    device = batch.token_ids.device
    rows = rows.to(device)
    logits = predict(model, rows, batch.mask[index][None].expand(len(rows), -1),
                     chunk or default_chunk(device))
    labels = torch.full((len(rows),), label, device=device)
    m = margins(logits, labels).masked_fill(logits.argmax(1) == labels, float("inf"))
    best = int(m.argmin())
    return rows[best].cpu() if torch.isfinite(m[best]) else None
