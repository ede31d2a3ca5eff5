"""Recurrent and attention sentiment classifiers that follow the text-model contract.

Both models have ``embedding`` (an ``nn.Embedding`` with padding row 0) and ``body`` called as
``body(embeddings [batch, length, dim], mask [batch, length] float) -> logits [batch, classes]``.
The bodies use only operations the bound engine has rules for (Linear, sigmoid, tanh, products
of bounded tensors, bilinear matrix products, softmax, CenterNorm / LayerNorm, slicing, F.pad),
so ``compute_bounds(model.body, SubstitutionSet(...), extra_inputs=(mask,))`` certifies them.
The sizes are those of Xu et al. 2020 (auto_LiRPA).

- ``BiLSTM`` (kind ``"lstm"``): (with ``projection``, a per-token Linear + ReLU, as Jia et
  al. 2019 put before their LSTM,) a bidirectional LSTM unrolled over a fixed number of steps
  when traced (torch.fx cannot loop over a traced length; the bounds trace one graph per batch
  length), masked so padding never changes a state,
  mean pooling of the concatenated states over real tokens, linear head.
- ``TransformerClassifier`` (kind ``"transformer"``): learned position embeddings, one post-norm
  encoder layer (multi-head self-attention with masked keys, ReLU feed-forward), masked mean
  pooling, linear head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from robusttext.bounds.layers import CenterNorm
from robusttext.errors import RobustTextError
from robusttext.text.base import TextClassifier

MASKED_SCORE = -1e4
"""Added to the attention scores of padded keys: ``exp`` of it is 0 in float32."""

NORMS: dict[str, type[nn.Module]] = {"centernorm": CenterNorm, "layernorm": nn.LayerNorm}
"""Normalisation layers of the Transformer, by configuration name."""


@torch.fx.wrap
def checked_length(length: int, max_length: int) -> int:
    """``length``, or RobustTextError when it exceeds ``max_length``.

    Wrapped for torch.fx: traced as one call on the (constant) length, so the bound engine
    evaluates it, and raises, like the eager model.
    """
    if length > max_length:
        raise RobustTextError(f"a batch of {length} tokens is longer than the model's "
                              f"max_length {max_length}; build the model with a larger "
                              "max_length or shorten the sentences")
    return length


def masked_mean_over_tokens(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``h`` ``[batch, length, channels]`` over the positions where ``mask``
    ``[batch, length]`` is 1 -> ``[batch, channels]``."""
    return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)


class BiLSTMBody(nn.Module):
    """Bidirectional LSTM unrolled over ``max_length`` steps, mean pooling, linear head.

    Both directions run in one loop on a joint state ``[batch, 2 * hidden]`` (forward half
    first): of ``steps`` steps (``max_length`` when traced), step ``t`` reads position ``t``
    for the forward direction and position ``steps - 1 - t`` for the backward one. The gate
    pre-activations ``[batch, 8 * hidden]`` are laid out as ``[input, forget, output, cell]``
    gates, each ``[forward, backward]``; the recurrent weight is masked to be block-diagonal
    so the directions never mix.

    A step with mask 0 keeps the state, ``h_t = m_t h_new + (1 - m_t) h_prev`` (the mask is a
    constant), so padding changes nothing. Eager calls run the batch's length. A traced graph
    has a fixed number of steps: the body itself traces to ``max_length`` steps, and
    ``for_length(length)`` gives a module (sharing these weights) that traces to exactly
    ``length`` steps, which is what the text bounds use.
    ``forward(x [batch, length, dim], mask [batch, length]) -> [batch, classes]`` with
    ``length <= max_length``.
    """

    def __init__(self, dim: int, hidden: int, max_length: int, classes: int,
                 projection: int = 0):
        super().__init__()
        self.hidden, self.max_length = hidden, max_length
        # Optional per-token Linear + ReLU before the recurrence (Jia et al. 2019).
        self.project = nn.Linear(dim, projection) if projection else None
        self.inputs = nn.Linear(projection or dim, 8 * hidden)
        self.recurrent = nn.Parameter(torch.empty(8 * hidden, 2 * hidden))
        nn.init.uniform_(self.recurrent, -hidden**-0.5, hidden**-0.5)
        self.out = nn.Linear(2 * hidden, classes)
        # Constant helpers (not saved): which gate columns and state entries are the forward
        # direction's, the block-diagonal mask of the recurrent weight, the reversed time order.
        forward_state = torch.arange(2 * hidden) < hidden  # [2H]
        forward_gates = forward_state.repeat(4)  # [8H]
        block = (forward_gates[:, None] == forward_state[None, :]).float()  # [8H, 2H]
        self.register_buffer("forward_gates", forward_gates.float(), persistent=False)
        self.register_buffer("block", block, persistent=False)
        self.register_buffer("reverse", torch.arange(max_length - 1, -1, -1), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.unroll(x, mask, self.max_length)

    def for_length(self, length: int) -> nn.Module:
        """A module computing this body on inputs of ``length`` tokens whose traced graph runs
        ``length`` steps instead of ``max_length`` (kept on the body, outside its state, so the
        bound engine's trace of it is reused)."""
        unrolled = self.__dict__.setdefault("_unrolled", {})
        if length not in unrolled:
            unrolled[length] = _Unrolled(self, checked_length(length, self.max_length))
        return unrolled[length]

    def unroll(self, x: torch.Tensor, mask: torch.Tensor, trace_steps: int) -> torch.Tensor:
        """The logits, running ``trace_steps`` steps when traced (the batch length eagerly)."""
        n = self.hidden
        length = checked_length(x.shape[1], trace_steps)
        # Traced by torch.fx (for the bound engine) the length is a graph value and the loop
        # runs trace_steps steps over the padded sequence; run eagerly it is an int and the loop
        # runs the batch's own length (the same logits: padded steps change nothing).
        steps = length if isinstance(length, int) else trace_steps
        pad = steps - length
        reverse = self.reverse[self.max_length - steps :]  # steps-1, ..., 0
        if self.project is not None:
            x = torch.relu(self.project(x))
        # Gate inputs of every position at once: [batch, steps, 8H]; the backward direction's
        # columns are read in reversed time order.
        p = F.pad(self.inputs(x), (0, 0, 0, pad))
        p = p * self.forward_gates + p[:, reverse] * (1 - self.forward_gates)
        m = F.pad(mask, (0, pad))  # [batch, steps]
        keep_mask = torch.cat([m.unsqueeze(-1).expand(-1, -1, n),
                               m[:, reverse].unsqueeze(-1).expand(-1, -1, n)], -1)
        drop_mask = 1 - keep_mask  # [batch, steps, 2H]
        weight = self.recurrent * self.block
        h = x.new_zeros(x.shape[0], 2 * n)
        c = x.new_zeros(x.shape[0], 2 * n)
        states = []
        for t in range(steps):
            z = p[:, t] + F.linear(h, weight)  # [batch, 8H]
            s = torch.sigmoid(z[:, : 6 * n])
            g = torch.tanh(z[:, 6 * n :])
            c_new = s[:, 2 * n : 4 * n] * c + s[:, : 2 * n] * g
            h_new = s[:, 4 * n :] * torch.tanh(c_new)
            m_t, d_t = keep_mask[:, t], drop_mask[:, t]
            c = m_t * c_new + d_t * c
            h = m_t * h_new + d_t * h
            states.append(h)
        # Step t holds position t (forward half) and position steps-1-t (backward half); the
        # keep mask of the step selects the real tokens of both.
        total = (torch.stack(states, 1) * keep_mask).sum(1)  # [batch, 2H]
        return self.out(total / mask.sum(1, keepdim=True))


class _Unrolled(nn.Module):
    """``body`` on inputs of at most ``steps`` tokens, traced to ``steps`` steps."""

    def __init__(self, body: BiLSTMBody, steps: int):
        super().__init__()
        self.body, self.steps = body, steps

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body.unroll(x, mask, self.steps)


class TransformerBody(nn.Module):
    """One post-norm Transformer encoder layer, masked mean pooling, linear head.

    ``x = proj(x) + position[:length]``; ``x = norm1(x + attention(x))``;
    ``x = norm2(x + W2 relu(W1 x))``; logits ``= out(mean over real tokens of x)``. Padded keys
    get ``MASKED_SCORE`` added to their scores. ``proj`` is a Linear when the embedding size
    differs from ``hidden``, else the identity. ``forward(x [batch, length, dim], mask [batch,
    length]) -> [batch, classes]`` with ``length <= max_length``.
    """

    def __init__(self, dim: int, hidden: int, heads: int, ffn: int, max_length: int,
                 classes: int, norm: str):
        super().__init__()
        self.hidden, self.heads, self.max_length = hidden, heads, max_length
        self.project = nn.Linear(dim, hidden) if dim != hidden else nn.Identity()
        self.position = nn.Parameter(torch.randn(max_length, hidden) * 0.1)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.norm1 = NORMS[norm](hidden)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.norm2 = NORMS[norm](hidden)
        self.out = nn.Linear(hidden, classes)

    def _split_heads(self, t: torch.Tensor, batch, length) -> torch.Tensor:
        """``[batch, length, hidden]`` -> ``[batch, heads, length, hidden / heads]``."""
        return t.view(batch, length, self.heads, self.hidden // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length = x.shape[0], checked_length(x.shape[1], self.max_length)
        x = self.project(x) + self.position[:length]  # [batch, length, hidden]
        scale = (self.hidden // self.heads) ** -0.5
        q = self._split_heads(self.query(x) * scale, batch, length)
        k = self._split_heads(self.key(x), batch, length)
        v = self._split_heads(self.value(x), batch, length)
        padded_keys = ((1 - mask) * MASKED_SCORE)[:, None, None, :]  # [batch, 1, 1, length]
        scores = q @ k.transpose(2, 3) + padded_keys  # [batch, heads, length, length]
        attended = torch.softmax(scores, dim=-1) @ v  # [batch, heads, length, hidden / heads]
        attended = attended.transpose(1, 2).reshape(batch, length, self.hidden)
        x = self.norm1(x + self.attention_out(attended))
        x = self.norm2(x + self.ffn_out(torch.relu(self.ffn_in(x))))
        return self.out(masked_mean_over_tokens(x, mask))


class BiLSTM(TextClassifier):
    """Bidirectional LSTM (Xu et al. 2020 sizes: hidden 64 per direction) over word embeddings.

    Sentences longer than ``max_length`` tokens raise RobustTextError; the model and its
    bounds run as many steps as the batch has tokens.
    """

    kind = "lstm"

    def __init__(self, vocab_size: int, embed_dim: int = 100, hidden: int = 64,
                 max_length: int = 64, classes: int = 2, projection: int | None = None,
                 dropout: float = 0.0):
        extra = {"projection": projection} if projection is not None else {}
        # Sizes are checked by the base class before the body is built from them.
        super().__init__(vocab_size, embed_dim, nn.Identity(), dropout=dropout, hidden=hidden,
                         max_length=max_length, classes=classes, **extra)
        self.body = BiLSTMBody(embed_dim, hidden, max_length, classes, projection or 0)


class TransformerClassifier(TextClassifier):
    """One-layer Transformer encoder (Xu et al. 2020 sizes: hidden 64, 4 heads, feed-forward
    128, ReLU) over word embeddings, with learned positions for up to ``max_length`` tokens.

    ``norm``: ``"centernorm"`` (LayerNorm without the variance; far easier to certify) or
    ``"layernorm"``.
    """

    kind = "transformer"

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 64, heads: int = 4,
                 ffn: int = 128, max_length: int = 64, classes: int = 2,
                 norm: str = "centernorm", dropout: float = 0.0):
        if norm not in NORMS:
            raise RobustTextError(f"TransformerClassifier: norm must be one of "
                                  f"{', '.join(NORMS)}, got {norm!r}")
        if isinstance(heads, int) and heads > 0 and isinstance(hidden, int) and hidden % heads:
            raise RobustTextError(f"TransformerClassifier: hidden ({hidden}) must be a multiple "
                                  f"of heads ({heads})")
        sizes = {"hidden": hidden, "heads": heads, "ffn": ffn, "max_length": max_length,
                 "classes": classes}
        # Sizes are checked by the base class before the body is built from them.
        super().__init__(vocab_size, embed_dim, nn.Identity(), dropout=dropout, **sizes)
        self.body = TransformerBody(embed_dim, norm=norm, **sizes)
        self.norm = norm

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model (sizes and ``norm``)."""
        return {**super().config(), "norm": self.norm}


__all__ = ["BiLSTM", "BiLSTMBody", "TransformerBody",
           "TransformerClassifier", "checked_length"]
