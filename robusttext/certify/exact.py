"""Complete verification of a text model over a substitution set, by branch and bound.

A *sub-problem* of a sentence's set is the set restricted per position and re-budgeted: the
centre ``ids [length]`` (the sentence with the substitutions committed so far), which
candidates each position may still take (``allowed [length, candidates]``, none where the
position is decided, kept or replaced) and the changes left (``budget``). Splitting a
sub-problem on position ``p`` gives disjoint children whose union is exactly the parent:

- ``p`` kept: ``allowed[p]`` cleared, the same budget;
- ``p`` replaced by candidate ``c`` (one child per allowed candidate): the centre takes ``c``
  at ``p``, ``allowed[p]`` cleared, one change less.

For the CNNs (``ConvBody``) each root is first decided by its exact lowest margin, a dynamic
programme over the windows (``robusttext.certify.window_dp``); the branch and bound takes
what that leaves (a margin within float rounding of zero, or a state too large).

Every child has the form of a substitution set again (a centre, candidates per position, a
budget), so it is bounded by the same incomplete method that certify uses (``budget-ibp``
where the body supports it, else CROWN-IBP, or the method named), all open sub-problems of a
round batched together, grouped by budget, across sentences and budgets. Per round:

1. a sub-problem with at most ``leaf_size`` sentences (one sentence at budget 0) is run
   through the model rewrite by rewrite (``robusttext.perturb.counting.enumerate_edits``);
2. every other one's centre is run through the model (a member of the set: a misclassified
   centre is a counterexample) with the gradient of its margin, and bounded: a positive lower
   bound on every margin proves the sub-problem;
3. an open one is split on the position whose best substitution lowers the margin most by the
   first-order estimate ``grad . (e_c - e_p)`` (the gains the attack ranks by), its children
   pushed so that the most harmful substitution is searched first (a depth-first search that
   also acts as the greedy attack on the open sub-problems).

A sentence is certified when no sub-problem of it is left open, has a counterexample when a
rewrite in its set is misclassified (the rewrite is returned, and it lies in the set by
construction), and times out when its share of the search time passes ``time_limit``. Sound
by construction: a sub-problem is dropped only when its bound proves it or its rewrites were
all run through the model, and the children of a split cover the parent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from robusttext.bounds.specs import margin_lower_bounds
from robusttext.certify.margins import margins, predict
from robusttext.certify.window_dp import supports_window_dp, window_minima
from robusttext.errors import RobustTextError
from robusttext.methods import EXACT_METHOD, EXACT_TIME_LIMIT, BoundSettings, bound_settings
from robusttext.perturb.counting import enumerate_edits
from robusttext.perturb.encoded import EncodedBatch
from robusttext.text.bounds import batch_problem, check_method

CERTIFIED, COUNTEREXAMPLE, TIMEOUT = "certified", "counterexample", "timeout"
DEFAULT_TIME_LIMIT = EXACT_TIME_LIMIT  # declared with the method names (robusttext.methods)
DEFAULT_LEAF_SIZE = 16
DEFAULT_ROUND_SIZE = 256
DP_MARGIN = 1e-4  # a CNN's exact lowest margin above this certifies (float rounding below it)


@dataclass
class ExactAnswer:
    """The exact answer for one sentence at one budget.

    status:  ``certified`` (every rewrite is classified as the label), ``counterexample``
             (``rewrite`` is misclassified) or ``timeout`` (undecided within the time limit).
    rewrite: ``[length]`` token ids of a misclassified rewrite (None unless counterexample).
    seconds: the search time charged to this sentence (its share of each batched round).
    nodes:   sub-problems bounded; ``rewrites``: sentences run through the model.
    """

    status: str
    rewrite: torch.Tensor | None
    seconds: float
    nodes: int
    rewrites: int


def exact_search(
    model: nn.Module,
    batch: EncodedBatch,
    labels: torch.Tensor,
    roots: list[tuple[int, int | None]],
    method: str | BoundSettings,
    relaxation: str | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    leaf_size: int = DEFAULT_LEAF_SIZE,
    round_size: int = DEFAULT_ROUND_SIZE,
    alpha_steps: int | None = None,
    classes: int | None = None,
) -> list[ExactAnswer]:
    """Decide each root exactly (see the module docstring); one answer per root, in order.

    ``roots``: ``(row of batch, budget)`` pairs (None: any number of changes); ``labels``
    ``[len(batch)]``; ``method``: the incomplete bound, a ``BoundSettings`` (its method one of
    ``TEXT_METHODS``, resolved; its relaxation and alpha steps) or a method name with
    ``relaxation`` (None: ``exact``) and ``alpha_steps`` beside it; ``time_limit``: seconds
    per root (its share of the batched rounds; not the settings' ``exact_time_limit``, which is
    certify's to pass); ``leaf_size``: sub-problems with at most this many sentences are run
    through the model instead of bounded; ``round_size``: sub-problems per batched round.
    """
    bound = bound_settings(method, relaxation=relaxation, alpha_steps=alpha_steps)
    check_method(bound.method)
    for name, value, least in (("leaf_size", leaf_size, 1), ("round_size", round_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise RobustTextError(f"{name} must be an integer >= {least}, got {value!r}")
    check_time_limit(time_limit)
    search = _Search(model, batch, labels, roots, bound, leaf_size, round_size, classes)
    return search.run(float(time_limit))


def check_time_limit(value) -> float:
    """``value`` as seconds if it is a number > 0, else RobustTextError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise RobustTextError("the exact search's time limit must be a number of seconds > 0, "
                              f"got {value!r}")
    return float(value)


class _Search:
    """The frontier of every root's open sub-problems, as a stack of tensors: ``owner [n]``
    (root index), ``ids [n, length]``, ``allowed [n, length, candidates]``, ``budget [n]``."""

    def __init__(self, model, batch, labels, roots, bound: BoundSettings, leaf_size,
                 round_size, classes):
        self.model, self.batch, self.bound = model, batch, bound
        self.leaf_size, self.round_size = leaf_size, round_size
        device = batch.token_ids.device
        self.device = device
        self.row = torch.tensor([r for r, _ in roots], dtype=torch.long, device=device)
        self.labels = labels.to(device)[self.row]  # per root
        changeable = batch.candidate_mask.any(-1).sum(1).tolist()
        budgets = [changeable[r] if b is None else min(b, changeable[r]) for r, b in roots]
        self.owner = torch.arange(len(roots), device=device)
        self.ids = batch.token_ids[self.row].clone()
        self.allowed = batch.candidate_mask[self.row].clone()
        self.budget = torch.tensor(budgets, dtype=torch.long, device=device)
        self.root_budget = budgets  # per root (the frontier's ``budget`` is per sub-problem)
        n = len(roots)
        self.status = [None] * n
        self.rewrite: list[torch.Tensor | None] = [None] * n
        self.seconds = [0.0] * n
        self.nodes = [0] * n
        self.rewrites = [0] * n
        self.classes = classes

    def run(self, time_limit: float) -> list[ExactAnswer]:
        if supports_window_dp(self.model.body):
            self._window_pass()
            self._drop_decided()
        while len(self.owner):
            take = min(self.round_size, len(self.owner))
            # the top of the stack: the most recently pushed (deepest) sub-problems
            part = [t[-take:] for t in (self.owner, self.ids, self.allowed, self.budget)]
            self.owner, self.ids, self.allowed, self.budget = (
                t[:-take] for t in (self.owner, self.ids, self.allowed, self.budget))
            start = time.perf_counter()
            children = self._round(*part)
            elapsed = time.perf_counter() - start
            counts = torch.bincount(part[0], minlength=len(self.status)).tolist()
            for q, c in enumerate(counts):
                if c:
                    self.seconds[q] += elapsed * c / take
                    if self.status[q] is None and self.seconds[q] > time_limit:
                        self.status[q] = TIMEOUT
            if children is not None:
                self.owner, self.ids, self.allowed, self.budget = (
                    torch.cat([a, b]) for a, b in zip(
                        (self.owner, self.ids, self.allowed, self.budget), children))
            self._drop_decided()
        return [ExactAnswer(s or CERTIFIED, r, t, n, w) for s, r, t, n, w in zip(
            self.status, self.rewrite, self.seconds, self.nodes, self.rewrites)]

    def _window_pass(self) -> None:
        """Decide each root of a CNN by its exact lowest margin (``window_dp``, one programme
        per sentence for all its budgets): certified when it is above ``DP_MARGIN``, a
        counterexample when the rewrite attaining it is misclassified by the model; anything
        else is left to the branch and bound."""
        body, embedding = self.model.body, self.model.embedding
        by_row: dict[int, list[int]] = {}
        for q in range(len(self.status)):
            by_row.setdefault(int(self.row[q]), []).append(q)
        for r, roots in by_row.items():
            start = time.perf_counter()
            most = max(self.root_budget[q] for q in roots)
            found = window_minima(body, embedding, self.ids[roots[0]], self.batch.mask[r],
                                  self.batch.candidate_ids[r], self.allowed[roots[0]], most,
                                  int(self.labels[roots[0]]))
            for q in roots if found is not None else ():
                if self.status[q] is not None:
                    continue
                lowest, rewrite = found[self.root_budget[q]]
                self.rewrites[q] += 1
                if lowest > DP_MARGIN:
                    self.status[q] = CERTIFIED
                else:
                    logits = predict(self.model, rewrite[None], self.batch.mask[r][None])
                    if int(logits.argmax(1)) != int(self.labels[q]):
                        self._found(q, rewrite)
            elapsed = time.perf_counter() - start
            for q in roots:
                self.seconds[q] += elapsed / len(roots)

    def _drop_decided(self) -> None:
        decided = torch.tensor([s is not None for s in self.status], device=self.device)
        keep = ~decided[self.owner]
        if not bool(keep.all()):
            self.owner, self.ids, self.allowed, self.budget = (
                t[keep] for t in (self.owner, self.ids, self.allowed, self.budget))

    def _found(self, q: int, rewrite: torch.Tensor) -> None:
        """Root ``q`` has the misclassified ``rewrite``; so has every root of the same sentence
        and label with at least its budget (the rewrite lies in their sets too)."""
        rewrite = rewrite.detach().cpu()
        for other in range(len(self.status)):
            if (self.status[other] is None and int(self.row[other]) == int(self.row[q])
                    and int(self.labels[other]) == int(self.labels[q])
                    and self.root_budget[other] >= self.root_budget[q]):
                self.status[other], self.rewrite[other] = COUNTEREXAMPLE, rewrite

    def _round(self, owner, ids, allowed, budget):
        """Process one batch of sub-problems; returns their children (or None)."""
        size = _set_sizes(allowed, budget)
        leaf = size <= self.leaf_size
        if bool(leaf.any()):
            self._enumerate(owner[leaf], ids[leaf], allowed[leaf], budget[leaf])
        inner = ~leaf
        if self.status.count(None) < len(self.status):  # skip roots decided by the leaves
            decided = torch.tensor([s is not None for s in self.status], device=self.device)
            inner &= ~decided[owner]
        if not bool(inner.any()):
            return None
        owner, ids, allowed, budget = owner[inner], ids[inner], allowed[inner], budget[inner]
        rows = self.row[owner]
        mask = self.batch.mask[rows]
        candidates = self.batch.candidate_ids[rows]
        labels = self.labels[owner]
        logits, scores = self._centres(ids, mask, candidates, allowed, labels)
        for i in (logits.argmax(1) != labels).nonzero().flatten().tolist():
            self._found(int(owner[i]), ids[i])
        lower = torch.full((len(owner),), float("-inf"), device=self.device)
        for b in budget.unique().tolist():
            at = (budget == b).nonzero().flatten()
            sub = EncodedBatch(ids[at], mask[at], candidates[at], allowed[at], tokens=[])
            with torch.no_grad():
                problem = batch_problem(self.model, sub, labels[at], int(b),
                                        self.bound.relaxation, classes=logits.shape[1])
                lower[at] = margin_lower_bounds(problem, self.bound).amin(1).to(lower)
        for q, c in enumerate(torch.bincount(owner, minlength=len(self.nodes)).tolist()):
            self.nodes[q] += c
        decided = torch.tensor([s is not None for s in self.status], device=self.device)
        open_ = ~(lower > 0) & ~decided[owner]
        if not bool(open_.any()):
            return None
        return _split(owner[open_], ids[open_], allowed[open_], budget[open_],
                      candidates[open_], scores[open_])

    def _centres(self, ids, mask, candidates, allowed, labels):
        """Logits of the centres ``[n, classes]`` and, per position and candidate, the
        first-order change of the margin ``grad . (e_c - e_p)`` ``[n, length, candidates]``
        (+inf where not allowed)."""
        embedding = self.model.embedding
        n, length, k = allowed.shape
        per = max(1, (1 << 22) // max(1, length * k * embedding.weight.shape[1]))
        logits, scores = [], []
        for i in range(0, n, per):
            with torch.enable_grad():
                emb = embedding(ids[i:i + per]).detach().requires_grad_()
                out = self.model.body(emb, mask[i:i + per])
                (grad,) = torch.autograd.grad(margins(out, labels[i:i + per]).sum(), emb)
            logits.append(out.detach())
            cand = embedding(candidates[i:i + per]).detach()  # [m, length, k, dim]
            s = (torch.einsum("mld,mlkd->mlk", grad, cand)
                 - (grad * emb.detach()).sum(-1, keepdim=True))
            scores.append(s.masked_fill(~allowed[i:i + per], float("inf")))
        return torch.cat(logits), torch.cat(scores)

    def _enumerate(self, owner, ids, allowed, budget) -> None:
        """Run every rewrite of these small sub-problems through the model."""
        host_ids, host_allowed = ids.cpu(), allowed.cpu()
        rows = self.row[owner]
        host_cands = self.batch.candidate_ids[rows].cpu()
        listed, who = [], []
        for i in range(len(owner)):
            options = [host_cands[i, p][host_allowed[i, p]].tolist()
                       for p in range(host_ids.shape[1])]
            for edit in enumerate_edits(options, int(budget[i])):
                row = host_ids[i].clone()
                for p, t in edit:
                    row[p] = t
                listed.append(row)
                who.append(i)
        sentences = torch.stack(listed).to(self.device)
        who_t = torch.tensor(who, device=self.device)
        logits = predict(self.model, sentences, self.batch.mask[rows][who_t])
        wrong = logits.argmax(1) != self.labels[owner][who_t]
        for q, c in enumerate(torch.bincount(owner[who_t], minlength=len(self.rewrites))
                              .tolist()):
            self.rewrites[q] += c
        for j in wrong.nonzero().flatten().tolist():
            self._found(int(owner[who[j]]), sentences[j])


def _set_sizes(allowed: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """``[n]`` float64: sentences in each sub-problem, ``sum_{j <= budget} e_j(c_1 .. c_L)``
    with ``c_p`` the candidates allowed at ``p`` (elementary symmetric polynomials, built one
    position at a time; float64 keeps every count up to 2^53 exact and orders the rest)."""
    counts = allowed.sum(-1).to(torch.float64)  # [n, length]
    depth = int(budget.max()) if len(budget) else 0
    e = torch.zeros(len(budget), depth + 1, dtype=torch.float64, device=allowed.device)
    e[:, 0] = 1
    for p in counts.any(0).nonzero().flatten().tolist():
        e = torch.cat([e[:, :1], e[:, 1:] + e[:, :-1] * counts[:, p:p + 1]], 1)
    keep = torch.arange(depth + 1, device=allowed.device)[None] <= budget[:, None]
    return (e * keep).sum(1)


def _split(owner, ids, allowed, budget, candidates, scores):
    """Children of each sub-problem split on its most harmful position (lowest score):
    ``p`` kept, then ``p`` replaced by each allowed candidate, the most harmful last (so it
    is popped first). Returns ``(owner, ids, allowed, budget)`` of the children."""
    n, length, k = allowed.shape
    best = scores.amin(2)  # [n, length]
    p = best.argmin(1)  # [n]: changeable positions have finite scores
    at = torch.arange(n, device=ids.device)
    options = allowed[at, p]  # [n, k]
    order = scores[at, p].argsort(1, descending=True)  # least harmful first
    kept_allowed = allowed.clone()
    kept_allowed[at, p] = False
    out_owner, out_ids, out_allowed, out_budget = [owner], [ids], [kept_allowed], [budget]
    for j in range(k):
        c = order[:, j]
        real = options[at, c]
        if not bool(real.any()):
            continue
        new_ids = ids[real].clone()
        new_ids[torch.arange(int(real.sum()), device=ids.device), p[real]] = \
            candidates[at, p, c][real]
        out_owner.append(owner[real])
        out_ids.append(new_ids)
        out_allowed.append(kept_allowed[real])
        out_budget.append(budget[real] - 1)
    # Order within the pushed block: per sub-problem the kept child first, then its
    # replacements from least to most harmful (children of several parents interleave by
    # block; each block's last rows are the most harmful replacements).
    return tuple(torch.cat(t) for t in (out_owner, out_ids, out_allowed, out_budget))


def settle(run, batches: list[list[int]], examples, leaf_size: int = DEFAULT_LEAF_SIZE,
           round_size: int = DEFAULT_ROUND_SIZE) -> None:
    """Give each of certify's results its exact answer, batch by batch (``batches``: the
    sentence indices of certify's batches, so each sentence keeps its padding).

    ``run``: certify's run (model, bound settings, results so far; the search's time limit
    is the settings' ``exact_time_limit``; with several methods, ``exact``'s bounds and
    certificates, its answer also under ``by_method["exact"]``). A certified result is certified, a
    flipped one (the attack, or the sentence itself) has its counterexample, and the search
    decides the rest, every budget of the batch in one search (a counterexample found at one
    budget serves the higher ones). Every answer passes ``check_exact``."""
    from robusttext.certify.soundness import check_exact

    bound = run.bounds.get(EXACT_METHOD, run.bound)  # auto's bounds, resolved
    by_key = {(r.index, r.budget): r for r in run.results}

    def bounded(r) -> bool:  # certified by the bounds the search starts from
        return r.by_method[EXACT_METHOD]["certified"] if r.by_method else r.certified

    for chosen in batches:
        enc = run.encode(chosen)
        labels = torch.tensor([examples[i].label for i in chosen], device=run.device)
        roots = []
        for budget in run.budgets:
            for j, i in enumerate(chosen):
                r = by_key[(i, budget)]
                if bounded(r):
                    r.exact = CERTIFIED
                elif r.attacked or r.prediction != r.label:
                    r.exact = COUNTEREXAMPLE
                else:
                    roots.append((j, budget))
        if roots:
            run.stage(f"exact search, {len(roots)} sentences and budgets")
            answers = exact_search(run.model, enc, labels, roots, bound,
                                   time_limit=bound.exact_time_limit, leaf_size=leaf_size,
                                   round_size=round_size, classes=run.classes)
            for (j, budget), answer in zip(roots, answers):
                r = by_key[(chosen[j], budget)]
                r.exact, r.exact_seconds = answer.status, answer.seconds
                if answer.status == COUNTEREXAMPLE and r.rewrite is None:
                    r.rewrite = run._rewrite(r.text, answer.rewrite.cpu())
        for budget in run.budgets:
            for i in chosen:
                r = by_key[(i, budget)]
                if r.by_method:  # several methods: the search's answer under its name too
                    r.by_method[EXACT_METHOD].update(exact=r.exact,
                                                     exact_seconds=r.exact_seconds)
                for certified in {bounded(r), r.certified}:
                    check_exact(text=r.text, origin=r.origin, budget=budget, exact=r.exact,
                                certified=certified, attacked=r.attacked,
                                exhaustive=r.exhaustive)
