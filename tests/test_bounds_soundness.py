"""Soundness of every bound rule: sampled points (box corners included) stay inside the bounds."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds import METHODS, Box, LinfBall, compute_bounds, margin_matrix
from tests.builders import Residual, bn_eval, random_network
from tests.oracles import violations


class Functional(nn.Module):
    """Functional and method forms: view, permute, transpose, cat, mean, sum, mul/div."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.lin = nn.Linear(4 * 2 * 3 + 4 + 3, 5)
        self.register_buffer("scale", torch.tensor([1.5, -2.0, 0.5, 3.0]).view(1, 4, 1, 1))

    def forward(self, x):  # x [B, 2, 4, 6]
        h = F.relu(self.conv(F.pad(x, (1, 1, 0, 0), value=0.5)))[..., 1:-1] * self.scale / 2.0
        h = F.max_pool2d(h, 2)  # [B, 4, 2, 3]
        p = h.permute(0, 2, 3, 1).transpose(1, 2)
        flat = p.reshape(p.size(0), -1)
        stats = torch.cat([h.mean(dim=(2, 3)), h.sum(1).flatten(1)[:, :3]], dim=1)
        return torch.tanh(self.lin(torch.cat([flat, stats], dim=1)) - 0.1)




CASES = {
    "linear": (lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), (6,)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=1),
                                     nn.ReLU(), nn.Conv1d(4, 2, 2, dilation=2), nn.Flatten(),
                                     nn.Linear(2 * 3, 3)), (3, 9)),
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(3, 2, 2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)),
               (2, 8, 8)),
    "leaky_relu": (lambda: nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 3)),
                   (6,)),
    "tanh": (lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)), (6,)),
    "sigmoid": (lambda: nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 3)), (6,)),
    "batchnorm1d": (lambda: nn.Sequential(nn.Linear(6, 8), bn_eval(nn.BatchNorm1d(8)), nn.ReLU(),
                                          nn.Linear(8, 3)), (6,)),
    "batchnorm2d": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), bn_eval(nn.BatchNorm2d(3)),
                                          nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)),
                    (2, 6, 6)),
    "avgpool1d": (lambda: nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.AvgPool1d(2),
                                        nn.Flatten(), nn.Linear(3 * 3, 3)), (2, 8)),
    "avgpool2d": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.AvgPool2d(2),
                                        nn.Flatten(), nn.Linear(3 * 2 * 2, 3)), (2, 6, 6)),
    "adaptive_avgpool": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(),
                                               nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                               nn.Linear(3, 3)), (2, 6, 6)),
    "adaptive_avgpool1d": (lambda: nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(),
                                                 nn.AdaptiveAvgPool1d(2), nn.Flatten(),
                                                 nn.Linear(6, 3)), (2, 7)),
    "maxpool1d": (lambda: nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.MaxPool1d(3, 2),
                                        nn.Flatten(), nn.Linear(3 * 2, 3)), (2, 8)),
    "maxpool2d": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.MaxPool2d(2), nn.ReLU(),
                                        nn.Flatten(), nn.Linear(3 * 2 * 2, 3)), (2, 6, 6)),
    "dropout_identity": (lambda: nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.ReLU(),
                                               nn.Identity(), nn.Linear(8, 3)), (6,)),
    "residual": (lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), Residual(8), nn.ReLU(),
                                       Residual(8), nn.Linear(8, 3)), (6,)),
    "functional": (Functional, (2, 4, 6)),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_operation_is_sound(case, method):
    torch.manual_seed(hash(case) % 1000)
    build, shape = CASES[case]
    model = build().eval()
    x = torch.randn(3, *shape)
    box = LinfBall(x, 0.3)
    count, lower, upper = violations(model, box, method)
    assert count == 0
    assert lower.shape == upper.shape == model(x).shape
    C = margin_matrix(torch.tensor([0, 1, 2]), model(x).flatten(1).shape[1])
    count, lower, _ = violations(model, box, method, C=C)
    assert count == 0
    assert lower.shape == (3, C.shape[1])




@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", METHODS)
def test_random_deep_networks_are_sound(seed, method):
    torch.manual_seed(seed)
    model = random_network(seed)
    x = torch.rand(2, 1, 8, 8)
    box = LinfBall(x, 0.1, lower=0.0, upper=1.0)
    count, lower, upper = violations(model, box, method)
    assert count == 0
    assert torch.isfinite(lower).all() and torch.isfinite(upper).all()


def test_box_input_and_float64():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double().eval()
    lower = torch.randn(5, 4, dtype=torch.float64)
    upper = lower + torch.rand(5, 4, dtype=torch.float64)
    for method in METHODS:
        count, lo, _ = violations(model, Box(lower, upper), method)
        assert count == 0 and lo.dtype == torch.float64


def test_ibp_is_exact_on_one_affine_layer():
    """The true range of W x + b over a box, found by enumerating its corners."""
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    x = torch.randn(2, 5)
    box = LinfBall(x, 0.2)
    lower, upper = compute_bounds(layer, box, "ibp")
    corners = torch.tensor(
        [[(i >> k) & 1 for k in range(5)] for i in range(2**5)], dtype=torch.float32
    )  # [32, 5]
    points = box.lower[:, None] + corners[None] * (box.upper - box.lower)[:, None]
    values = layer(points)  # [2, 32, 3]
    torch.testing.assert_close(lower, values.amin(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(upper, values.amax(1), atol=1e-5, rtol=0)


def test_crown_methods_are_tighter_than_ibp_on_average():
    tighter = {"crown": 0, "crown-ibp": 0}
    for seed in range(8):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                              nn.Linear(32, 4)).eval()
        x = torch.randn(16, 8)
        box = LinfBall(x, 0.05)
        C = margin_matrix(model(x).argmax(1), 4)
        ibp = compute_bounds(model, box, "ibp", C=C)[0].mean()
        for method in tighter:
            # strictly tighter: the linear relaxation improves on the intervals it also uses
            tighter[method] += int(compute_bounds(model, box, method, C=C)[0].mean() > ibp)
    assert tighter == {"crown": 8, "crown-ibp": 8}


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_every_weight(method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5),
                          nn.ReLU(), nn.Linear(5, 3))
    x = torch.rand(4, 1, 6, 6)
    C = margin_matrix(torch.tensor([0, 1, 2, 0]), 3)
    lower, _ = compute_bounds(model, LinfBall(x, 0.1, 0, 1), method, C=C)
    (-lower.mean()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_one_sided_bounds_match_two_sided():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    box = LinfBall(torch.randn(3, 4), 0.2)
    for method in METHODS:
        both = compute_bounds(model, box, method)
        only_lower = compute_bounds(model, box, method, bound_upper=False)
        assert only_lower[1] is None
        torch.testing.assert_close(only_lower[0], both[0])


@pytest.mark.parametrize("divide", [False, True])
def test_a_constant_tensor_factor_gives_the_ordered_ends(divide):
    """``x * c`` (``x / c``) with a constant tensor ``c``: a factor >= 0 everywhere (a mask, with
    zeros of both signs) skips the min/max, a factor of either sign takes it; both give the
    interval ``[min(lo c, hi c), max(lo c, hi c)]``, computed here entry by entry in Python."""
    from robusttext.bounds.rules.affine import scaled_ends

    torch.manual_seed(5)
    lo = torch.randn(4, 7) * 10
    hi = lo + torch.rand(4, 7) * torch.tensor([0.0, 1e-7, 1.0, 1e3, 1e30, 3e38, 1.0])
    lo[0, 0], hi[0, 0] = -float("inf"), float("inf")
    masks = {"mask": torch.tensor([[0.0, 1.0, -0.0, 1.0, 0.0, 1.0, 1.0]]).expand(4, 7),
             "positive": torch.rand(4, 7) + 0.5,
             "signed": torch.randn(4, 7)}
    for name, c in masks.items():
        if divide and name != "positive":
            continue
        lower, upper = scaled_ends(lo, hi, c, divide)
        for i in range(4):
            for j in range(7):
                a, b = lo[i, j].item(), hi[i, j].item()
                f = c[i, j].item()
                ends = [torch.tensor(v, dtype=torch.float32) for v in
                        ((a / f, b / f) if divide else (a * f, b * f))]
                want_lo, want_hi = torch.minimum(*ends), torch.maximum(*ends)
                for got, want in ((lower[i, j], want_lo), (upper[i, j], want_hi)):
                    assert (got.isnan() and want.isnan()) or got == want, (name, i, j)
