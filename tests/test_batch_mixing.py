"""The batch as a type (issue 31, class 2): an operation that moves, contracts or broadcasts
over the batch dimension keeps a leading size of ``batch`` and so passed the engine's size
check, and CROWN charged one example's coefficients to another example's input. Each model here
mixes the examples; sampling the box shows the bound it used to get is wrong (the expectation
is the model's own outputs at sampled points, ``tests/oracles.sample_box``), and the engine now
refuses it by name. Ordinary per-example code on the same shapes is still bounded."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext import RobustTextError
from robusttext.bounds import METHODS, Box, LinfBall, compute_bounds
from robusttext.bounds.batch import check_batch  # noqa: F401  (the check under test)
from tests.oracles import TOL, sample_box

BATCH, DIM = 3, 3


class Mixer(nn.Module):
    def __init__(self, fn, flat=DIM):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(DIM, DIM)
        self.head = nn.Linear(flat, 2)
        self.register_buffer("w", torch.randn(BATCH, BATCH))
        self.register_buffer("c", torch.randn(BATCH, 1, DIM))
        self.fn = fn

    def forward(self, x):
        return self.head(self.fn(self, torch.relu(self.first(x))).flatten(1))


MIXING = {
    # a constant matrix multiplied from the left contracts the batch
    "W @ x": lambda s, h: s.w @ h,
    # an ellipsis index that reaches dim 0: x[..., 0, :, None] on [batch, n] is example 0
    "(x[..., 0, :, None] * x[:, None]).sum(-1)": lambda s, h: (h[..., 0, :, None]
                                                              * h[:, None, :]).sum(-1),
    # a new leading dim, then a reduction over the old batch dim
    "x.expand(b, b, n).sum(1)": lambda s, h: h.expand(BATCH, BATCH, DIM).sum(1),
    # broadcasting against a [b, 1, n] constant puts the batch at dim 1
    "(x + c).sum(1)": lambda s, h: (h + s.c).sum(1),
    "(c * x).mean(1)": lambda s, h: (s.c * h).mean(1),
    # a Linear over a 1-D [batch] tensor contracts the batch
    "W @ x.sum(-1)": lambda s, h: (s.w @ h.sum(-1))[:, None].expand(BATCH, DIM),
}


def _sampled_outputs(model, box):
    points = sample_box(box.lower, box.upper, n=200, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # each sampled point is a whole batch: the model mixes its examples, so it runs on the
        # batch as it is (not flattened into one large batch)
        return torch.stack([model(p) for p in points])


def _old_bounds(model, box, method):
    """The bound the engine computes without the batch check (what it returned before)."""
    import robusttext.bounds.engine as engine
    from robusttext.bounds.oracle import checking

    original = engine.check_batch
    engine.check_batch = lambda prop: None
    try:
        with checking(False):  # the containment oracle would catch some of them too
            return compute_bounds(model, box, method)
    finally:
        engine.check_batch = original


@pytest.mark.parametrize("case", list(MIXING))
def test_mixing_the_batch_was_unsound_and_is_refused(case):
    model = Mixer(MIXING[case]).eval()
    box = LinfBall(torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(2)), 0.5)
    outs = _sampled_outputs(model, box)
    unsound = []
    for method in ("crown", "crown-ibp"):
        try:
            lower, upper = _old_bounds(model, box, method)
        except RobustTextError:
            continue
        if ((outs < lower - TOL) | (outs > upper + TOL)).any():
            unsound.append(method)
    assert unsound, "the sampled outputs should leave the unchecked bound of some method"
    for method in METHODS:
        with pytest.raises(RobustTextError, match="mixes the examples of the batch"):
            compute_bounds(model, box, method)


PER_EXAMPLE = {
    "x @ W": lambda s, h: h @ s.w[:DIM, :DIM],
    "x[..., 0] broadcast": lambda s, h: h[..., 0:1] + h,
    "x.expand(b, n) of x[:, :1]": lambda s, h: h[:, :1].expand(BATCH, DIM),
    "x + c[0]": lambda s, h: h + s.c[0],
    "x.view(x.size(0), -1)": lambda s, h: h.view(h.size(0), -1),
    "x.sum(-1) * x": lambda s, h: h.sum(-1, keepdim=True) * h,
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(PER_EXAMPLE))
def test_per_example_code_on_the_same_shapes_is_bounded(case, method):
    model = Mixer(PER_EXAMPLE[case]).eval()
    centre = torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(3))
    box = Box(centre - 0.3, centre + 0.3)
    lower, upper = compute_bounds(model, box, method)
    outs = _sampled_outputs(model, box)
    assert not ((outs < lower - TOL) | (outs > upper + TOL)).any()


def test_the_refusal_names_the_operation_and_the_line():
    model = Mixer(MIXING["W @ x"]).eval()
    box = LinfBall(torch.randn(BATCH, DIM), 0.1)
    with pytest.raises(RobustTextError, match=r"matmul.*test_batch_mixing.py:\d+"):
        compute_bounds(model, box, "ibp")


@pytest.mark.parametrize("method", METHODS)
def test_an_unbatched_convolution_reading_the_batch_as_channels_is_refused(method):
    """``F.conv1d`` on ``[batch, length]`` reads it as ``[channels, length]``: every output mixes
    the examples (the engine failed inside the rule before; refused by name now)."""
    model = Mixer(lambda s, h: F.conv1d(h, s.w[:, :, None])).eval()
    with pytest.raises(RobustTextError, match="batch dimension 0 as channels"):
        compute_bounds(model, LinfBall(torch.randn(BATCH, DIM), 0.1), method)


def test_a_linear_layer_over_a_batch_shaped_tensor_is_refused():
    class OverBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(BATCH, BATCH)

        def forward(self, x):
            return self.layer(x.sum(-1))[:, None]

    with pytest.raises(RobustTextError, match="sum over the batch dimension 0"):
        compute_bounds(OverBatch(), LinfBall(torch.randn(BATCH, DIM), 0.1), "ibp")


def test_a_batch_of_one_is_never_refused():
    model = Mixer(lambda s, h: s.w[:1, :1] @ h).eval()
    compute_bounds(model, LinfBall(torch.randn(1, DIM), 0.1), "crown")
