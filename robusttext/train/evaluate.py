"""Clean, verified and (for small sets) exhaustively checked accuracy of a text model.

The candidates of a sentence do not depend on the budget, so each batch is encoded once and
bounded at every budget. The exhaustive check runs the model on every rewrite of a sentence at
the first budget (``robusttext.certify.exhaustive.exhaustive_check``, as certify does) when the
set holds at most ``enumerate_limit`` sentences.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from tqdm import tqdm

from robusttext.bounds.specs import margin_lower_bounds
from robusttext.certify.exhaustive import exhaustive_check, set_sizes
from robusttext.perturb import PerturbationSpace, Vocabulary
from robusttext.text.base import TextClassifier
from robusttext.text.bounds import batch_problem, pick_method, substitution_set
from robusttext.train.batches import batch_order, iterate_batches
from robusttext.train.data import Example


@torch.no_grad()
def evaluate(
    model: TextClassifier,
    vocab: Vocabulary,
    space: PerturbationSpace,
    examples: Sequence[Example],
    budgets: Sequence[int | None] = (1, 2, 3),
    method: str = "auto",
    batch_size: int = 64,
    enumerate_limit: int = 0,
    progress: bool = False,
) -> dict:
    """Accuracy figures on ``examples``.

    Returns ``{"examples": n, "method": bound method, "clean_accuracy": a,
    "verified_accuracy": {budget: a},
    "exhaustive": {"budget": b, "checked": m, "robust_accuracy": a, "unsound": u}}`` (budget
    keys as strings, ``"None"`` for no limit; ``exhaustive`` only with ``enumerate_limit``).
    ``robust_accuracy`` counts sentences whose every rewrite is classified correctly, among the
    ``checked`` ones; ``unsound`` counts verified sentences with a misclassified rewrite (must be
    0).
    """
    # auto: the method robusttext certify picks, so a training log's verified figure is the
    # one certify proves (and crown-ibp is CROWN-IBP alone, as certify bounds it).
    method = pick_method(method, model.body)
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros(len(examples), dtype=torch.bool)
    verified = {b: torch.zeros(len(examples), dtype=torch.bool) for b in budgets}
    checking = enumerate_limit > 0 and bool(budgets)
    checked = torch.zeros(len(examples), dtype=torch.bool)  # enumerated at budgets[0]
    robust = torch.zeros(len(examples), dtype=torch.bool)  # ... and no rewrite misclassified
    order = batch_order([0] * len(examples), batch_size, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        batches = iterate_batches(examples, space, vocab, order, device)
        for indices, batch, labels in tqdm(batches, total=len(order), desc="evaluate",
                                           disable=None if progress else True, leave=False):
            logits = model(batch.token_ids, batch.mask)
            right = (logits.argmax(1) == labels).cpu()
            correct[indices] = right
            subs = substitution_set(model, batch, budgets[0]) if budgets else None
            for b in budgets:
                lower = margin_lower_bounds(batch_problem(model, batch, labels, b,
                                                          classes=logits.shape[1], subs=subs),
                                            method)
                verified[b][indices] = right & (lower.amin(1) > 0).cpu()
            if checking:
                small = [j for j, size in enumerate(set_sizes(batch, budgets[0]))
                         if size <= enumerate_limit]
                _, flipped = exhaustive_check(model, batch, labels,
                                              {j: budgets[0] for j in small}, levels=1)
                rows = torch.tensor([indices[j] for j in small], dtype=torch.long)
                checked[rows] = True
                robust[rows] = ~flipped[small, 0].cpu()
    n = len(examples)
    result = {
        "examples": n,
        "method": method,
        "clean_accuracy": correct.double().mean().item(),
        "verified_accuracy": {str(b): v.double().mean().item() for b, v in verified.items()},
    }
    if checking:
        count = int(checked.sum())
        result["exhaustive"] = {
            "budget": budgets[0], "checked": count,
            "robust_accuracy": int(robust.sum()) / count if count else None,
            "unsound": int((verified[budgets[0]] & checked & ~robust).sum())}
    return result
