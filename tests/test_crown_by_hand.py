"""CROWN on its own: small networks whose linear bounds are worked out on paper.

``compute_bounds`` returns the tighter of CROWN and IBP per entry, so a regressed CROWN could
hide behind IBP; ``linear_bounds`` returns the backward bound alone. The expected figures below
are derived by hand in the comments (ReLU: upper line ``u (x - l) / (u - l)``, lower line
``x`` where ``u > -l``, else 0).
"""

import math

import pytest
import torch
import torch.nn as nn

from robusttext.bounds import Box, compute_bounds
from robusttext.bounds.engine import linear_bounds


def box(lo, hi):
    return Box(torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64))


class ReluMinusX(nn.Module):
    def forward(self, x):
        return torch.relu(x) - x


def test_relu_minus_x_is_exact():
    # x in [-1, 2]: relu(x) <= (2/3) x + 2/3, so y <= -(1/3) x + 2/3 <= 1 (at x = -1);
    # u = 2 > -l = 1 gives relu(x) >= x, so y >= 0. The true range is [0, 1]; IBP says [-2, 3].
    lower, upper = linear_bounds(ReluMinusX(), box([-1.0], [2.0]), "crown")
    assert lower.item() == pytest.approx(0.0, abs=1e-12)
    assert upper.item() == pytest.approx(1.0, abs=1e-12)
    ibp = compute_bounds(ReluMinusX(), box([-1.0], [2.0]), "ibp")
    assert ibp[0].item() == pytest.approx(-2.0) and ibp[1].item() == pytest.approx(3.0)


class TwoLayers(nn.Module):
    def forward(self, x):
        return torch.relu(torch.relu(x) - x - 0.5)


def test_intermediate_bounds_by_crown_and_by_ibp():
    # z = relu(x) - x - 0.5 on x in [-1, 2]. CROWN: z in [-0.5, 0.5] (as above, shifted); IBP:
    # z in [0 - 2 - 0.5, 2 + 1 - 0.5] = [-2.5, 2.5].
    # crown: relu(z) <= 0.5 z + 0.25 <= 0.5 (-(1/3) x + 1/6) + 0.25 = -(1/6) x + 1/3, which is
    # 1/2 at x = -1; u = 0.5 is not > -l = 0.5, so the lower line is 0.
    lower, upper = linear_bounds(TwoLayers(), box([-1.0], [2.0]), "crown")
    assert lower.item() == pytest.approx(0.0, abs=1e-12)
    assert upper.item() == pytest.approx(0.5, abs=1e-12)
    # crown-ibp: relu(z) <= 0.5 z + 1.25 <= -(1/6) x + 1/12 + 5/4, which is 3/2 at x = -1.
    lower, upper = linear_bounds(TwoLayers(), box([-1.0], [2.0]), "crown-ibp")
    assert lower.item() == pytest.approx(0.0, abs=1e-12)
    assert upper.item() == pytest.approx(1.5, abs=1e-12)
    # compute_bounds keeps the tighter of those and IBP's [0, 2.5]
    assert compute_bounds(TwoLayers(), box([-1.0], [2.0]), "crown")[1].item() == pytest.approx(0.5)


class SumOfRelus(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2, bias=False).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))

    def forward(self, x):
        return torch.relu(self.lin(x)).sum(1, keepdim=True)


def test_two_unstable_relus():
    # x in [-1, 1]^2, h = (x1 + x2, x1 - x2) in [-2, 2]^2: relu(h) <= h / 2 + 1 each, so
    # y <= x1 + 2 <= 3 (true max 2, IBP 4); u = 2 is not > -l = 2, so y >= 0.
    lower, upper = linear_bounds(SumOfRelus(), box([-1.0, -1.0], [1.0, 1.0]), "crown")
    assert lower.item() == pytest.approx(0.0, abs=1e-12)
    assert upper.item() == pytest.approx(3.0, abs=1e-12)
    assert compute_bounds(SumOfRelus(), box([-1.0, -1.0], [1.0, 1.0]), "ibp")[1].item() == 4.0


def test_affine_network_is_exact_with_a_specification():
    # y = W x + b with W = [[1, -2], [0.5, 3]], b = (0.5, -1) on x in [0, 1] x [-1, 1];
    # C = [[1, -1]]: y1 - y2 = 0.5 x1 - 5 x2 + 1.5, in [-3.5, 7.0].
    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        model.bias.copy_(torch.tensor([0.5, -1.0]))
    C = torch.tensor([[[1.0, -1.0]]], dtype=torch.float64)
    for method in ("crown", "crown-ibp"):
        lower, upper = linear_bounds(model, box([0.0, -1.0], [1.0, 1.0]), method, C=C)
        assert lower.item() == pytest.approx(-3.5) and upper.item() == pytest.approx(7.0)


def test_tanh_on_its_concave_part():
    # x in [1, 2], tanh concave there: below by the chord (its minimum is tanh(1), at x = 1),
    # above by the tangent at 1.5 (its maximum tanh(1.5) + 0.5 sech(1.5)^2, at x = 2).
    lower, upper = linear_bounds(nn.Sequential(nn.Tanh()), box([1.0], [2.0]), "crown")
    assert lower.item() == pytest.approx(math.tanh(1.0), abs=1e-12)
    assert upper.item() == pytest.approx(math.tanh(1.5) + 0.5 / math.cosh(1.5) ** 2, abs=1e-12)
