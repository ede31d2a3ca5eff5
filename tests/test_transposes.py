"""The direct transposes of rearranging operations agree with the general vector-Jacobian path."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds import METHODS, LinfBall, compute_bounds
from robusttext.bounds.rules.rearrangements import IndexRule, StructuralRule
from tests.oracles import violations


class Rearranging(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.register_buffer("extra", torch.randn(1, 4, 2))
        self.head = nn.Linear(53, 3)

    def forward(self, x):  # x [batch, 4, 6]
        h = torch.relu(self.lin(x))
        a = torch.cat([h, h[..., :2] * 0.5 + self.extra], dim=2)  # [b, 4, 8]
        a = F.pad(a, (1, 1), value=0.0)  # [b, 4, 10]
        b = torch.stack([h[:, 0], h[..., 1:3].sum(-1).unsqueeze(-1).expand(-1, -1, 6)[:, 1]],
                        dim=1)  # [b, 2, 6]
        c = h.permute(0, 2, 1).transpose(1, 2).mean(dim=1)  # [b, 6]
        d = h.sum(dim=(1, 2), keepdim=True).view(x.shape[0], -1) + h[:, 2, :1] - h[:, 3, 1:2]
        flat = torch.cat([a.flatten(1), b[:, :, 0].reshape(x.size(0), -1), b[:, 1, 2:4], c,
                          d + d, h[:, 0, 4:]], dim=1)
        return self.head(torch.relu(flat))


@pytest.mark.parametrize("method", ["crown", "crown-ibp"])
def test_direct_transposes_match_the_general_path(method, monkeypatch):
    torch.manual_seed(0)
    model = Rearranging().eval()
    box = LinfBall(torch.randn(3, 4, 6), 0.2)
    direct = compute_bounds(model, box, method)
    monkeypatch.setattr(StructuralRule, "use_fast", False)
    general = compute_bounds(model, box, method)
    for d, g in zip(direct, general):
        torch.testing.assert_close(d, g, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_rearranging_model_is_sound(method):
    torch.manual_seed(1)
    model = Rearranging().eval()
    assert violations(model, LinfBall(torch.randn(3, 4, 6), 0.2), method)[0] == 0


class Gathering(nn.Module):
    """``x[:, order]`` with repeated and negative positions, and ``x[:, :, order]``."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.register_buffer("order", torch.tensor([3, 0, -1, 0, 2]))
        self.register_buffer("columns", torch.tensor([5, 1, 1]))
        self.head = nn.Linear(5 * 6 + 4 * 3, 3)

    def forward(self, x):  # x [batch, 4, 6]
        h = torch.relu(self.lin(x))
        return self.head(torch.cat([h[:, self.order].flatten(1),
                                    h[:, :, self.columns].flatten(1)], 1))


@pytest.mark.parametrize("method", ["crown", "crown-ibp"])
def test_gather_by_a_tensor_index_matches_the_general_path_and_is_sound(method, monkeypatch):
    torch.manual_seed(2)
    model = Gathering().eval()
    box = LinfBall(torch.randn(3, 4, 6), 0.2)
    assert violations(model, box, method)[0] == 0
    direct = compute_bounds(model, box, method)
    monkeypatch.setattr(StructuralRule, "use_fast", False)
    general = compute_bounds(model, box, method)
    for d, g in zip(direct, general):
        torch.testing.assert_close(d, g, atol=1e-5, rtol=1e-5)


class Stepping(nn.Module):
    """Reads a sequence step by step, ``h[:, t]`` and ``h[:, :, t]`` (negative positions too),
    as an unrolled recurrence does; ``h`` is also tightened by CROWN between two reads (its ReLU
    comes after the first step is read)."""

    def __init__(self):
        super().__init__()
        self.pre, self.lin = nn.Linear(6, 6), nn.Linear(6, 6)
        self.head = nn.Linear(6 + 4 + 6 + 24, 3)

    def forward(self, x):  # x [batch, 4, 6]
        h = self.lin(torch.tanh(self.pre(x)))
        first = h[:, 0]  # read before h is tightened for its ReLU
        r = torch.relu(h)
        state = torch.zeros_like(first)
        for t in range(4):  # a recurrence over every step of h
            state = torch.tanh(state * 0.5 + h[:, t])
        columns = torch.stack([h[:, :, t] for t in (-1, 2, 0)], -1).sum(-1)  # [batch, 4]
        return self.head(torch.cat([first + h[:, -4], columns, state, r.flatten(1)], 1))


def _step_by_select(ctx):
    # the general path: the node run on each end (a select per step)
    return StructuralRule.ibp(IndexRule.__new__(IndexRule), ctx)


@pytest.mark.parametrize("method", METHODS)
def test_steps_of_a_sequence_match_a_select_per_step_and_are_sound(method, monkeypatch):
    torch.manual_seed(3)
    model = Stepping().eval()
    box = LinfBall(torch.randn(3, 4, 6), 0.3)
    assert violations(model, box, method)[0] == 0
    x = box.center.clone()
    stepped = compute_bounds(model, LinfBall(x, 0.3), method)
    grads = torch.autograd.grad(stepped[0].sum(), list(model.parameters()))
    monkeypatch.setattr(IndexRule, "ibp", lambda self, ctx: _step_by_select(ctx))
    selected = compute_bounds(model, LinfBall(x, 0.3), method)
    for s, g in zip(stepped, selected):
        assert torch.equal(s, g)  # the same values, entry for entry
    for a, b in zip(grads, torch.autograd.grad(selected[0].sum(), list(model.parameters()))):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_a_step_reads_the_tightened_interval_of_its_sequence():
    """``h[:, 0]`` is read before CROWN tightens ``h`` (for its ReLU), ``h[:, t]`` of the
    recurrence after: each step is the interval its sequence had when the step was read."""
    torch.manual_seed(4)
    model = Stepping().eval()
    box = LinfBall(torch.randn(2, 4, 6), 0.5)
    from robusttext.bounds.engine import _Propagation

    def propagated(method):
        prop = _Propagation(model, box, ())
        prop.forward(method)
        return prop, {str(n): n for n in prop.nodes}

    crown, nodes = propagated("crown")
    ibp, _ = propagated("ibp")
    h, first_read, later_read = nodes["lin"], nodes["getitem"], nodes["getitem_1"]
    assert later_read.args[1] == (slice(None), 0)  # the recurrence's step 0
    lo, hi = crown.bounds[h]
    ibp_lo, ibp_hi = ibp.bounds[h]
    assert (lo > ibp_lo + 1e-4).any() and (hi < ibp_hi - 1e-4).any()  # h was tightened
    assert torch.equal(crown.bounds[later_read][0], lo[:, 0])
    assert torch.equal(crown.bounds[later_read][1], hi[:, 0])
    # the first read came before the tightening: it holds IBP's interval of h[:, 0]
    assert torch.equal(crown.bounds[first_read][0], ibp_lo[:, 0])
    assert torch.equal(crown.bounds[first_read][1], ibp_hi[:, 0])
