"""Soundness of the rules for recurrent and attention models, by sampling."""

import pytest
import torch
import torch.nn as nn

from robusttext.bounds import METHODS, Box, LinfBall, compute_bounds, margin_matrix
from robusttext.bounds.layers import CenterNorm
from tests.oracles import violations


class Product(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(4, 1)

    def forward(self, x):
        return self.a(x) * self.b(x) + x.sum(1, keepdim=True) * x[:, :1]


class Square(nn.Module):
    def forward(self, x):
        return torch.cat([x * x, x**2, torch.square(x - 0.3)], dim=1)


class ExpReciprocalSqrt(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 5)

    def forward(self, x):
        h = self.lin(x)
        return torch.cat([torch.exp(h), torch.reciprocal(torch.exp(h) + 0.5),
                          torch.sqrt(h * h + 1.0), h.exp()], dim=1)


class Attention(nn.Module):
    """One attention head with bounded scores and values, softmax and LayerNorm."""

    def __init__(self, dim=6, norm=nn.LayerNorm):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm = norm(dim)
        self.position = nn.Parameter(torch.randn(5, dim) * 0.1)
        self.head = nn.Linear(dim, 2)

    def forward(self, x):  # [batch, 5, dim]
        x = x + self.position
        scores = self.q(x) @ self.k(x).transpose(1, 2) / 2.0
        h = self.norm(x + torch.softmax(scores, dim=-1) @ self.v(x))
        return self.head(h.mean(1))


class LSTMCell(nn.Module):
    """Two unrolled steps of an LSTM cell: sigmoid and tanh gates, products of bounded tensors."""

    def __init__(self, dim=4, hidden=5):
        super().__init__()
        self.gates = nn.Linear(dim + hidden, 4 * hidden)
        self.hidden = hidden
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):  # [batch, 2, dim]
        h = x.new_zeros(x.shape[0], self.hidden)
        c = x.new_zeros(x.shape[0], self.hidden)
        for t in range(2):
            z = self.gates(torch.cat([x[:, t], h], dim=1))
            n = self.hidden
            i, f, g, o = z[:, :n], z[:, n : 2 * n], z[:, 2 * n : 3 * n], z[:, 3 * n :]
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.head(h)


CASES = {
    "product": (Product, (4,), 0.3),
    "square": (Square, (4,), 0.5),
    "exp_reciprocal_sqrt": (ExpReciprocalSqrt, (4,), 0.2),
    "softmax_layernorm": (Attention, (5, 6), 0.02),
    "softmax_centernorm": (lambda: Attention(norm=CenterNorm), (5, 6), 0.05),
    "lstm": (LSTMCell, (2, 4), 0.2),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_nonlinear_rules_are_sound(case, method):
    torch.manual_seed(len(case))
    build, shape, eps = CASES[case]
    model = build().eval()
    x = torch.randn(3, *shape)
    count, lower, upper = violations(model, LinfBall(x, eps), method)
    assert count == 0
    assert torch.isfinite(lower).all() and torch.isfinite(upper).all()
    if model(x).shape[1] == 2:
        C = margin_matrix(torch.tensor([0, 1, 0]), 2)
        assert violations(model, LinfBall(x, eps), method, C=C)[0] == 0


@pytest.mark.parametrize("case", ["softmax_centernorm", "lstm", "product"])
def test_crown_is_at_least_as_tight_as_ibp_on_average(case):
    build, shape, eps = CASES[case]
    widths = {}
    for method in ("ibp", "crown"):
        torch.manual_seed(0)
        model = build().eval()
        x = torch.randn(8, *shape)
        lower, upper = compute_bounds(model, LinfBall(x, eps), method)
        widths[method] = (upper - lower).mean().item()
    assert widths["crown"] <= widths["ibp"]


def test_reciprocal_of_an_interval_through_zero_is_refused():
    from robusttext import RobustTextError

    class Bad(nn.Module):
        def forward(self, x):
            return torch.reciprocal(x)

    with pytest.raises(RobustTextError, match="reciprocal of an interval"):
        compute_bounds(Bad(), LinfBall(torch.zeros(1, 2), 0.1))


class Overflowing(nn.Module):
    """Loose LayerNorm bounds feed exp(-h*h): the intervals overflow to infinity."""

    def __init__(self, dim=8):
        super().__init__()
        self.lin, self.norm, self.out = nn.Linear(dim, dim), nn.LayerNorm(dim), nn.Linear(dim, 2)

    def forward(self, x):
        h = self.norm(self.lin(x))
        return self.out(torch.exp(-h * h * 50.0) * torch.exp(h * 30.0))


@pytest.mark.parametrize("method", METHODS)
def test_overflowing_bounds_widen_to_infinity_never_nan(method):
    torch.manual_seed(0)
    model = Overflowing().eval()
    x = torch.randn(4, 8)
    count, lower, upper = violations(model, LinfBall(x, 0.3), method)
    assert count == 0
    assert not torch.isnan(lower).any() and not torch.isnan(upper).any()
    C = margin_matrix(torch.tensor([0, 1, 0, 1]), 2)
    lower, upper = compute_bounds(model, LinfBall(x, 0.3), method, C=C)
    assert not torch.isnan(lower).any() and not torch.isnan(upper).any()


class Softmax(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)


def softmax_interval_closed_form(lo, hi):
    """``e^{l_i} / (e^{l_i} + sum_{j != i} e^{u_j})`` and its mirror, written out directly."""
    others_hi = hi.exp().sum(-1, keepdim=True) - hi.exp()
    others_lo = lo.exp().sum(-1, keepdim=True) - lo.exp()
    return lo.exp() / (lo.exp() + others_hi), hi.exp() / (hi.exp() + others_lo)


def test_softmax_interval_matches_the_closed_form():
    torch.manual_seed(0)
    center = torch.randn(4, 3, 6, dtype=torch.float64)
    box = LinfBall(center, 0.7)
    lower, upper = compute_bounds(Softmax(), box, "ibp")
    expected = softmax_interval_closed_form(center - 0.7, center + 0.7)
    torch.testing.assert_close(lower, expected[0])
    torch.testing.assert_close(upper, expected[1])


def test_softmax_interval_stays_finite_and_sound_for_extreme_scores():
    """Scores of +-1e4 (as after attention masking) and wide intervals: the direct formula
    gives 0 / 0 there; the bounds must stay finite, sound and differentiable."""
    torch.manual_seed(1)
    center = (torch.randn(8, 5) * 3e3).requires_grad_(True)
    box = LinfBall(center, 2e3)
    lower, upper = compute_bounds(Softmax(), box, "ibp")
    assert torch.isfinite(lower).all() and torch.isfinite(upper).all()
    (lower.sum() - upper.sum()).backward()
    assert torch.isfinite(center.grad).all()
    with torch.no_grad():
        samples = center + 2e3 * (2 * torch.rand(256, *center.shape) - 1)
        samples[0], samples[1] = center + 2e3, center - 2e3
        values = torch.softmax(samples, dim=-1)
        assert (values >= lower - 1e-6).all() and (values <= upper + 1e-6).all()



@pytest.mark.parametrize("shift", [0.0, 80.0, -100.0, 1e4])
def test_softmax_interval_in_float32_does_not_depend_on_where_the_row_sits(shift):
    """Softmax ignores a shift of the whole row, so must its bounds: a float32 box moved to 80
    or 1e4 gives the interval of the unshifted box, computed in float64 by the closed form, to
    float32's precision at the output (it once lost the input's precision instead: at 80 a
    point box's lower bound was 0.25000045 against the true 0.25, and CROWN's bounds crossed)."""
    torch.manual_seed(2)
    center = torch.randn(3, 2, 5, dtype=torch.float64)
    center[0] = 0.0  # a point row of equal scores: every probability is exactly 1 / 5
    radius = torch.rand(3, 2, 5, dtype=torch.float64)
    radius[0] = 0.0
    box = Box((center - radius + shift).float(), (center + radius + shift).float())
    # the box float32 can hold, moved back in float64 (exactly: the values are near the shift)
    expected = softmax_interval_closed_form(box.lower.double() - shift,
                                            box.upper.double() - shift)
    lower, upper = compute_bounds(Softmax(), box, "ibp")
    assert (lower.double() - expected[0]).abs().max() < 1e-6
    assert (upper.double() - expected[1]).abs().max() < 1e-6
    assert (lower[0] <= 0.2).all() and (upper[0] >= 0.2).all()


def _s_shaped_intervals(dtype):
    """Intervals across 0 from 1e-4 to 60 wide, lopsided both ways, and a few extreme ones."""
    g = torch.Generator().manual_seed(0)
    n = 4000
    widths = torch.logspace(-4, 1.5, n, dtype=dtype)
    lo = -torch.rand(n, generator=g, dtype=dtype) * widths
    hi = torch.rand(n, generator=g, dtype=dtype) * widths.flip(0)
    extreme = torch.tensor([[-1e-7, 30.0], [-30.0, 1e-7], [-1e-3, 1e-3], [-0.5, 0.5],
                            [-20.0, 20.0]], dtype=dtype)
    return torch.cat([lo, extreme[:, 0]]), torch.cat([hi, extreme[:, 1]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_s_shaped_lines_across_zero_hold_on_a_grid_and_beat_the_end_point_lines(name, dtype):
    """The lines of sigmoid and tanh on intervals across 0 lie on the right side of the curve at
    201 points per interval (both ends included), and enclose no more area than the lines
    through both ends with the smaller end-point derivative (derived here by hand)."""
    from robusttext.bounds.rules import activations

    f = getattr(torch, name)
    df = activations._sigmoid_derivative if name == "sigmoid" else activations._tanh_derivative
    rule = activations.SShapedRule(f, df)
    lo, hi = _s_shaped_intervals(dtype)
    slope_l, icpt_l, slope_u, icpt_u = rule.relax(None, lo, hi)
    t = torch.linspace(0, 1, 201, dtype=dtype)[:, None]
    x = lo + t * (hi - lo)
    y = f(x)
    slack = 4 * torch.finfo(dtype).eps
    assert (slope_l * x + icpt_l <= y + slack).all()
    assert (slope_u * x + icpt_u >= y - slack).all()
    k = torch.minimum(df(lo), df(hi))
    mid = (lo + hi) / 2  # area between line and curve: width * (line at mid - mean of f)
    assert (slope_u * mid + icpt_u <= f(hi) + k * (mid - hi) + slack).all()
    assert (slope_l * mid + icpt_l >= f(lo) + k * (mid - lo) - slack).all()
    gap = (slope_u - slope_l) * mid + icpt_u - icpt_l
    end_point_gap = f(hi) - f(lo) - k * (hi - lo)
    assert gap.mean() < 0.7 * end_point_gap.mean()  # the tangent lines do take over somewhere


def test_activation_lines_are_computed_once_per_interval(monkeypatch):
    """CROWN passes through every earlier activation once per intermediate node: the lines of
    an interval are kept on the node, computed once, and the bound is the same as without the
    keeping (every call recomputing)."""
    from robusttext.bounds.rules.activations import ActivationRule, SShapedRule

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                                torch.nn.Sigmoid(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3))
    ball = LinfBall(torch.randn(4, 5), 0.3)
    calls = []
    relax = SShapedRule.relax
    monkeypatch.setattr(SShapedRule, "relax",
                        lambda self, ctx, lo, hi: calls.append(1) or relax(self, ctx, lo, hi))
    with torch.no_grad():
        kept = compute_bounds(model, ball, "crown")
    # each activation's interval is final once its node is bounded: one relaxation each
    assert len(calls) == 3
    uncached = ActivationRule.lines

    def fresh(self, ctx):
        ctx.kept.pop("lines", None)
        return uncached(self, ctx)

    monkeypatch.setattr(ActivationRule, "lines", fresh)
    with torch.no_grad():
        recomputed = compute_bounds(model, ball, "crown")
    # recomputed on every pass: the node after the k-th activation passes through k of them,
    # 1 + 2 and the output's 3
    assert len(calls) - 3 == 1 + 2 + 3
    for a, b in zip(kept, recomputed):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("side", ["upper", "lower"])
def test_tangent_points_lie_just_below_the_tangent_point_and_fall_towards_0(name, side):
    """Each table point ``t`` for a grid value ``g`` is on the rising side of the chord slope
    ``q(x) = (f(x) - f(g)) / (x - g)`` (so ``t <= d(g)``, checked here in float64), within 1e-9
    of where ``q`` stops rising, and the points fall as ``g`` rises to 0."""
    from robusttext.bounds.rules import activations

    f = getattr(torch, name)
    df = activations._sigmoid_derivative if name == "sigmoid" else activations._tanh_derivative
    rule = activations.SShapedRule(f, df)
    if side == "lower":
        f, df = (lambda x, f=f: -f(-x)), (lambda x, df=df: df(-x))
    points = rule.tangent_points(side, torch.float64, torch.device("cpu"))
    cells = activations.TANGENT_GRID_CELLS
    grid = torch.linspace(activations.TANGENT_GRID_START, 0.0, cells + 1, dtype=torch.float64)
    g, t = grid[:-1], points[:-1]

    def q(x):
        return (f(x) - f(g)) / (x - g)

    assert (t >= 0).all() and points[-1] == 0
    assert (q(t) < df(t)).all()  # still rising: t <= d(g)
    assert (q(t + 1e-9) >= df(t + 1e-9)).all()  # and no further from d than 1e-9
    assert (points[1:] <= points[:-1]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_s_shaped_lines_hold_for_lower_ends_at_and_beside_grid_points(name, dtype):
    """Lower ends on the tangent table's grid, one ulp either side of it, and beyond its start
    (-16): the lines hold at 401 points of each interval."""
    from robusttext.bounds.rules import activations

    f = getattr(torch, name)
    df = activations._sigmoid_derivative if name == "sigmoid" else activations._tanh_derivative
    rule = activations.SShapedRule(f, df)
    grid = torch.linspace(-16.0, 0.0, activations.TANGENT_GRID_CELLS + 1, dtype=dtype)[::97]
    grid = grid[grid < 0]
    lo = torch.cat([grid, torch.nextafter(grid, torch.full_like(grid, -1e9)),
                    torch.nextafter(grid, torch.zeros_like(grid)),
                    torch.tensor([-16.5, -40.0, -1e4], dtype=dtype)])
    for width in (1e-3, 0.3, 3.0, 40.0):
        hi = torch.full_like(lo, width)
        for a, b in ((lo, hi), (-hi, -lo)):  # both sides take the table
            slope_l, icpt_l, slope_u, icpt_u = rule.relax(None, a, b)
            x = a + torch.linspace(0, 1, 401, dtype=dtype)[:, None] * (b - a)
            x = torch.minimum(torch.maximum(x, a), b)  # rounding must not leave the interval
            y = f(x)
            eps = torch.finfo(dtype).eps  # the rounding of evaluating each line here
            slack_l = 4 * eps * (1 + (slope_l * x).abs() + icpt_l.abs())
            slack_u = 4 * eps * (1 + (slope_u * x).abs() + icpt_u.abs())
            assert (slope_l * x + icpt_l <= y + slack_l).all()
            assert (slope_u * x + icpt_u >= y - slack_u).all()


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (None, 0.5), (-0.5, None), (0.3, 0.3)])
def test_clamp_lines_hold_on_a_grid(low, high):
    """The clamp rule's lines lie below and above ``torch.clamp`` at 201 points of every
    interval (both ends included): intervals inside, below, above and across one or both
    kinks, and points."""
    from robusttext.bounds.rules import activations

    class Ctx:
        module = None

        class node:
            target = torch.clamp

        def arg(self, name, default=None):
            return {"min": low, "max": high}[name]

    gen = torch.Generator().manual_seed(0)
    lo = torch.randn(4000, generator=gen, dtype=torch.float64) * 2
    hi = lo + torch.rand(4000, generator=gen, dtype=torch.float64) * torch.tensor(
        [0.0, 0.1, 1.0, 6.0], dtype=torch.float64).repeat(1000)
    slope_l, icpt_l, slope_u, icpt_u = activations.ClampRule().relax(Ctx(), lo, hi)
    x = lo + torch.linspace(0, 1, 201, dtype=torch.float64)[:, None] * (hi - lo)
    y = torch.clamp(x, low, high)
    assert (slope_l * x + icpt_l <= y + 1e-12).all()
    assert (slope_u * x + icpt_u >= y - 1e-12).all()
