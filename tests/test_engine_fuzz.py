"""Property-based fuzzing of the bound engine with hypothesis.

``graphs()`` draws a random model over the supported operations (with random argument values:
in-place variants, alpha, padding modes and values, strides, dilations, groups, keepdim,
negative dims, module or functional or method forms), a dtype, and an input set: a box with
widths from 0 through 1e-9 to 1e3 (values near float32 overflow included) or a substitution set.
``check(case)`` runs every method and returns the violations: sampled points (the box's corners
included) or, for a substitution set, every rewrite by enumeration, that fall outside the
bounds; a NaN bound or an infinity of the wrong sign is a violation too. A refusal
(RobustTextError) is allowed: it is never a wrong bound.

CI runs a fixed, derandomised number of examples; ``bench/fuzz_campaign.py`` runs a long
campaign with the same generator.
"""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

from robusttext import RobustTextError
from robusttext.bounds import METHODS, Box, SubstitutionSet, compute_bounds

WIDTHS = (0.0, 1e-9, 1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3)


class Graph(nn.Module):
    """``steps``: ``(fn, name)`` pairs run in order on ``(x, previous)``; modules in ``layers``."""

    def __init__(self, steps, layers, head):
        super().__init__()
        self.steps, self.layers, self.head = steps, nn.ModuleList(layers), head

    def forward(self, x):
        previous = x
        for fn, _ in self.steps:
            x, previous = fn(self, x, previous), x
        return self.head(x.flatten(1))

    def describe(self) -> str:
        return " -> ".join(name for _, name in self.steps)


def _elementwise(draw, layers):
    """An op that keeps the shape: ``(fn(model, x, previous), name)``."""
    kind = draw(st.sampled_from([
        "relu", "relu_inplace", "leaky", "sigmoid", "tanh", "gelu", "exp", "square", "sqrt",
        "reciprocal", "add_alpha", "sub_alpha", "iadd", "scale", "divide", "product", "neg",
        "dropout"]))
    if kind == "relu":
        form = draw(st.sampled_from(["module", "F", "torch", "method"]))
        if form == "module":
            layers.append(nn.ReLU())
            i = len(layers) - 1
            return (lambda m, x, p: m.layers[i](x)), "nn.ReLU"
        return {"F": (lambda m, x, p: F.relu(x)), "torch": (lambda m, x, p: torch.relu(x)),
                "method": (lambda m, x, p: x.relu())}[form], f"{form} relu"
    if kind == "relu_inplace":
        layers.append(nn.ReLU(inplace=True))
        i = len(layers) - 1
        return (lambda m, x, p: m.layers[i](x * 1.0)), "nn.ReLU(inplace)"
    if kind == "leaky":
        slope = draw(st.sampled_from([0.0, 0.01, 0.3, 1.0]))
        inplace = draw(st.booleans())
        layers.append(nn.LeakyReLU(slope, inplace=inplace))
        i = len(layers) - 1
        return (lambda m, x, p: m.layers[i](x + 0.0)), f"LeakyReLU({slope}, {inplace})"
    if kind in ("sigmoid", "tanh"):
        fn = torch.sigmoid if kind == "sigmoid" else torch.tanh
        return (lambda m, x, p: fn(x)), kind
    if kind == "gelu":
        approximate = draw(st.sampled_from(["none", "tanh"]))
        if draw(st.booleans()):
            layers.append(nn.GELU(approximate=approximate))
            i = len(layers) - 1
            return (lambda m, x, p: m.layers[i](x)), f"nn.GELU({approximate})"
        return (lambda m, x, p: F.gelu(x, approximate=approximate)), f"F.gelu({approximate})"
    if kind == "exp":
        return (lambda m, x, p: torch.exp(x)), "exp"
    if kind == "square":
        form = draw(st.sampled_from(["mul", "pow", "square"]))
        return {"mul": (lambda m, x, p: x * x), "pow": (lambda m, x, p: x ** 2),
                "square": (lambda m, x, p: torch.square(x))}[form], f"square({form})"
    if kind == "sqrt":
        return (lambda m, x, p: torch.sqrt(x * x + 0.5)), "sqrt(x*x+0.5)"
    if kind == "reciprocal":
        return (lambda m, x, p: torch.reciprocal(torch.square(x) + 1.0)), "1/(x^2+1)"
    if kind in ("add_alpha", "sub_alpha"):
        alpha = draw(st.sampled_from([1, 2, -0.5, 3.0]))
        form = draw(st.sampled_from(["torch", "method"]))
        if kind == "add_alpha":
            fn = ((lambda m, x, p: torch.add(x, p, alpha=alpha)) if form == "torch" else
                  (lambda m, x, p: x.add(p, alpha=alpha)))
        else:
            fn = ((lambda m, x, p: torch.sub(x, p, alpha=alpha)) if form == "torch" else
                  (lambda m, x, p: x.sub(p, alpha=alpha)))
        return _same_shape(fn), f"{kind}({alpha})"
    if kind == "iadd":
        def iadd(m, x, p):
            y = x * 1.0
            y += 0.5
            return y
        return iadd, "+="
    if kind == "scale":
        factor = draw(st.sampled_from([2.0, -1.5, 0.0]))
        return (lambda m, x, p: x * factor), f"*{factor}"
    if kind == "divide":
        divisor = draw(st.sampled_from([2.0, -4.0]))
        return (lambda m, x, p: x / divisor), f"/{divisor}"
    if kind == "product":
        return _same_shape(lambda m, x, p: x * p), "x*previous"
    if kind == "neg":
        return (lambda m, x, p: -x), "neg"
    layers.append(nn.Dropout(0.3))
    i = len(layers) - 1
    return (lambda m, x, p: m.layers[i](x)), "Dropout(eval)"


def _same_shape(fn):
    """Combine with the previous tensor only when the shapes agree (else with ``x`` itself)."""
    def combined(m, x, p):
        return fn(m, x, p if p.shape == x.shape else x)
    return combined


def _reshaping(draw, shape, layers):
    """An op that may change the shape; returns ``(fn, name, new_shape)`` or None."""
    dims = len(shape)  # without the batch
    kind = draw(st.sampled_from(["linear", "conv", "batch_norm", "pad", "cat", "slice",
                                 "transpose", "reduce", "softmax", "pool", "matmul",
                                 "factor", "steps"]))
    if kind == "linear":
        out = draw(st.integers(1, 5))
        bias = draw(st.booleans())
        layers.append(nn.Linear(shape[-1], out, bias=bias))
        i = len(layers) - 1
        if draw(st.booleans()):
            return (lambda m, x, p: m.layers[i](x)), f"Linear({out})", (*shape[:-1], out)
        return ((lambda m, x, p: F.linear(x, m.layers[i].weight, m.layers[i].bias)),
                f"F.linear({out})", (*shape[:-1], out))
    if kind == "conv" and dims in (2, 3):
        channels = shape[0]
        groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
        out = groups * draw(st.integers(1, 2))
        k, stride = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        padding, dilation = draw(st.integers(0, 1)), draw(st.integers(1, 2))
        spatial = shape[1:]
        size = [(s + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for s in spatial]
        if min(size) < 1:
            return None
        conv = (nn.Conv1d if dims == 2 else nn.Conv2d)(channels, out, k, stride, padding,
                                                        dilation, groups)
        layers.append(conv)
        i = len(layers) - 1
        # contiguous: torch 2.13's CPU conv1d crashed (SIGSEGV) on some permuted inputs in the
        # model's own forward pass; the engine never saw those graphs
        name = f"Conv{dims - 1}d(k{k} s{stride} p{padding} d{dilation} g{groups})"
        return (lambda m, x, p: m.layers[i](x.contiguous())), name, (out, *size)
    if kind == "batch_norm" and dims in (1, 2, 3):
        bn = (nn.BatchNorm1d if dims <= 2 else nn.BatchNorm2d)(shape[0])
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.2, 2)
            bn.weight.uniform_(-2, 2)
        layers.append(bn)
        i = len(layers) - 1
        return (lambda m, x, p: m.layers[i](x)), "BatchNorm", shape
    if kind == "pad" and dims >= 2:
        left, right = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        if mode != "constant" and (max(left, right) >= shape[-1] or dims != 2):
            mode = "constant"  # torch pads only the last dim of a 3-D tensor in those modes
        value = draw(st.sampled_from([0.0, 5.0, -1.0]))
        kwargs = {"value": value} if mode == "constant" else {}
        return ((lambda m, x, p: F.pad(x, (left, right), mode=mode, **kwargs)),
                f"pad({left},{right},{mode},{value})", (*shape[:-1], shape[-1] + left + right))
    if kind == "cat":
        dim = draw(st.integers(1, dims))
        negative = draw(st.booleans())
        d = dim - dims - 1 if negative else dim
        new = list(shape)
        new[dim - 1] *= 2
        return (lambda m, x, p: torch.cat([x, x * 0.5 + 1.0], dim=d)), f"cat(dim={d})", \
            tuple(new)
    if kind == "factor":
        # times (or divided by) a constant tensor: a 0/1 mask, positive, or of either sign
        # with zeros of both signs
        values = draw(st.sampled_from(["mask", "positive", "signed"]))
        c = {"mask": lambda: (torch.rand(shape) < 0.5).float(),
             "positive": lambda: torch.rand(shape) * 2 + 0.1,
             "signed": lambda: torch.where(torch.rand(shape) < 0.3, 0.0, torch.randn(shape))
             * torch.where(torch.rand(shape) < 0.5, 1.0, -1.0)}[values]()
        form = draw(st.sampled_from(["x*c", "c*x", "x/c"] if values == "positive"
                                    else ["x*c", "c*x"]))
        layers.append(_Factor(c, form))
        i = len(layers) - 1
        return (lambda m, x, p: m.layers[i](x)), f"{form}({values})", shape
    if kind == "steps":
        # every step of a dimension read on its own (x[:, t], negative positions too) and
        # stacked back, as an unrolled recurrence reads its sequence
        dim = draw(st.integers(1, dims))
        negative = draw(st.booleans())
        lead = (slice(None),) * dim
        n = shape[dim - 1]

        def stepped(m, x, p):
            steps = [x[lead + ((t - n) if negative else t,)] for t in range(n)]
            return torch.stack([torch.tanh(s) if t % 2 else s for t, s in enumerate(steps)], dim)
        return stepped, f"steps(dim={dim}{', negative' if negative else ''})", shape
    if kind == "slice" and shape[-1] >= 2:
        return (lambda m, x, p: x[..., 1:]), "[..., 1:]", (*shape[:-1], shape[-1] - 1)
    if kind == "transpose" and dims >= 2:
        a, b = draw(st.permutations(range(1, dims + 1)))[:2]
        new = list(shape)
        new[a - 1], new[b - 1] = new[b - 1], new[a - 1]
        if draw(st.booleans()):
            return (lambda m, x, p: x.transpose(a, b)), f"transpose({a},{b})", tuple(new)
        order = list(range(dims + 1))
        order[a], order[b] = order[b], order[a]
        return (lambda m, x, p: x.permute(*order)), f"permute{order}", tuple(new)
    if kind == "reduce" and dims >= 2:
        dim = draw(st.integers(1, dims))
        keepdim, mean = draw(st.booleans()), draw(st.booleans())
        d = dim - dims - 1 if draw(st.booleans()) else dim
        new = list(shape)
        if keepdim:
            new[dim - 1] = 1
        else:
            del new[dim - 1]
        fn = ((lambda m, x, p: x.mean(d, keepdim=keepdim)) if mean else
              (lambda m, x, p: torch.sum(x, dim=d, keepdim=keepdim)))
        return fn, f"{'mean' if mean else 'sum'}({d}, {keepdim})", tuple(new)
    if kind == "softmax":
        d = draw(st.sampled_from([-1, dims]))
        return (lambda m, x, p: torch.softmax(x, dim=d)), f"softmax({d})", shape
    if kind == "matmul" and dims >= 2:
        # both operands bounded (attention): [.., a, b] @ [.., b, a]; a non-negative operand
        # (relu, softmax) takes the four-matmul form of the interval
        form = draw(st.sampled_from(["x@xT", "relu(x)@xT", "x@relu(x)T", "softmax(x)@xT"]))
        first = {"x@xT": lambda x: x, "relu(x)@xT": torch.relu, "x@relu(x)T": lambda x: x,
                 "softmax(x)@xT": lambda x: torch.softmax(x, -1)}[form]
        second = torch.relu if form == "x@relu(x)T" else (lambda x: x)
        new = (*shape[:-1], shape[-2])
        return (lambda m, x, p: first(x) @ second(x).transpose(-1, -2)), form, new
    if kind == "pool" and dims in (2, 3) and min(shape[1:]) >= 2:
        pool = draw(st.sampled_from(["max", "avg"]))
        fn1 = {"max": (F.max_pool1d, F.max_pool2d), "avg": (F.avg_pool1d, F.avg_pool2d)}[pool]
        fn = fn1[dims - 2]
        new = (shape[0], *[s // 2 for s in shape[1:]])
        return (lambda m, x, p: fn(x, 2)), f"{pool}_pool", new
    return None


class _Factor(nn.Module):
    """``x * c``, ``c * x`` or ``x / c`` with ``c`` a buffer (it takes the model's dtype)."""

    def __init__(self, c: torch.Tensor, form: str):
        super().__init__()
        self.register_buffer("c", c)
        self.form = form

    def forward(self, x):
        return {"x*c": lambda: x * self.c, "c*x": lambda: self.c * x,
                "x/c": lambda: x / self.c}[self.form]()


class Case:
    def __init__(self, model: Graph, input_set, dtype: torch.dtype):
        self.model, self.input_set, self.dtype = model, input_set, dtype

    def __repr__(self):
        kind = type(self.input_set).__name__
        return f"Case({self.model.describe()} | {kind} {self.dtype})"


@st.composite
def graphs(draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    text = draw(st.integers(0, 4)) == 0
    if text:
        length, dim = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        shape = (length, dim)
    else:
        shape = draw(st.sampled_from([(3,), (2, 4), (2, 3, 3), (4,), (1, 5)]))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    layers, steps = [], []
    current = shape
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            steps.append(_elementwise(draw, layers))
            continue
        found = _reshaping(draw, current, layers)
        if found is not None:
            fn, name, current = found
            steps.append((fn, name))
    head = nn.Linear(max(1, int(torch.tensor(current).prod())), 2)
    model = Graph(steps, layers, head).to(dtype).eval()
    batch = 2
    if text:
        candidates = draw(st.integers(1, 2))
        original = torch.randn(batch, *shape, dtype=dtype)
        spread = draw(st.sampled_from([1e-3, 0.5, 2.0]))
        subs = original[:, :, None] + spread * torch.randn(batch, shape[0], candidates, shape[1],
                                                           dtype=dtype)
        mask = torch.rand(batch, shape[0], candidates) < 0.8
        budget = draw(st.sampled_from([None, 0, 1, 2]))
        relaxation = draw(st.sampled_from(["exact", "box", "simplex"]))
        return Case(model, SubstitutionSet(original, subs, mask, budget, relaxation), dtype)
    width = draw(st.sampled_from(WIDTHS))
    scale = draw(st.sampled_from([1.0, 1.0, 10.0, 1e3]))
    center = scale * torch.randn(batch, *shape, dtype=dtype)
    if dtype == torch.float32 and draw(st.integers(0, 5)) == 0:
        center = torch.full_like(center, draw(st.sampled_from([80.0, 87.0, 88.5, -100.0])))
    radius = width * torch.rand(batch, *shape, dtype=dtype)
    return Case(model, Box(center - radius, center + radius), dtype)


def _points(case: Case, n: int = 200) -> torch.Tensor:
    """``[n, batch, *shape]``: for a box, uniform points, corners and the centre; for a
    substitution set, every rewrite (the set is small)."""
    s = case.input_set
    if isinstance(s, SubstitutionSet):
        batch, length = s.center.shape[:2]
        k = s.candidates.shape[2]
        out = []
        for choice in itertools.product(range(-1, k), repeat=length):
            changed = [p for p, c in enumerate(choice) if c >= 0]
            x = s.center.clone()
            ok = torch.ones(batch, dtype=torch.bool)
            for p in changed:
                x[:, p] = s.candidates[:, p, choice[p]]
                ok &= s.mask[:, p, choice[p]]
            if s.budget is not None and len(changed) > s.budget:
                continue
            x[~ok] = s.center[~ok]  # a masked candidate: that example stays as it was
            out.append(x)
        return torch.stack(out)
    lower, upper = s.lower, s.upper
    u = torch.rand(n, *lower.shape, dtype=lower.dtype)
    u[n // 2:] = torch.randint(0, 2, u[n // 2:].shape).to(lower.dtype)
    u[0] = 0.5
    return lower + u * (upper - lower)


def _magnitude(model: Graph, x: torch.Tensor, batch: int) -> torch.Tensor:
    """``[batch]``: the largest finite magnitude of any tensor in the model's forward pass."""
    def largest(t):
        t = t.detach().reshape(-1, batch, *t.shape[1:]).transpose(0, 1).flatten(1).abs()
        return torch.where(torch.isfinite(t), t, torch.zeros_like(t)).amax(1)

    with torch.no_grad():
        top, previous = largest(x), x
        for fn, _ in model.steps:
            x, previous = fn(model, x, previous), x
            top = torch.maximum(top, largest(x))
    return top


def check(case: Case) -> list[str]:
    """The violations of every method on ``case`` (empty when sound).

    The tolerance is relative to the output and to the largest magnitude inside the model: the
    engine computes in the model's dtype without directed rounding, so a sum of terms near 1e230
    that cancels to 1e220 is only known to about 1e230 times the dtype's precision.
    """
    problems = []
    points = _points(case)
    with torch.no_grad():
        outs = case.model(points.flatten(0, 1)).view(points.shape[0], points.shape[1], -1)
    finite = torch.isfinite(outs)
    inner = _magnitude(case.model, points.flatten(0, 1), points.shape[1])[None, :, None]
    tol = (1e-5 if case.dtype == torch.float32 else 1e-11) * (1 + outs.abs() + 4 * inner)
    for method in METHODS:
        try:
            with torch.no_grad():
                lower, upper = compute_bounds(case.model, case.input_set, method)
        except RobustTextError as error:  # refused; or the containment oracle caught a bound
            if "unsound" in str(error):
                problems.append(f"{method}: {error}")
            continue
        if torch.isnan(lower).any() or torch.isnan(upper).any():
            problems.append(f"{method}: NaN bound")
        if (lower == float("inf")).any() or (upper == -float("inf")).any():
            problems.append(f"{method}: wrong-sign infinity")
        bad = finite & ((outs < lower - tol) | (outs > upper + tol))
        if bad.any():
            gap = torch.maximum(lower - outs, outs - upper)[bad].max().item()
            problems.append(f"{method}: {int(bad.sum())} outputs outside by up to {gap:.3g}")
    return problems


@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(graphs())
def test_random_graphs_are_sound(case):
    problems = check(case)
    assert not problems, f"{case}: {problems}"
