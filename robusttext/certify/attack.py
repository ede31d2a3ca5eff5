"""Beam search for a rewrite that flips the prediction, within the same space and budget.

The search changes one more position per step, using only the candidates of the
``EncodedBatch`` (so every rewrite it tries lies in the set the bounds cover). At each step it
ranks the single substitutions open to every beam state by a first-order estimate of how much
they lower the margin (the gradient of the margin with respect to the embeddings, dotted with
``e_candidate - e_current``), evaluates the best ``proposals`` of them exactly, and keeps the
``beam_width`` states with the lowest margins. ``beam_width=1`` is the greedy search;
``proposals=None`` evaluates every open substitution (no gradients), which with a beam as wide
as the set is an exhaustive breadth-first search.

All sentences of a batch are searched together; a sentence stops once it is flipped. One search
serves every budget up to ``max_budget``: the states after step ``d`` are those a search with
budget ``d`` would reach.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from robusttext.certify.margins import margins, predict
from robusttext.errors import RobustTextError
from robusttext.perturb.encoded import EncodedBatch


@dataclass
class AttackResult:
    """What a search found, per sentence and per budget ``d = 0 .. max_budget``.

    margins:  ``[batch, levels]`` the lowest margin of the label seen with at most ``d`` changes.
    flipped:  ``[batch, levels]`` bool, a rewrite with at most ``d`` changes is misclassified
              (level 0: the sentence itself).
    witness:  ``[batch, length]`` long, the first misclassified rewrite found (the sentence
              itself where none was found).
    witness_changes: ``[batch]`` long, positions changed in ``witness`` (-1: no flip found).
    seconds:  ``[levels]`` time spent on each step (level 0: the clean pass).
    """

    margins: torch.Tensor
    flipped: torch.Tensor
    witness: torch.Tensor
    witness_changes: torch.Tensor
    seconds: list[float]


def beam_attack(
    model: nn.Module,
    batch: EncodedBatch,
    labels: torch.Tensor,
    max_budget: int,
    beam_width: int = 4,
    proposals: int | None = 16,
    chunk: int = 4096,
) -> AttackResult:
    """Search each sentence's set for a misclassified rewrite (see the module docstring).

    ``model`` follows the text-model contract; ``labels`` ``[batch]``; ``max_budget`` >= 0;
    ``proposals``: substitutions evaluated exactly per sentence and step (None: all of them);
    ``chunk``: rows per forward pass.
    """
    if isinstance(max_budget, bool) or not isinstance(max_budget, int) or max_budget < 0:
        raise RobustTextError(f"max_budget must be an integer >= 0, got {max_budget!r}")
    if beam_width < 1:
        raise RobustTextError(f"beam_width must be at least 1, got {beam_width}")
    if proposals is not None and proposals < 1:
        raise RobustTextError(f"proposals must be at least 1 or None, got {proposals}")
    search = _BeamSearch(model, batch, labels, beam_width, proposals, chunk)
    for level in range(1, max_budget + 1):
        search.step(level)
    return search.result()


class _BeamSearch:
    """State of a batched beam search: ``ids [batch, beam, length]`` and which positions of each
    state are already changed."""

    def __init__(self, model, batch, labels, beam_width, proposals, chunk):
        start = time.perf_counter()
        self.model, self.batch, self.labels = model, batch, labels
        self.width, self.proposals, self.chunk = beam_width, proposals, chunk
        ids, mask = batch.token_ids, batch.mask
        b, length = ids.shape
        self.open_mask = batch.candidate_mask & (mask[:, :, None] > 0)  # [batch, length, K]
        logits = predict(model, ids, mask, chunk)
        clean = margins(logits, labels)
        flipped = logits.argmax(1) != labels
        self.ids = ids[:, None, :].repeat(1, beam_width, 1)  # [batch, beam, length]
        self.changed = torch.zeros(b, beam_width, length, dtype=torch.bool, device=ids.device)
        self.valid = torch.zeros(b, beam_width, dtype=torch.bool, device=ids.device)
        self.valid[:, 0] = True
        self.margins = [clean]
        self.flipped = [flipped]
        self.witness = ids.clone()
        self.witness_changes = torch.where(flipped, 0, -1)
        # Fixed random weights to hash rows [*, length] of ids when removing duplicate states.
        g = torch.Generator().manual_seed(0)
        self.hash_weights = torch.randint(1, 2**31 - 1, (length,), generator=g).to(ids.device)
        flipped.sum().item()
        self.seconds = [time.perf_counter() - start]

    def result(self) -> AttackResult:
        return AttackResult(torch.stack(self.margins, 1), torch.stack(self.flipped, 1),
                            self.witness, self.witness_changes, self.seconds)

    def step(self, level: int) -> None:
        start = time.perf_counter()
        margin, flipped = self.margins[-1].clone(), self.flipped[-1].clone()
        active = (~flipped & self.valid.any(1)).nonzero().squeeze(1)
        if len(active):
            self._expand(active, level, margin, flipped)
        self.margins.append(margin)
        self.flipped.append(flipped)
        flipped.sum().item()  # wait for the device before reading the clock
        self.seconds.append(time.perf_counter() - start)

    def _expand(self, a: torch.Tensor, level: int, margin, flipped) -> None:
        """One step for the sentences ``a`` (indices): new states, exact margins, next beam."""
        batch, labels = self.batch, self.labels[a]
        ids, changed, valid = self.ids[a], self.changed[a], self.valid[a]
        cand_ids, mask = batch.candidate_ids[a], batch.mask[a]
        n, width, length = ids.shape
        k = cand_ids.shape[2]
        # [n, beam, length, K]: substitutions open to each state.
        open_ = valid[:, :, None, None] & ~changed[..., None] & self.open_mask[a][:, None]
        most = int(open_.flatten(1).sum(1).max())
        if most == 0:
            self.valid[a] = False
            return
        take = most if self.proposals is None else min(self.proposals, most)
        if take < most:
            score = self._first_order(ids, cand_ids, mask, labels)
        else:
            score = torch.zeros(open_.shape, device=ids.device)
        score = score.masked_fill(~open_, float("inf")).flatten(1)
        top = score.topk(take, dim=1, largest=False)
        chosen = torch.isfinite(top.values)  # [n, take]
        w = top.indices // (length * k)
        p = top.indices // k % length
        c = top.indices % k
        rows = torch.arange(n, device=ids.device)[:, None]
        new_ids = ids[rows, w]  # [n, take, length]
        new_ids.scatter_(2, p[..., None], cand_ids[rows, p, c][..., None])
        new_changed = changed[rows, w]
        new_changed.scatter_(2, p[..., None], True)
        # Exact margins of the chosen states.
        flat = new_ids[chosen]
        logits = predict(self.model, flat, mask[:, None].expand(-1, take, -1)[chosen], self.chunk)
        row_labels = labels[:, None].expand(-1, take)[chosen]
        new_margin = torch.full((n, take), float("inf"), device=ids.device)
        new_margin[chosen] = margins(logits, row_labels).to(new_margin.dtype)
        new_flip = torch.zeros(n, take, dtype=torch.bool, device=ids.device)
        new_flip[chosen] = logits.argmax(1) != row_labels
        margin[a] = torch.minimum(margin[a], new_margin.amin(1).to(margin.dtype))
        hit = new_flip.any(1)
        if hit.any():
            first = new_flip.float().argmax(1)
            sentences = a[hit]
            self.witness[sentences] = new_ids[hit, first[hit]]
            self.witness_changes[sentences] = level
            flipped[sentences] = True
        # Next beam: the lowest margins among distinct states.
        new_margin = new_margin.masked_fill(_duplicates(new_ids, chosen, self.hash_weights),
                                            float("inf"))
        keep = new_margin.topk(min(width, take), dim=1, largest=False)
        pad = width - keep.indices.shape[1]
        index = torch.nn.functional.pad(keep.indices, (0, pad))
        kept = torch.nn.functional.pad(torch.isfinite(keep.values), (0, pad))
        self.ids[a] = new_ids[rows, index]
        self.changed[a] = new_changed[rows, index]
        self.valid[a] = kept

    def _first_order(self, ids, cand_ids, mask, labels) -> torch.Tensor:
        """``[n, beam, length, K]``: gradient estimate of the margin change of each substitution."""
        n, width, length = ids.shape
        embedding = self.model.embedding
        scores = []
        step = max(1, self.chunk // width)
        for i in range(0, n, step):
            with torch.enable_grad():
                emb = embedding(ids[i:i + step].flatten(0, 1)).detach().requires_grad_()
                rows_mask = mask[i:i + step, None].expand(-1, width, -1).flatten(0, 1)
                rows_labels = labels[i:i + step, None].expand(-1, width).flatten()
                value = margins(self.model.body(emb, rows_mask), rows_labels).sum()
                (grad,) = torch.autograd.grad(value, emb)
            grad = grad.view(-1, width, length, grad.shape[-1])
            emb = emb.detach().view_as(grad)
            cand = embedding(cand_ids[i:i + step]).detach()  # [n, length, K, dim]
            scores.append(torch.einsum("bwld,blkd->bwlk", grad, cand)
                          - (grad * emb).sum(-1, keepdim=True))
        return torch.cat(scores)


def _duplicates(states: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor):
    """``[n, take]`` bool: states ``[n, take, length]`` equal to an earlier chosen state of the
    same sentence (found by hashing, confirmed by comparison)."""
    hashes = (states * weights).sum(-1)
    order = hashes.argsort(dim=1, stable=True)
    sorted_states = states.gather(1, order[..., None].expand_as(states))
    sorted_hash, sorted_chosen = hashes.gather(1, order), chosen.gather(1, order)
    same = ((sorted_hash[:, 1:] == sorted_hash[:, :-1])
            & (sorted_states[:, 1:] == sorted_states[:, :-1]).all(-1)
            & sorted_chosen[:, 1:] & sorted_chosen[:, :-1])
    dup_sorted = torch.nn.functional.pad(same, (1, 0))
    return torch.zeros_like(dup_sorted).scatter(1, order, dup_sorted)
