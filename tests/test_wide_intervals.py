"""Intermediate intervals far wider than any value the model reaches there.

``u = x - x`` is 0 for every input, but its interval is ``[-6, 6]``, so ``a = exp(exp(u))`` is
always ``e`` while its interval is ``[exp(exp(-6)), exp(exp(6))] ~ [1.0025, 1e175]``. An affine
map of ``a`` and of ``b = exp(x)`` (``[1, e^6]``, reached) whose upper end needs the narrow end of
``a``'s interval lost it in the centre/radius form: ``-centre + radius`` rounds to 0 while the
small terms of ``b`` are absorbed, and the bound came out at 0, below the model's own output
``e^6 - e`` at ``x = 6`` (a fuzzed graph, ``Linear -> exp -> exp -> sum -> Linear`` on a
substitution set, found it first). The expectations are the closed-form extremes of the model
on ``x in [0, 6]``, checked against a grid.
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext.bounds import METHODS, Box, compute_bounds
from robusttext.bounds.input_sets import concretize_interval

TOP = 6.0
# out = -a + b + shift with a = e always and b = exp(x): extremes at x = 6 and x = 0
SHIFT = 100.0
TRUE_MAX = -math.e + math.exp(TOP) + SHIFT
TRUE_MIN = -math.e + 1.0 + SHIFT


def _features(x):
    """``[batch, 1] -> [batch, 2]``: ``(a, b)`` as above."""
    return torch.cat([torch.exp(torch.exp(x - x)), torch.exp(x)], -1)


class LinearHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 1).double()
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0, 1.0]]))
            self.head.bias.fill_(SHIFT)

    def forward(self, x):
        return self.head(_features(x))


class ConvHead(LinearHead):
    def forward(self, x):
        weight = self.head.weight.view(1, 2, 1)
        return F.conv1d(_features(x).unsqueeze(-1), weight, self.head.bias).flatten(1)


class MatmulHead(LinearHead):
    def forward(self, x):
        return _features(x) @ self.head.weight.t() + SHIFT


class BatchNormHead(nn.Module):
    """A per-channel scale of -1 on ``a`` and +1 on ``b``, summed: the same output."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(2, eps=0.0).double().eval()
        with torch.no_grad():
            self.norm.weight.copy_(torch.tensor([-1.0, 1.0]))
            self.norm.bias.copy_(torch.tensor([SHIFT, 0.0]))

    def forward(self, x):
        return self.norm(_features(x)).sum(-1, keepdim=True)


def _model_range(model):
    grid = torch.linspace(0, TOP, 601, dtype=torch.float64).unsqueeze(-1)
    with torch.no_grad():
        out = model(grid)
    return out.min().item(), out.max().item()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("head", [LinearHead, ConvHead, MatmulHead, BatchNormHead])
def test_the_narrow_end_of_a_wide_interval_is_kept(head, method):
    model = head()
    lowest, highest = _model_range(model)
    assert lowest == pytest.approx(TRUE_MIN) and highest == pytest.approx(TRUE_MAX)
    box = Box(torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), TOP, dtype=torch.float64))
    with torch.no_grad():
        lower, upper = compute_bounds(model, box, method)
    assert upper.item() >= TRUE_MAX - 1e-9, f"{method}: upper {upper.item()} < {TRUE_MAX}"
    assert lower.item() <= TRUE_MIN + 1e-9, f"{method}: lower {lower.item()} > {TRUE_MIN}"
    # the exact interval arithmetic gives exactly -lo(a) + hi(b) + shift
    if method == "ibp":
        expected = -math.exp(math.exp(-TOP)) + math.exp(TOP) + SHIFT
        assert upper.item() == pytest.approx(expected, rel=1e-12)


def test_concretize_interval_keeps_the_narrow_end():
    lower = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    upper = torch.tensor([[1e175, 403.0]], dtype=torch.float64)
    A = torch.tensor([[[-1.0, 1.0]]], dtype=torch.float64)  # [batch, specs, n]
    assert concretize_interval(lower, upper, A, 1).item() == pytest.approx(402.0)
    assert concretize_interval(lower, upper, A, -1).item() == pytest.approx(-1e175)


@pytest.mark.parametrize("method", METHODS)
def test_a_wide_input_box_keeps_its_narrow_end(method):
    """The corner ``(1, 403)`` of the box gives ``-x1 + x2 = 402``; every method must reach it."""
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 1.0]]))
    box = Box(torch.tensor([[1.0, 1.0]], dtype=torch.float64),
              torch.tensor([[1e175, 403.0]], dtype=torch.float64))
    with torch.no_grad():
        _, upper = compute_bounds(model, box, method)
        corner = model(torch.tensor([[1.0, 403.0]], dtype=torch.float64)).item()
    assert corner == 402.0
    assert upper.item() >= corner


LAYERS = [
    lambda: nn.Linear(7, 5),
    lambda: nn.Conv2d(3, 4, 3, padding=1),
    lambda: nn.Conv2d(4, 6, 3, groups=2),
    lambda: nn.Conv1d(3, 4, 2, stride=2),
]
# the sign pattern of the ends picks the form: every |lo| <= |hi|, every |hi| <= |lo|, or mixed
SIGNS = {"nonnegative": lambda x: x.abs(), "nonpositive": lambda x: -x.abs(),
         "mixed": lambda x: x}


def _input_shape(module):
    if isinstance(module, nn.Linear):
        return (9, module.in_features)
    return (2, module.in_channels, 6, 6) if isinstance(module, nn.Conv2d) else (2, 3, 8)


def _exact_interval(module, lo, hi):
    """Float64 ends of the layer's output, from the exact interval of every product
    ``w * x`` (the larger and the smaller of ``w lo`` and ``w hi``), summed: the layer is
    unfolded into one product per weight and input entry, independently of the engine."""
    lo, hi = lo.double(), hi.double()
    x = torch.stack([lo, hi])  # [2, batch, ...]
    if isinstance(module, nn.Linear):
        w = module.weight.double()
        products = x[:, :, None, :] * w[None, None]  # [2, batch, out, in]
        return (products.amin(0).sum(-1) + module.bias.double(),
                products.amax(0).sum(-1) + module.bias.double())
    conv = F.conv2d if isinstance(module, nn.Conv2d) else F.conv1d
    ends = []
    for pick in (torch.minimum, torch.maximum):
        total = conv(torch.zeros_like(lo), torch.zeros_like(module.weight.double()),
                     module.bias.double(), module.stride, module.padding, module.dilation,
                     module.groups)
        for index in range(module.weight.numel()):  # one weight at a time
            w = torch.zeros(module.weight.numel(), dtype=torch.float64)
            w[index] = module.weight.flatten()[index].double()
            w = w.view_as(module.weight)
            args = (None, module.stride, module.padding, module.dilation, module.groups)
            total = total + pick(conv(lo, w, *args), conv(hi, w, *args))
        ends.append(total)
    return tuple(ends)


@pytest.mark.parametrize("signs", SIGNS)
@pytest.mark.parametrize("layer", LAYERS)
def test_affine_intervals_match_the_exact_interval_of_every_product(layer, signs):
    torch.manual_seed(1)
    module = layer().eval()
    shape = _input_shape(module)
    a, b = SIGNS[signs](torch.randn(shape)), SIGNS[signs](torch.randn(shape))
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    with torch.no_grad():
        lower, upper = compute_bounds(module, Box(lo, hi), "ibp")
        want_lower, want_upper = _exact_interval(module, lo, hi)
    torch.testing.assert_close(lower.double(), want_lower, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(upper.double(), want_upper, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("signs", SIGNS)
@pytest.mark.parametrize("layer", LAYERS)
def test_a_point_stays_a_point_and_an_interval_stays_ordered(layer, signs):
    """``lo == hi`` gives ``lower == upper`` bit for bit (interval attention amplifies any width
    on a clean input), and a narrow interval never comes out with ``lower > upper``."""
    torch.manual_seed(0)
    module = layer().eval()
    shape = _input_shape(module)
    x = SIGNS[signs](torch.randn(shape) * 100)
    with torch.no_grad():
        lower, upper = compute_bounds(module, Box(x, x), "ibp")
        assert torch.equal(lower, upper)
        torch.testing.assert_close(lower, module(x), rtol=1e-5, atol=1e-3)
        narrow = x + torch.rand(shape) * 1e-5
        lower, upper = compute_bounds(module, Box(x, narrow), "ibp")
        assert (lower <= upper).all()
