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

    def __init__(self, steps, layers, head, same=None):
        super().__init__()
        self.steps, self.layers, self.head = steps, nn.ModuleList(layers), head
        # per step: whether the previous tensor has the current one's shape (decided when the
        # graph is drawn: a comparison of shapes in the forward would be a branch to torch.fx)
        self.same = same if same is not None else [True] * len(steps)

    def forward(self, x):
        previous = x
        for (fn, _), same in zip(self.steps, self.same):
            x, previous = fn(self, x, previous if same else x), x
        # (reshape, not flatten(1): a step may leave a [batch]-shaped tensor)
        return self.head(x.reshape(-1, self.head.in_features))

    def describe(self) -> str:
        return " -> ".join(name for _, name in self.steps)


def _elementwise(draw, layers):
    """An op that keeps the shape: ``(fn(model, x, previous), name)``."""
    kind = draw(st.sampled_from([
        "relu", "relu_inplace", "leaky", "clamp", "sigmoid", "tanh", "gelu", "exp", "square",
        "sqrt", "reciprocal", "add_alpha", "sub_alpha", "iadd", "scale", "divide", "product", "neg",
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
    if kind == "clamp":
        low, high = draw(st.sampled_from([(-0.5, 0.5), (None, 0.2), (-0.1, None), (0.3, 0.3)]))
        return (lambda m, x, p: torch.clamp(x, low, high)), f"clamp({low}, {high})"
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
    """Combine with the previous tensor (``Graph`` passes ``x`` itself where the shapes differ)."""
    return fn


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


# -- every registered form, by table ---------------------------------------------------------
# Each form is ``(name, build)``; ``build(shape)`` returns ``(fn(x, p, mods), modules)`` for an
# input ``[batch, *shape]`` (``p``: the previous tensor, ``mods``: the form's modules, installed
# in the model), or None where the form does not apply. Whether it applies is found by running
# it (``_form_step``): a form the model itself cannot run on that rank is skipped. The table
# covers every registered operation in every form the registry declares (module, function,
# method, operator, in place, keyword arguments): ``test_every_registered_operation_has_a_form``
# traces one model per form and fails when a registered target is never reached.


class _Const(nn.Module):
    """A constant tensor kept as a buffer (it takes the model's dtype)."""

    def __init__(self, value):
        super().__init__()
        self.register_buffer("c", value)


def _prev(x, p):
    """The previous tensor (``Graph`` passes ``x`` itself where the shapes differ)."""
    return p


def _fresh(x):
    """A fresh tensor with ``x``'s values, to write into in place."""
    return x * 1.0


def _inplace(method, *args, **kwargs):
    def fn(x, p, mods):
        y = _fresh(x)
        return getattr(y, method)(*[_prev(x, p) if a == "p" else a for a in args], **kwargs)
    return fn


def _augmented(op):
    def fn(x, p, mods):
        y = _fresh(x)
        other = _prev(x, p) if op != "/=" else 2.0
        if op == "+=":
            y += other
        elif op == "-=":
            y -= other
        elif op == "*=":
            y *= other
        else:
            y /= other
        return y
    return fn


def _plain(fn):
    """A form with no module, for any shape."""
    return lambda shape: (lambda x, p, mods: fn(x, _prev(x, p)), [])


def _with(make_modules, fn, applies=lambda shape: True):
    """A form with modules ``make_modules(shape)``."""
    return lambda shape: (fn, make_modules(shape)) if applies(shape) else None


def _batch_norm(cls, channels):
    bn = cls(channels)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 2)
        bn.weight.uniform_(-2, 2)
    return bn.eval()


def _rank(*ranks):
    return lambda shape: len(shape) in ranks


_POOLS = [
    ("nn.MaxPool1d", lambda: nn.MaxPool1d(2)), ("nn.MaxPool2d", lambda: nn.MaxPool2d(2)),
    ("nn.AvgPool1d", lambda: nn.AvgPool1d(2)), ("nn.AvgPool2d", lambda: nn.AvgPool2d(2)),
    ("nn.AvgPool2d(divisor -3)", lambda: nn.AvgPool2d(2, divisor_override=-3)),
    ("nn.AdaptiveAvgPool1d", lambda: nn.AdaptiveAvgPool1d(1)),
    ("nn.AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((1, 2))),
]
_POOL_FUNCTIONS = [
    ("F.max_pool1d", lambda x: F.max_pool1d(x, 2)),
    ("F.max_pool1d(3, 1, padding 1)", lambda x: F.max_pool1d(x, 3, 1, padding=1)),
    ("F.max_pool2d", lambda x: F.max_pool2d(x, 2, stride=1)),
    ("F.avg_pool1d", lambda x: F.avg_pool1d(x, 2)),
    ("F.avg_pool2d", lambda x: F.avg_pool2d(x, 2, count_include_pad=False)),
    ("F.avg_pool2d(divisor 5)", lambda x: F.avg_pool2d(x, 2, divisor_override=5)),
    ("F.adaptive_avg_pool1d", lambda x: F.adaptive_avg_pool1d(x, 1)),
    ("F.adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 1)),
    ("F.max_pool2d(input=)", lambda x: F.max_pool2d(input=x, kernel_size=2)),
]


def _conv_forms():
    def module(kind):
        def make(shape):
            cls = {1: nn.Conv1d, 2: nn.Conv2d}[kind]
            return [cls(shape[0], 2, 2, padding=1)]
        return make

    def weight(kind):
        return lambda shape: [_Const(torch.randn(2, shape[0], *(2,) * kind))]

    return [
        ("nn.Conv1d", _with(module(1), lambda x, p, m: m[0](x), _rank(1, 2))),
        ("nn.Conv2d", _with(module(2), lambda x, p, m: m[0](x), _rank(2, 3))),
        ("F.conv1d", _with(weight(1), lambda x, p, m: F.conv1d(x, m[0].c, stride=2),
                           _rank(1, 2))),
        ("F.conv2d", _with(weight(2), lambda x, p, m: F.conv2d(x, m[0].c, None, 1, 1),
                           _rank(2, 3))),
        ("Conv1d over the sequence", _with(
            lambda shape: [nn.Conv1d(shape[-1], 3, 3, padding=1)],
            lambda x, p, m: m[0](x.transpose(1, 2)), _rank(2))),
    ]


FORMS = [
    # activations, in every registered form
    ("nn.Sigmoid", _with(lambda s: [nn.Sigmoid()], lambda x, p, m: m[0](x))),
    ("torch.sigmoid", _plain(lambda x, p: torch.sigmoid(x))),
    ("F.sigmoid", _plain(lambda x, p: F.sigmoid(x))),
    ("x.sigmoid()", _plain(lambda x, p: x.sigmoid())),
    ("torch.sigmoid(input=)", _plain(lambda x, p: torch.sigmoid(input=x))),
    ("nn.Tanh", _with(lambda s: [nn.Tanh()], lambda x, p, m: m[0](x))),
    ("torch.tanh", _plain(lambda x, p: torch.tanh(x))),
    ("F.tanh", _plain(lambda x, p: F.tanh(x))),
    ("x.tanh()", _plain(lambda x, p: x.tanh())),
    ("nn.ReLU", _with(lambda s: [nn.ReLU()], lambda x, p, m: m[0](x))),
    ("nn.ReLU(inplace)", _with(lambda s: [nn.ReLU(inplace=True)],
                               lambda x, p, m: m[0](_fresh(x)))),
    ("F.relu", _plain(lambda x, p: F.relu(x))),
    ("F.relu(inplace)", _plain(lambda x, p: F.relu(_fresh(x), inplace=True))),
    ("torch.relu", _plain(lambda x, p: torch.relu(x))),
    ("x.relu()", _plain(lambda x, p: x.relu())),
    ("torch.relu_", _plain(lambda x, p: torch.relu_(_fresh(x)))),
    ("x.relu_()", lambda shape: (_inplace("relu_"), [])),
    ("nn.LeakyReLU", _with(lambda s: [nn.LeakyReLU(0.2)], lambda x, p, m: m[0](x))),
    ("torch.clamp", _plain(lambda x, p: torch.clamp(x, -0.5, 0.25))),
    ("torch.clamp(min=)", _plain(lambda x, p: torch.clamp(x, min=0.1))),
    ("x.clamp(max=)", _plain(lambda x, p: x.clamp(max=-0.2))),
    ("nn.Hardtanh", _with(lambda s: [nn.Hardtanh(-0.3, 0.6)], lambda x, p, m: m[0](x))),
    ("F.hardtanh(inplace)", _plain(lambda x, p: F.hardtanh(_fresh(x), inplace=True))),
    ("F.leaky_relu(inplace)", _plain(lambda x, p: F.leaky_relu(_fresh(x), 0.1, inplace=True))),
    ("nn.GELU", _with(lambda s: [nn.GELU()], lambda x, p, m: m[0](x))),
    ("F.gelu(tanh)", _plain(lambda x, p: F.gelu(x, approximate="tanh"))),
    ("torch.exp", _plain(lambda x, p: torch.exp(x))),
    ("x.exp()", _plain(lambda x, p: x.exp())),
    ("torch.reciprocal", _plain(lambda x, p: torch.reciprocal(x * x + 1.0))),
    ("x.reciprocal()", _plain(lambda x, p: (x * x + 0.5).reciprocal())),
    ("torch.sqrt", _plain(lambda x, p: torch.sqrt(x * x + 0.5))),
    ("x.sqrt()", _plain(lambda x, p: (x * x + 1.0).sqrt())),
    ("torch.square", _plain(lambda x, p: torch.square(x))),
    ("x.square()", _plain(lambda x, p: x.square())),
    ("torch.pow(x, 2)", _plain(lambda x, p: torch.pow(x, 2))),
    ("x.pow(2)", _plain(lambda x, p: x.pow(2))),
    ("x ** 2", _plain(lambda x, p: x ** 2)),
    # sums, differences, products, quotients
    ("torch.add(alpha)", _plain(lambda x, p: torch.add(x, p, alpha=2))),
    ("torch.add(input=, other=)", _plain(lambda x, p: torch.add(input=x, other=p))),
    ("x.add(p)", _plain(lambda x, p: x.add(p))),
    ("x + p", _plain(lambda x, p: x + p)),
    ("y.add_(p)", lambda shape: (_inplace("add_", "p"), [])),
    ("y += p", lambda shape: (_augmented("+="), [])),
    ("torch.sub", _plain(lambda x, p: torch.sub(x, p))),
    ("x.sub(p, alpha)", _plain(lambda x, p: x.sub(p, alpha=0.5))),
    ("x - p", _plain(lambda x, p: x - p)),
    ("y.sub_(p)", lambda shape: (_inplace("sub_", "p"), [])),
    ("y -= p", lambda shape: (_augmented("-="), [])),
    ("torch.neg", _plain(lambda x, p: torch.neg(x))),
    ("-x", _plain(lambda x, p: -x)),
    ("x.neg()", _plain(lambda x, p: x.neg())),
    ("torch.mul", _plain(lambda x, p: torch.mul(x, p))),
    ("torch.mul(input=, other=)", _plain(lambda x, p: torch.mul(input=x, other=0.5))),
    ("x.mul(p)", _plain(lambda x, p: x.mul(p))),
    ("x * p", _plain(lambda x, p: x * p)),
    ("y *= p", lambda shape: (_augmented("*="), [])),
    ("y.mul_(p)", lambda shape: (_inplace("mul_", "p"), [])),
    ("x / 2", _plain(lambda x, p: x / 2.0)),
    ("torch.div", _plain(lambda x, p: torch.div(x, -4.0))),
    ("x.div(3)", _plain(lambda x, p: x.div(3.0))),
    ("y /= 2", lambda shape: (_augmented("/="), [])),
    ("y.div_(2)", lambda shape: (_inplace("div_", 2.0), [])),
    # moves and copies
    ("nn.Identity", _with(lambda s: [nn.Identity()], lambda x, p, m: m[0](x))),
    ("nn.Dropout(eval)", _with(lambda s: [nn.Dropout(0.2)], lambda x, p, m: m[0](x))),
    ("F.dropout(eval)", _plain(lambda x, p: F.dropout(x, 0.3, training=False))),
    ("x.contiguous()", _plain(lambda x, p: x.contiguous())),
    ("x.view(b, -1)", _plain(lambda x, p: x.view(x.shape[0], -1))),
    ("x.view(-1, *shape)", lambda shape: (lambda x, p, m: x.view(-1, *shape), [])),
    ("x.reshape(b, -1)", _plain(lambda x, p: x.reshape(x.size(0), -1))),
    ("torch.reshape", lambda shape: (lambda x, p, m: torch.reshape(x, (-1, *shape[::-1])), [])),
    ("x.flatten(1)", _plain(lambda x, p: x.flatten(1))),
    ("torch.flatten", _plain(lambda x, p: torch.flatten(x, 1))),
    ("nn.Flatten", _with(lambda s: [nn.Flatten()], lambda x, p, m: m[0](x))),
    ("unsqueeze/squeeze", _plain(lambda x, p: x.unsqueeze(1).squeeze(1))),
    ("torch.unsqueeze/squeeze", _plain(lambda x, p: torch.squeeze(torch.unsqueeze(x, -1), -1))),
    ("expand", lambda shape: (lambda x, p, m: x.unsqueeze(1).expand(-1, 2, *shape), [])),
    ("expand_as", _plain(lambda x, p: x[:, :1].expand_as(x))),
    ("permute", lambda shape: (lambda x, p, m: x.permute(0, *range(len(shape), 0, -1)), [])),
    ("torch.permute", lambda shape: (
        lambda x, p, m: torch.permute(x, (0, *range(len(shape), 0, -1))), [])),
    ("transpose", lambda shape: (lambda x, p, m: x.transpose(1, -1), []) if len(shape) >= 2
     else None),
    ("torch.transpose", lambda shape: (lambda x, p, m: torch.transpose(x, -1, 1), [])
     if len(shape) >= 2 else None),
    ("x[:, ::2]", _plain(lambda x, p: x[:, ::2])),
    ("x[..., 0]", _plain(lambda x, p: x[..., 0])),
    ("x[:, None]", _plain(lambda x, p: x[:, None])),
    ("x[:, order]", _with(lambda shape: [_Const(torch.arange(shape[0] - 1, -1, -1))],
                          lambda x, p, m: x[:, m[0].c])),
    ("torch.cat", _plain(lambda x, p: torch.cat([x, p], dim=1))),
    ("torch.concat", _plain(lambda x, p: torch.concat([x, x * 2.0], dim=-1))),
    ("torch.stack", _plain(lambda x, p: torch.stack([x, p], dim=1))),
    ("F.pad", _plain(lambda x, p: F.pad(x, (1, 2), value=0.5))),
    ("F.pad(reflect)", lambda shape: (lambda x, p, m: F.pad(x, (1, 1), mode="reflect"), [])
     if len(shape) == 2 and shape[-1] >= 2 else None),
    # reductions
    ("torch.sum", _plain(lambda x, p: torch.sum(x, dim=-1))),
    ("torch.sum(input=)", _plain(lambda x, p: torch.sum(input=x, dim=1, keepdim=True))),
    ("x.sum(-1, keepdim)", _plain(lambda x, p: x.sum(-1, keepdim=True))),
    ("torch.mean", _plain(lambda x, p: torch.mean(x, 1))),
    ("x.mean(dim=-1)", _plain(lambda x, p: x.mean(dim=-1))),
    # affine layers
    ("nn.Linear", _with(lambda s: [nn.Linear(s[-1], 3)], lambda x, p, m: m[0](x))),
    ("F.linear", _with(lambda s: [nn.Linear(s[-1], 2)],
                       lambda x, p, m: F.linear(x, m[0].weight, m[0].bias))),
    ("F.linear(input=)", _with(lambda s: [nn.Linear(s[-1], 2, bias=False)],
                               lambda x, p, m: F.linear(input=x, weight=m[0].weight))),
    ("nn.LayerNorm", _with(lambda s: [nn.LayerNorm(s[-1])], lambda x, p, m: m[0](x))),
    ("nn.LayerNorm(input=)", _with(lambda s: [nn.LayerNorm(s[-2:])],
                                   lambda x, p, m: m[0](input=x), _rank(2, 3))),
    ("nn.BatchNorm1d", _with(lambda s: [_batch_norm(nn.BatchNorm1d, s[0])],
                             lambda x, p, m: m[0](x), _rank(1, 2))),
    ("nn.BatchNorm2d", _with(lambda s: [_batch_norm(nn.BatchNorm2d, s[0])],
                             lambda x, p, m: m[0](x), _rank(3))),
    *_conv_forms(),
    # softmax and matrix products
    ("nn.Softmax", _with(lambda s: [nn.Softmax(dim=-1)], lambda x, p, m: m[0](x))),
    ("F.softmax", _plain(lambda x, p: F.softmax(x, dim=-1))),
    ("torch.softmax(input=, dim=)", _plain(lambda x, p: torch.softmax(input=x, dim=-1))),
    ("x.softmax(1)", _plain(lambda x, p: x.softmax(1))),
    ("torch.matmul(x, W)", _with(lambda s: [_Const(torch.randn(s[-1], 2))],
                                 lambda x, p, m: torch.matmul(x, m[0].c))),
    ("W @ x", _with(lambda s: [_Const(torch.randn(2, s[-2]))], lambda x, p, m: m[0].c @ x,
                    _rank(2, 3))),
    ("x.matmul(W)", _with(lambda s: [_Const(torch.randn(s[-1], 3))],
                          lambda x, p, m: x.matmul(m[0].c))),
    ("x @ x^T", lambda shape: (lambda x, p, m: x @ x.transpose(-1, -2), [])
     if len(shape) >= 2 else None),
    *[(name, _with(lambda s, make=make: [make()], lambda x, p, m: m[0](x)))
      for name, make in _POOLS],
    *[(name, _plain(lambda x, p, fn=fn: fn(x))) for name, fn in _POOL_FUNCTIONS],
]


def _form_step(form, shape, layers):
    """``(fn(m, x, p), name, new_shape)`` for ``form`` on ``[batch, *shape]``, its modules
    appended to ``layers``; None where it does not apply (its build refuses the shape, or the
    model itself cannot run it)."""
    name, build = form
    try:
        built = build(shape)
    except IndexError:  # a form that reads a dimension the shape lacks
        return None
    if built is None:
        return None
    fn, modules = built
    try:  # at two batch sizes: a form that runs only where the batch happens to fit a size
        with torch.no_grad():  # (a Conv2d reading [batch, H, W] as channels) does not apply
            runs = [fn(x, x, modules) for x in (torch.randn(3, *shape), torch.randn(2, *shape))]
    except (RuntimeError, IndexError, ValueError, TypeError):
        return None
    out = runs[-1]
    # a [batch]-shaped result (x.sum(-1) on [batch, n]) is kept: CROWN must bound through it
    if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != 2 or \
            runs[0].shape[0] != 3 or out[0].numel() == 0 or out[0].numel() > 256:
        return None
    first = len(layers)
    layers.extend(modules)
    count = len(modules)

    def step(m, x, p):
        return fn(x, p, [m.layers[first + k] for k in range(count)])

    return step, name, tuple(out.shape[1:])


# Operations that mix the examples of a batch: the engine must refuse them (or bound them
# soundly, judged by running each sampled batch as it is).
MIXING = [
    ("W @ x (contracts the batch)", lambda b, shape: (lambda x, p, m: m[0].c @ x, [_Const(
        torch.randn(b, b))]), _rank(1)),
    ("x[..., 0, :] (an ellipsis reaching dim 0)", lambda b, shape: (
        lambda x, p, m: x[..., 0, :, None] * x[:, None], []), _rank(1)),
    ("x.expand(b, b, ...).sum(1)", lambda b, shape: (
        lambda x, p, m: x.expand(b, b, *shape).sum(1), []), _rank(1, 2)),
    ("(x + c[b, 1, ...]).sum(1)", lambda b, shape: (
        lambda x, p, m: (x + m[0].c).sum(1), [_Const(torch.randn(b, 1, *shape))]), _rank(1, 2)),
]


def _mixing_step(draw, shape, layers, batch):
    options = [(name, make) for name, make, applies in MIXING if applies(shape)]
    if not options:
        return None
    return _mixing_form(*draw(st.sampled_from(options)), shape, layers, batch)


def _mixing_form(name, make, shape, layers, batch):
    fn, modules = make(batch, shape)
    with torch.no_grad():
        x = torch.randn(batch, *shape)
        out = fn(x, x, modules)
    first = len(layers)
    layers.extend(modules)
    count = len(modules)
    return ((lambda m, x, p: fn(x, p, [m.layers[first + k] for k in range(count)])), name,
            tuple(out.shape[1:]))


def _logits_step(draw, shape, layers):
    """A softmax over logits around 1e3-1e6 with a mask at -1e4 or the dtype's minimum, as
    ``transformers`` adds it: ``softmax(x * scale + offset + mask)`` in one step (the logits
    stay inside it, so the tolerance is set by the softmax's output, not by their size)."""
    scale = draw(st.sampled_from([1.0, 10.0]))
    offset = draw(st.sampled_from([0.0, 1e3, 1e4, 1e6, -1e6]))
    masked = draw(st.sampled_from(["-1e4", "min", "none"]))
    mask = torch.zeros(shape)
    if masked != "none" and shape[-1] >= 2:
        mask[..., 0] = 1.0
    layers.append(_Const(mask))
    i = len(layers) - 1

    def step(m, x, p):
        flags = m.layers[i].c
        fill = -1e4 if masked == "-1e4" else torch.finfo(flags.dtype).min
        return torch.softmax(x * scale + offset + flags * fill, -1)

    return step, f"softmax(x*{scale}+{offset:g}, mask {masked})", shape


class Case:
    def __init__(self, model: Graph, input_set, dtype: torch.dtype):
        self.model, self.input_set, self.dtype = model, input_set, dtype

    def __repr__(self):
        kind = type(self.input_set).__name__
        mixes = " | mixes the batch" if getattr(self.model, "mixes", False) else ""
        return f"Case({self.model.describe()} | {kind} {self.dtype}{mixes})"


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
    batch = 2
    mixes = False
    shapes = []  # the shape entering each step
    for _ in range(draw(st.integers(1, 4))):
        entering = current
        kind = draw(st.sampled_from(["elementwise", "reshaping", "form", "form", "logits",
                                     "mixing"] if current else ["elementwise", "form"]))
        if kind == "elementwise":
            steps.append(_elementwise(draw, layers))
            shapes.append(entering)
            continue
        if kind == "form":
            found = _form_step(draw(st.sampled_from(FORMS)), current, layers)
        elif kind == "logits":
            found = _logits_step(draw, current, layers)
        elif kind == "mixing":
            found = _mixing_step(draw, current, layers, batch)
            mixes = mixes or found is not None
        else:
            found = _reshaping(draw, current, layers)
        if found is not None:
            fn, name, current = found
            steps.append((fn, name))
            shapes.append(entering)
    head = nn.Linear(max(1, int(torch.tensor(current).prod())), 2)
    same = [i == 0 or shapes[i - 1] == shapes[i] for i in range(len(steps))]
    model = Graph(steps, layers, head, same).to(dtype).eval()
    model.mixes = mixes
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
    scale = draw(st.sampled_from([1.0, 1.0, 10.0, 1e3, 1e6]))
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
        for (fn, _), same in zip(model.steps, model.same):
            x, previous = fn(model, x, previous if same else x), x
            top = torch.maximum(top, largest(x))
    return top


STATS = {"bounded": 0, "refused": 0}  # method runs that returned bounds / were refused


def check(case: Case) -> list[str]:
    """The violations of every method on ``case`` (empty when sound).

    The tolerance is relative to the output and to the largest magnitude inside the model: the
    engine computes in the model's dtype without directed rounding, so a sum of terms near 1e230
    that cancels to 1e220 is only known to about 1e230 times the dtype's precision.
    """
    problems = []
    points = _points(case)
    n, batch = points.shape[:2]
    with torch.no_grad():
        if getattr(case.model, "mixes", False):  # each sampled batch runs as it is
            outs = torch.stack([case.model(point) for point in points])
            inner = torch.stack([_magnitude(case.model, point, batch) for point in points])
            inner = inner.amax(0)[None, :, None]
        else:
            outs = case.model(points.flatten(0, 1)).view(n, batch, -1)
            inner = _magnitude(case.model, points.flatten(0, 1), batch)[None, :, None]
    finite = torch.isfinite(outs)
    tol = (1e-5 if case.dtype == torch.float32 else 1e-11) * (1 + outs.abs() + 4 * inner)
    for method in METHODS:
        try:
            with torch.no_grad():
                lower, upper = compute_bounds(case.model, case.input_set, method)
        except RobustTextError as error:  # refused; or the containment oracle caught a bound
            if "unsound" in str(error):
                problems.append(f"{method}: {error}")
            else:
                STATS["refused"] += 1
            continue
        STATS["bounded"] += 1
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


SHAPES = [(4,), (2, 4), (3, 4), (2, 3, 4), (4, 4, 4)]


def test_every_registered_operation_has_a_form():
    """Walk the registry: every registered target (module class, function, method name) is
    reached by tracing one model per form of ``FORMS`` on every rank it applies to, so the
    fuzzer draws it. A new registration without a form fails here."""
    from robusttext.bounds.graph import trace
    from robusttext.bounds.rules.registry import _FUNCTIONS, _METHODS, _MODULES, lookup

    registered = {target for table in (_MODULES, _FUNCTIONS, _METHODS)
                  for target, entry in table.items() if entry.rule is not None}
    reached = set()
    for form in FORMS:
        for shape in SHAPES:
            layers = []
            found = _form_step(form, shape, layers)
            if found is None:
                continue
            fn, name, new = found
            model = Graph([(fn, name)], layers, nn.Linear(int(torch.tensor(new).prod()), 2))
            module = trace(model.eval())
            for node in module.graph.nodes:
                entry = lookup(node, module)
                if entry is not None:
                    reached.add(entry.target)
    missing = sorted(getattr(t, "__name__", None) or str(t) for t in registered - reached)
    assert not missing, f"registered operations the fuzzer never draws: {missing}"


def test_every_rank_reaches_every_pooling_op():
    """Each pooling form is tried on every rank; the ranks the model itself runs are drawn."""
    pools = [f for f in FORMS if "pool" in f[0].lower()]
    ranks = {name: [len(s) for s in SHAPES if _form_step((name, build), s, []) is not None]
             for name, build in pools}
    assert all(ranks.values()), ranks
    assert ranks["nn.MaxPool2d"] == [2, 2, 3, 3] and ranks["F.max_pool1d"] == [1, 2, 2]


def test_every_batch_mixing_form_is_refused_by_name():
    """The fuzzer's batch-mixing forms (judged by sampling in the campaign) are refused."""
    batch = 2
    for name, make, applies in MIXING:
        for shape in [s for s in SHAPES if applies(s)]:
            layers = []
            found = _mixing_form(name, make, shape, layers, batch)
            fn, label, new = found
            model = Graph([(fn, label)], layers, nn.Linear(int(torch.tensor(new).prod()), 2))
            centre = torch.randn(batch, *shape)
            try:
                compute_bounds(model.eval(), Box(centre - 0.1, centre + 0.1), "crown")
            except RobustTextError as error:
                assert "mixes the examples" in str(error) or "batch dimension" in str(error), \
                    (name, shape, error)
            else:
                raise AssertionError(f"{name} on {shape} was bounded")
