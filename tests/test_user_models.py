"""Models users bring: a torchvision-style ResNet basic block, GELU in both forms, and
nn.MultiheadAttention (refused, naming what to write instead)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext import RobustTextError
from robusttext.bounds import METHODS, Box, LinfBall, compute_bounds, margin_matrix
from tests.oracles import violations


class BasicBlock(nn.Module):
    """As torchvision's ResNet BasicBlock: in-place ReLU, BatchNorm, ``out += identity``."""

    def __init__(self, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels * stride, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels * stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels * stride, channels * stride, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels * stride)
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(channels, channels * stride, 1, stride, bias=False),
                nn.BatchNorm2d(channels * stride))

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(2)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(2)
        self.layer2 = BasicBlock(2, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def _randomise_batch_norms(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_resnet_basic_blocks_are_sound(method):
    model = _randomise_batch_norms(TinyResNet())
    box = LinfBall(torch.rand(2, 1, 4, 4), 0.05, lower=0.0, upper=1.0)
    C = margin_matrix(torch.tensor([0, 2]), 3)
    assert violations(model, box, method)[0] == 0
    assert violations(model, box, method, C=C)[0] == 0


def test_resnet_block_in_training_mode_is_refused():
    model = _randomise_batch_norms(TinyResNet()).train()
    with pytest.raises(RobustTextError, match="BatchNorm2d.*training=True.*model.eval"):
        compute_bounds(model, LinfBall(torch.rand(2, 1, 6, 6), 0.05))


class GELUs(nn.Module):
    def __init__(self, form):
        super().__init__()
        self.form = form
        self.a = nn.Linear(3, 6)
        self.b = nn.Linear(6, 2)
        self.gelu = nn.GELU(approximate="tanh" if form == "module-tanh" else "none")

    def forward(self, x):
        h = self.a(x)
        if self.form.startswith("module"):
            h = self.gelu(h)
        else:
            h = F.gelu(h, approximate="tanh" if self.form == "F-tanh" else "none")
        return self.b(h)


@pytest.mark.parametrize("form", ["module", "module-tanh", "F", "F-tanh"])
@pytest.mark.parametrize("eps", [0.0, 0.05, 20.0])
@pytest.mark.parametrize("method", METHODS)
def test_gelu_is_sound_in_both_forms(form, eps, method):
    torch.manual_seed(0)
    model = GELUs(form)
    assert violations(model, LinfBall(torch.randn(4, 3), eps), method)[0] == 0


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gelu_interval_is_the_range_of_each_entry(approximate, dtype):
    """The interval rule against a dense grid on many intervals: below the minimum and above
    the maximum, by no more than the grid's spacing allows."""
    torch.manual_seed(0)
    lo = torch.randn(1, 200, dtype=dtype) * 3
    hi = lo + torch.rand(1, 200, dtype=dtype) * torch.tensor([0.0, 1e-6, 0.5, 3.0]).repeat(
        50).to(dtype)
    model = nn.Sequential(nn.GELU(approximate=approximate))
    lower, upper = compute_bounds(model, Box(lo, hi), "ibp")
    grid = lo + torch.linspace(0, 1, 2001, dtype=dtype)[:, None, None] * (hi - lo)
    values = F.gelu(grid, approximate=approximate)
    assert (values.amin(0) >= lower).all() and (values.amax(0) <= upper).all()
    assert (values.amin(0) - lower).max() < 1e-3 and (upper - values.amax(0)).max() < 1e-3


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("method", ["crown", "crown-ibp"])
def test_gelu_linear_bounds_against_a_dense_grid(approximate, method):
    """One GELU, many intervals (inside the dip, across 0, far out): the raw linear bounds hold
    at every grid point."""
    from robusttext.bounds.engine import linear_bounds

    torch.manual_seed(1)
    lo = torch.cat([torch.linspace(-6, 5, 23), torch.tensor([-0.76, -1.0, -0.5, 0.0])])[None]
    hi = lo + torch.tensor([0.0, 1e-7, 0.3, 2.0, 8.0]).repeat(6)[: lo.shape[1]][None]
    model = nn.Sequential(nn.GELU(approximate=approximate))
    lower, upper = linear_bounds(model, Box(lo, hi), method)
    grid = lo + torch.linspace(0, 1, 4001)[:, None, None] * (hi - lo)
    values = F.gelu(grid, approximate=approximate)
    assert (values >= lower - 1e-6).all() and (values <= upper + 1e-6).all()


def test_multihead_attention_is_refused_with_what_to_use_instead():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x)[0]

    with pytest.raises(RobustTextError,
                       match=r"MultiheadAttention.*nn.Linear projections, torch.matmul and "
                             r"torch.softmax.*test_user_models.py"):
        compute_bounds(Attention(), LinfBall(torch.zeros(1, 3, 4), 0.1))
