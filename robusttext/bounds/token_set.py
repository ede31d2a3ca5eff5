"""A substitution set that knows its token ids, for fast exact first-layer bounds.

``SubstitutionSet`` bounds a first Linear or Conv1d layer exactly from the embedding differences
``e_pk - e_p`` of every position and candidate: ``[batch, length, candidates, out, taps]``
products with the embedding dimension. But a position's best gains depend only on its token and
its candidate list, and a batch has few distinct (token, candidates) rows (at the character
level, one per character). ``TokenSubstitutionSet`` projects the distinct token ids through the
layer once, computes the best gains per distinct row, and gathers them back: the same bounds
(up to float rounding) for a fraction of the time and memory. Everything else (intervals,
CROWN's concretization) is the parent's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robusttext.bounds.input_sets import SubstitutionSet


class TokenSubstitutionSet(SubstitutionSet):
    """``SubstitutionSet`` built from ids and an embedding table.

    table: ``[vocab, dim]``; token_ids: ``[batch, length]``; candidate_ids and mask:
    ``[batch, length, candidates]``; budget and relaxation as in ``SubstitutionSet``; ``eps``
    moves every candidate to ``e + eps (e_k - e)`` (1: the candidates themselves).
    """

    def __init__(self, table, token_ids, candidate_ids, mask, budget, relaxation="exact",
                 eps: float = 1.0):
        original, candidates = table[token_ids], table[candidate_ids]
        if eps != 1.0:  # candidates moved to e + eps (e_k - e), as in a training ramp
            candidates = original.unsqueeze(2) + eps * (candidates - original.unsqueeze(2))
        super().__init__(original, candidates, mask, budget, relaxation)
        self.table, self.token_ids, self.candidate_ids = table, token_ids, candidate_ids
        self.eps = eps
        self._rows = None

    def with_budget(self, budget: int | None) -> TokenSubstitutionSet:
        """``SubstitutionSet.with_budget``, sharing too (between budgets above 0) the distinct
        rows, computed once."""
        other = super().with_budget(budget)
        if (budget == 0) != (self.budget == 0):
            other._rows = None
        return other

    def _distinct_rows(self):
        """The batch's distinct (token, candidates) rows, computed once.

        Returns ``(ids, row_index, valid, inverse)``: the distinct token ids ``[n]``; per distinct
        row the index into ``ids`` of its token and candidates ``[U, 1 + K]``; which candidates
        are real ``[U, K]``; and the row of every position ``[batch * length]``.
        """
        if self._rows is None:
            keys = torch.cat([self.token_ids[..., None],
                              self.candidate_ids.masked_fill(~self.mask, -1)], -1).flatten(0, 1)
            rows, inverse = torch.unique(keys, dim=0, return_inverse=True)
            ids, row_index = torch.unique(rows.clamp(min=0), return_inverse=True)
            self._rows = ids, row_index, rows[:, 1:] >= 0, inverse
        return self._rows

    def _gather(self, per_row: torch.Tensor) -> torch.Tensor:
        """``[U, *rest]`` per distinct row -> ``[batch, length, *rest]`` per position."""
        b, l = self.token_ids.shape
        return per_row[self._distinct_rows()[3]].view(b, l, *per_row.shape[1:])

    def _row_gains(self, project):
        """Best increase and decrease of a first layer per position.

        ``project(embeddings [n, dim]) -> [n, *out]`` is the layer's linear map without bias.
        Returns ``(up, down)``, each ``[batch, length, *out]`` and >= 0.
        """
        ids, row_index, valid, _ = self._distinct_rows()
        projected = project(self.table[ids])  # [n, *out]: each distinct id through the layer
        gains = projected[row_index[:, 1:]] - projected[row_index[:, :1]]  # [U, K, *out]
        if self.eps != 1.0:
            gains = self.eps * gains
        up, down = self._best_gains(gains, valid.view(*valid.shape, *[1] * (gains.dim() - 2)),
                                    k_dim=1)
        return self._gather(up), self._gather(down)

    def interval(self):
        """Per position, the elementwise min/max over the original and its candidates."""
        ids, row_index, valid, _ = self._distinct_rows()
        emb = self.table[ids]
        original, candidates = emb[row_index[:, 0]], emb[row_index[:, 1:]]  # [U, d], [U, K, d]
        if self.eps != 1.0:
            candidates = original.unsqueeze(1) + self.eps * (candidates - original.unsqueeze(1))
        big = torch.finfo(emb.dtype).max
        low = candidates.masked_fill(~valid[..., None], big).amin(1)
        high = candidates.masked_fill(~valid[..., None], -big).amax(1)
        return (self._gather(torch.minimum(low, original)),
                self._gather(torch.maximum(high, original)))

    def linear_interval(self, weight, bias):
        """A per-token Linear: ``[batch, length, dim] -> [batch, length, out]``, exact."""
        if self.relaxation == "box":
            return None
        base = F.linear(self.center, weight, bias)
        up, down = self._row_gains(lambda e: e @ weight.T)
        return base - self._reduce(down[..., None], -1), base + self._reduce(up[..., None], -1)

    def conv1d_interval(self, weight, bias, stride, padding, dilation, transposed_input):
        """Conv1d over the sequence, exact with the top-budget gains within each window.

        weight: ``[out, dim, taps]``. Returns bounds ``[batch, out, out_length]``.
        """
        if self.relaxation == "box" or not transposed_input:
            return None
        base = F.conv1d(self.center.transpose(1, 2), weight, bias, stride, padding, dilation)
        out_len = base.shape[2]
        up, down = self._row_gains(lambda e: torch.einsum("nd,odt->not", e, weight))
        bounds = []
        for g in (down, up):  # [batch, length, out, taps]
            g = F.pad(g.permute(3, 0, 2, 1).contiguous(), (padding, padding))
            # g: [taps, batch, out, padded length]; per tap, its gain at each output position
            # (the taps unbound once: their gradients meet in one stack, not a zero tensor of
            # every tap per tap)
            windows = [g_t[:, :, t * dilation: t * dilation + stride * (out_len - 1) + 1: stride]
                       for t, g_t in enumerate(g.unbind(0))]  # each [batch, out, out_length]
            bounds.append(self._window_reduce(windows))
        return base - bounds[0], base + bounds[1]

    def _window_reduce(self, values: list[torch.Tensor]) -> torch.Tensor:
        """``_reduce`` over a window given as one tensor per tap: the parent's cases, on the
        taps stacked, except the sum of the ``budget`` largest without a gradient, which is
        kept by compare-and-swap without stacking the taps."""
        if not self._takes_top(len(values)):
            return self._reduce(torch.stack(values), 0)
        if torch.is_grad_enabled() and values[0].requires_grad:
            # differentiable: topk over the stacked taps is about 3x faster forward and backward
            # than a compare-and-swap chain of autograd nodes
            return self._reduce(torch.stack(values, -1), -1)
        # top[0] >= top[1] >= ...: the largest values so far (gains are >= 0). In place, with
        # two scratch buffers: fresh large tensors cost more than the arithmetic on a CPU.
        top = [torch.zeros_like(values[0]) for _ in range(self.budget)]
        scratch = [torch.empty_like(values[0]) for _ in range(min(2, self.budget - 1))]
        for value in values:
            for i in range(self.budget):
                if i < self.budget - 1:
                    smaller = torch.minimum(top[i], value, out=scratch[i % 2])
                torch.maximum(top[i], value, out=top[i])
                if i < self.budget - 1:
                    value = smaller
        total = top[0]
        for t in top[1:]:
            total += t
        return total
