"""The five classes of silent unsoundness found on models written outside the project, each fixed
by the rule registry (an argument a rule does not declare is refused by name) and by rules that are
sound for every interval. Every test here failed on the engine before the registry."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext import RobustTextError
from robusttext.bounds import METHODS, Box, LinfBall, SubstitutionSet, compute_bounds
from tests.oracles import sample_box, violations

BACKWARD = ["crown", "crown-ibp"]


# -- 1. arguments ---------------------------------------------------------------------------
class AddAlpha(nn.Module):
    def __init__(self, alpha, subtract=False):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.alpha, self.subtract = alpha, subtract

    def forward(self, x):
        h = self.lin(x)
        if self.subtract:
            return torch.sub(x, torch.relu(h), alpha=self.alpha)
        return torch.add(x, torch.relu(h), alpha=self.alpha)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("alpha, subtract", [(3, False), (-2.5, False), (3, True), (-0.5, True)])
def test_add_and_sub_with_alpha_are_sound(method, alpha, subtract):
    torch.manual_seed(0)
    model = AddAlpha(alpha, subtract)
    box = LinfBall(torch.randn(3, 4), 0.5)
    assert violations(model, box, method)[0] == 0


class FloorDivide(nn.Module):
    def forward(self, x):
        return torch.div(x, 2.0, rounding_mode="floor")


def test_rounding_mode_is_refused_by_name_and_line():
    with pytest.raises(RobustTextError,
                       match=r"torch.div: rounding_mode='floor'.*test_bounds_defects.py"):
        compute_bounds(FloorDivide(), LinfBall(torch.zeros(1, 3), 0.1))


class PadWithValue(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(6, 2)

    def forward(self, x):
        return self.b(F.pad(torch.relu(self.a(x)), (1, 1), value=5.0))


@pytest.mark.parametrize("method", METHODS)
def test_pad_value_reaches_the_backward_bias(method):
    torch.manual_seed(0)
    assert violations(PadWithValue(), LinfBall(torch.randn(4, 3), 0.3), method)[0] == 0


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("method", METHODS)
def test_pad_modes_are_sound(mode, method):
    class Pad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv1d(2, 3, 2)
            self.b = nn.Linear(3 * 7, 2)

        def forward(self, x):  # [b, 2, 6] -> conv [b, 3, 5] -> pad [b, 3, 7]
            return self.b(F.pad(torch.relu(self.a(x)), (1, 1), mode=mode).flatten(1))

    torch.manual_seed(1)
    assert violations(Pad(), LinfBall(torch.randn(3, 2, 6), 0.3), method)[0] == 0


class SequenceConv(nn.Module):
    def __init__(self, padding_mode):
        super().__init__()
        self.conv = nn.Conv1d(3, 2, 3, padding=1, padding_mode=padding_mode)

    def forward(self, x):  # x [batch, length, dim] -> [batch, 2, length]
        return self.conv(x.transpose(1, 2))


def _substitutions(length=4, dim=3, k=2, budget=1):
    torch.manual_seed(0)
    original = torch.randn(1, length, dim)
    candidates = original[:, :, None] + torch.randn(1, length, k, dim)
    mask = torch.ones(1, length, k, dtype=torch.bool)
    return SubstitutionSet(original, candidates, mask, budget)


def test_circular_conv_after_a_substitution_set_is_refused():
    with pytest.raises(RobustTextError, match="padding_mode='circular'"):
        compute_bounds(SequenceConv("circular"), _substitutions(), "ibp")


def test_zero_padded_conv_after_a_substitution_set_matches_enumeration():
    import itertools

    subs = _substitutions()
    model = SequenceConv("zeros")
    lower, upper = compute_bounds(model, subs, "ibp")
    outs = []
    for position, choice in itertools.product(range(4), range(-1, 2)):
        x = subs.center.clone()
        if choice >= 0:
            x[0, position] = subs.candidates[0, position, choice]
        outs.append(model(x))
    outs = torch.cat(outs)
    torch.testing.assert_close(lower[0], outs.amin(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upper[0], outs.amax(0), atol=1e-5, rtol=1e-5)


# -- 2. in place ----------------------------------------------------------------------------
@pytest.mark.parametrize("activation", [lambda: nn.ReLU(inplace=True),
                                        lambda: nn.LeakyReLU(0.1, inplace=True)])
@pytest.mark.parametrize("method", METHODS)
def test_inplace_activations_are_bounded_like_the_out_of_place_ones(activation, method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), activation(), nn.Linear(8, 8), activation(),
                          nn.Linear(8, 3))
    box = LinfBall(torch.randn(5, 4), 0.5)
    assert violations(model, box, method)[0] == 0
    reference = nn.Sequential(*[nn.ReLU() if isinstance(m, nn.ReLU) else
                                nn.LeakyReLU(0.1) if isinstance(m, nn.LeakyReLU) else m
                                for m in model])
    for a, b in zip(compute_bounds(model, box, method), compute_bounds(reference, box, method)):
        torch.testing.assert_close(a, b)


class OverwritesAndReadsAgain(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        h = self.lin(x)
        y = F.relu(h, inplace=True)
        return y + h  # h is y here: the model returns 2 relu(h)


def test_inplace_write_into_a_tensor_read_later_is_refused():
    with pytest.raises(RobustTextError, match="in place.*read again"):
        compute_bounds(OverwritesAndReadsAgain(), LinfBall(torch.zeros(1, 3), 0.1))


class InplaceAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        out = self.lin(x)
        out += x
        return torch.relu(out)


@pytest.mark.parametrize("method", METHODS)
def test_inplace_add_is_sound(method):
    torch.manual_seed(0)
    assert violations(InplaceAdd(), LinfBall(torch.randn(4, 3), 0.5), method)[0] == 0


# -- 3. overflow ----------------------------------------------------------------------------
class ExpThenLinear(nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.lin = nn.Linear(len(weights), 1)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([weights]))
            self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(torch.exp(x))


@pytest.mark.parametrize("lo, hi", [(80.0, 88.0), (87.0, 88.7), (85.0, 89.0), (0.0, 88.0)])
@pytest.mark.parametrize("weights", [[0.01], [1e-3, -1e-3]])
@pytest.mark.parametrize("method", METHODS)
def test_exp_near_float32_overflow_gives_the_right_infinity(lo, hi, weights, method):
    """float32 exp tops out near 88.7: the lines' slopes and intercepts overflow, and the bound
    must be the side's infinity or a sound finite number, never a wrong-sign infinity."""
    model = ExpThenLinear(weights)
    box = Box(torch.full((1, len(weights)), lo), torch.full((1, len(weights)), hi))
    lower, upper = compute_bounds(model, box, method)
    points = sample_box(box.lower, box.upper, n=400)
    with torch.no_grad():
        outs = model(points.flatten(0, 1)).view(400, 1, 1)
    assert not torch.isnan(lower).any() and not torch.isnan(upper).any()
    assert (upper > -float("inf")).all() and (lower < float("inf")).all()
    finite = torch.isfinite(outs)
    # the model's own output moves by rounding with the batch size (its matrix product takes
    # another kernel: by 1e28 here, one float32 ulp of 1.65e35), so points are compared within a few
    # float32 ulps of their magnitude
    slack = 8 * torch.finfo(torch.float32).eps * outs.abs()
    assert ((outs + slack >= lower) | ~finite).all()
    assert ((outs - slack <= upper) | ~finite).all()


# -- 4. narrow intervals --------------------------------------------------------------------
class Square(nn.Module):
    def forward(self, x):
        return x * x


@pytest.mark.parametrize("width", [0.0, 1e-12, 1e-9, 1e-7])
@pytest.mark.parametrize("method", METHODS)
def test_square_of_a_narrow_interval_across_zero(width, method):
    box = Box(torch.full((1, 2), -width, dtype=torch.float64),
              torch.full((1, 2), width, dtype=torch.float64))
    lower, upper = compute_bounds(Square(), box, method)
    assert (lower <= 0).all() and (upper >= width * width).all()


@pytest.mark.parametrize("eps", [1e-14, 1e-12])
@pytest.mark.parametrize("method", METHODS)
def test_layer_norm_with_small_eps_in_float64(eps, method):
    """Centred values in a narrow interval across 0: the square's lower line must be 0 there,
    or the variance is overestimated and large normalised outputs are excluded."""
    import itertools

    model = nn.Sequential(nn.LayerNorm(4, eps=eps)).double()
    center, delta = torch.ones(1, 4, dtype=torch.float64), 2e-7
    box = LinfBall(center, delta)
    grid = torch.tensor(list(itertools.product([-1.0, 0.0, 1.0], repeat=4)), dtype=torch.float64)
    with torch.no_grad():
        outs = model(center + delta * grid)
    lower, upper = compute_bounds(model, box, method)
    assert (outs >= lower - 1e-9).all() and (outs <= upper + 1e-9).all()


@pytest.mark.parametrize("method", METHODS)
def test_layer_norm_of_a_wide_box_stays_within_its_reach(method):
    """A normalised entry never leaves [-sqrt(n-1), sqrt(n-1)] (the entries of a centred vector
    sum to 0): the bounds of a LayerNorm with eps 1e-12 over a box around 0, where the
    variance's lower bound is 0 and 1/sqrt(var + eps) is 1e6, stay within that reach times the
    weight, plus the bias, and contain every sampled output, the one-hot corners that reach it
    included."""
    import itertools

    layer = nn.LayerNorm(4, eps=1e-12)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.0, -1.0, 2.0]))
    box = Box(-torch.ones(1, 4), torch.ones(1, 4))
    lower, upper = compute_bounds(layer, box, method)
    reach = 3 ** 0.5 * layer.weight.detach().abs() * 1.001
    assert (upper <= layer.bias.detach() + reach + 1e-5).all()
    assert (lower >= layer.bias.detach() - reach - 1e-5).all()
    corners = torch.tensor(list(itertools.product([-1.0, 0.0, 1.0], repeat=4)))
    with torch.no_grad():
        outs = layer(torch.cat([corners, torch.rand(2000, 4) * 2 - 1]))
    assert (outs >= lower - 1e-5).all() and (outs <= upper + 1e-5).all()
    assert (outs.amax(0) > layer.bias + 3 ** 0.5 * layer.weight.abs() - 1e-4).all()


# -- 5. randomness --------------------------------------------------------------------------
def test_dropout_in_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    with pytest.raises(RobustTextError, match=r"Dropout \(1\): training=True.*model.eval"):
        compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1))
    model.eval()
    compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1))


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return F.dropout(self.lin(x), 0.5, training=self.training)


def test_functional_dropout_follows_the_mode():
    model = FunctionalDropout().train()
    with pytest.raises(RobustTextError, match="training=True"):
        compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1))
    model.eval()  # traced again: the flag is part of the graph
    compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1))


# -- and what a sixth would look like -------------------------------------------------------
class SumWithDtype(nn.Module):
    def forward(self, x):
        return torch.sum(x, dim=1, dtype=torch.float64)


class SumOverBatch(nn.Module):
    def forward(self, x):
        return x.sum(0, keepdim=True)


class SoftmaxOverBatch(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=0)


@pytest.mark.parametrize("model, message", [
    (SumWithDtype(), r"dtype=torch.float64"),
    (SumOverBatch(), r"batch dimension"),
    (SoftmaxOverBatch(), r"batch dimension"),
    (nn.Sequential(nn.Conv1d(1, 1, 2, padding_mode="reflect", padding=1)),
     r"padding_mode='reflect'"),
    (nn.Sequential(nn.LeakyReLU(-0.5)), r"negative_slope=-0.5"),
])
def test_undeclared_arguments_are_refused_by_name(model, message):
    with pytest.raises(RobustTextError, match=message):
        compute_bounds(model, LinfBall(torch.zeros(2, 1, 3), 0.1))


class ViewAsDtype(nn.Module):
    def forward(self, x):
        return x.view(torch.int32)


class WritesIntoABuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.ones(1, 3))

    def forward(self, x):
        y = self.w.add_(x)
        return y + self.w


@pytest.mark.parametrize("model, message", [
    (ViewAsDtype(), r"Tensor.view: shape=\(torch.int32,\)"),
    (WritesIntoABuffer(), r"Tensor.add_ writes .* into a constant tensor"),
])
def test_reinterpreting_views_and_writes_into_constants_are_refused(model, message):
    with pytest.raises(RobustTextError, match=message):
        compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1))


class TwoAttentionProducts(nn.Module):
    """``x @ x^T``, then ``softmax(x) @ x^T`` twice: scores near 1e6 from inputs near 1e3."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = x @ x.transpose(-1, -2)
        for _ in range(2):
            x = torch.softmax(x, -1) @ x.transpose(-1, -2)
        return self.head(x.flatten(1))


@pytest.mark.parametrize("method", METHODS)
def test_crown_rounding_error_never_crosses_the_interval_bounds(method):
    """A float32 point box at 1e3 (a fuzz case): CROWN's intermediate bounds summed terms far
    larger than the values, came out 35% off and crossed the interval bounds, and the crossed
    intervals made the final bounds miss the model's output by 1.3e6. The bounds must contain
    the output, computed in float64 by the model itself, to float32's precision."""
    torch.manual_seed(3)
    model = TwoAttentionProducts().eval()
    x = torch.tensor([[[-34.1046, -467.7198, -199.8212, 995.9949],
                       [-732.6154, -1505.4281, -643.1949, -8.5615]],
                      [[694.6974, 58.2310, 18.1747, 25.4827],
                       [-2310.5659, 1096.8176, -380.7435, -1171.9596]]])
    with torch.no_grad():
        lower, upper = compute_bounds(model, Box(x, x), method)
        expected = model.double()(x.double())
    tolerance = 1e-5 * expected.abs()
    assert (lower <= upper).all()
    assert (lower.double() <= expected + tolerance).all()
    assert (upper.double() >= expected - tolerance).all()


def test_intersect_keeps_the_tighter_bound_and_the_interval_where_they_contradict():
    from robusttext.bounds.engine import intersect

    def t(values):
        return torch.tensor(values, dtype=torch.float64)

    ibp = (t([0.0, 0.0, 0.0]), t([1.0, 1.0, 1.0]))
    # entry 0 tighter on both sides; entry 1 crossed itself; entry 2 above the interval
    lower, upper = intersect(ibp, (t([0.2, 0.6, 1.5]), t([0.8, 0.4, 2.0])))
    assert lower.tolist() == [0.2, 0.0, 0.0]
    assert upper.tolist() == [0.8, 1.0, 1.0]
    lower, upper = intersect(ibp, (None, t([0.5, -1.0, 2.0])))
    assert lower.tolist() == [0.0, 0.0, 0.0] and upper.tolist() == [0.5, 1.0, 1.0]
