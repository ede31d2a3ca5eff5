"""The exact lowest margin of a CNN over a budgeted substitution set, by dynamic programming.

For ``ConvBody`` (``robusttext.text.models``: an optional per-token Linear + ReLU, a Conv1d of
``T`` taps, ReLU, a masked mean over the windows, a linear head) the margin ``z_y - z_j`` of a
sentence is a constant plus a sum over windows::

    z_y - z_j = (b_y - b_j) + sum_o w_o (W_y - W_j) . relu(bias + sum_t W_t e'(x_{o - left + t}))

(``w_o``: the pooling weight of window ``o``; ``e'``: the token's vector after the optional
projection). Window ``o`` depends on the choices at its ``T`` positions only, so the lowest
margin over every rewrite with at most ``budget`` changes is a shortest path over the positions
whose state is the choices at the last ``T - 1`` positions and the changes used so far: when
position ``p`` is chosen, the window ending at ``p`` is complete and its exact value is added,
minimised over the choice at the position that leaves the state. The result is the exact
minimum (not a bound) for every rewrite at once, with the rewrite that attains it read back
from the stored choices; the state holds ``prod (1 + candidates)`` over ``T - 1`` positions,
small for the shipped CNNs (5 taps over characters with a few flips each, 3 over words).

The caller runs the rewrite through the model and trusts the minimum only with a float margin
(``window_minimum`` returns the value and the rewrite, nothing is decided here).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from robusttext.text.models import ConvBody

MAX_STATES = 1 << 19  # choices of one complete window times the changes, per class pair


def supports_window_dp(body: nn.Module) -> bool:
    """True for the one body whose windows this module knows: ``ConvBody`` with stride 1,
    dilation 1 and the padding its ``window`` declares."""
    if type(body) is not ConvBody:
        return False
    conv = body.conv
    return (conv.stride == (1,) and conv.dilation == (1,) and conv.groups == 1
            and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple))


def window_minimum(body: ConvBody, embedding: nn.Embedding, ids: torch.Tensor,
                   mask: torch.Tensor, candidates: torch.Tensor, allowed: torch.Tensor,
                   budget: int, label: int) -> tuple[float, torch.Tensor] | None:
    """The lowest margin of ``label`` over the rewrites of one sentence with at most ``budget``
    changes, and a rewrite ``[length]`` that attains it; None when the state would exceed
    ``MAX_STATES``. Arguments as in ``window_minima``."""
    found = window_minima(body, embedding, ids, mask, candidates, allowed, budget, label)
    return None if found is None else found[budget]


@torch.no_grad()
def window_minima(body: ConvBody, embedding: nn.Embedding, ids: torch.Tensor,
                  mask: torch.Tensor, candidates: torch.Tensor, allowed: torch.Tensor,
                  budget: int, label: int) -> list[tuple[float, torch.Tensor]] | None:
    """Per number of changes ``c = 0 .. budget``, the lowest margin of ``label`` over the
    rewrites of one sentence with at most ``c`` changes and a rewrite ``[length]`` that
    attains it (one programme serves every budget); None when the state would exceed
    ``MAX_STATES``.

    ``ids [length]`` (the padded row), ``mask [length]``, ``candidates`` / ``allowed``
    ``[length, K]``: the candidate ids of each position and which may be chosen.
    """
    conv, head = body.conv, body.out
    taps = conv.kernel_size[0]
    left, right = body.window
    length = ids.shape[0]
    options = [torch.cat([ids[p:p + 1], candidates[p][allowed[p]]]) for p in range(length)]
    sizes = [len(o) for o in options]
    # the most choices one window's taps have together (each product is at least 1)
    largest = max((math.prod(sizes[max(0, p - taps + 1):p + 1]) for p in range(length)),
                  default=1)
    specs = head.weight.shape[0] - 1
    if largest * (budget + 1) * max(1, specs) > MAX_STATES:
        return None
    weight = head.weight.to(conv.weight.dtype)
    others = [j for j in range(weight.shape[0]) if j != label]
    a = weight[label][None] - weight[others]  # [S, F]
    const = head.bias[label] - head.bias[others] if head.bias is not None else \
        torch.zeros(len(others), dtype=weight.dtype, device=weight.device)
    w = mask.to(weight.dtype) / mask.sum().clamp(min=1)
    # per position and choice, the contribution of each tap: [n_p, T, F]
    flat = torch.cat(options)
    vectors = embedding(flat).to(weight.dtype)
    if body.project is not None:
        vectors = torch.relu(body.project(vectors))
    taps_out = torch.einsum("nd,fdt->ntf", vectors, conv.weight)
    contrib = list(taps_out.split(sizes))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(conv.weight[:, 0, 0])
    inf = float("inf")
    zero_tap = torch.zeros(1, taps, conv.weight.shape[0], dtype=weight.dtype,
                           device=weight.device)
    # state: choices at the last T - 1 positions, then the changes used, then the specs
    val = torch.full([1] * (taps - 1) + [budget + 1, specs], inf, dtype=weight.dtype,
                     device=weight.device)
    val[(0,) * (taps - 1) + (0,)] = 0.0
    chosen: list[torch.Tensor] = []
    steps = length + right
    for p in range(steps):
        # the window ending at p: o = p - right, positions p - T + 1 .. p
        n_p = sizes[p] if p < length else 1
        o = p - right
        shape_all = []
        for t in range(taps):
            q = p - taps + 1 + t
            c_q = contrib[q] if 0 <= q < length else zero_tap
            shape_all.append(c_q.shape[0])
        pre = bias.expand(*shape_all, -1)
        for t in range(taps):
            q = p - taps + 1 + t
            c_q = contrib[q] if 0 <= q < length else zero_tap
            view = [1] * taps + [c_q.shape[2]]
            view[t] = c_q.shape[0]
            pre = pre + c_q[:, t].reshape(view)
        if 0 <= o < length and float(w[o]) != 0.0:
            window_value = w[o] * (torch.relu(pre) @ a.T)  # [n.., S]
        else:
            window_value = torch.zeros(*shape_all, specs, dtype=weight.dtype,
                                       device=weight.device)
        # val over positions p - T + 1 .. p - 1 (first dim: the one that leaves the state)
        shifted = torch.full(list(val.shape[:-2]) + [n_p, budget + 1, specs], inf,
                             dtype=weight.dtype, device=weight.device)
        shifted[..., 0, :, :] = val
        if n_p > 1 and budget > 0:
            shifted[..., 1:, 1:, :] = val[..., None, :-1, :]
        total = shifted + window_value.unsqueeze(-2)
        val, arg = total.min(0)
        chosen.append(arg)
    return [_read_back(val, chosen, const, options, ids, taps, steps, length, c)
            for c in range(budget + 1)]


def _read_back(val, chosen, const, options, ids, taps, steps, length, most):
    """The lowest margin with at most ``most`` changes and a rewrite attaining it."""
    specs = val.shape[-1]
    finals = val[..., :most + 1, :]  # states with at most ``most`` changes
    best_per_spec, where = finals.reshape(-1, specs).min(0)
    best_per_spec = best_per_spec + const
    j = int(best_per_spec.argmin())
    lowest = float(best_per_spec[j])
    # choices at positions steps-T+1 .. steps-1, then the changes used
    state = [int(s) for s in np.unravel_index(int(where[j]), tuple(finals.shape[:-1]))]
    picks = dict(zip(range(steps - taps + 1, steps), state[:-1]))
    used = state[-1]
    for p in range(steps - 1, -1, -1):
        # chosen[p] over [positions p - T + 2 .. p, changes, specs] -> the choice at p - T + 1
        key = tuple(picks[q] for q in range(p - taps + 2, p + 1)) + (used, j)
        picks[p - taps + 1] = int(chosen[p][key])
        if p < length and picks[p] > 0:
            used -= 1
    rewrite = ids.clone()
    for p in range(length):
        if picks[p] > 0:
            rewrite[p] = options[p][picks[p]]
    return lowest, rewrite
