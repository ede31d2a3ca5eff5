"""The direct transposes of rearranging operations agree with the general vector-Jacobian path."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds import METHODS, LinfBall, compute_bounds
from robusttext.bounds.rules.rearrangements import StructuralRule
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
