"""Rules check what they assume (issue 31, classes 3 and 4): pooling chosen by the module or
function the model calls, not by the input's rank; average pooling's sign read from its
divisor; CROWN through ``[batch]``-shaped nodes; LayerNorm called by keyword. Expectations come
from sampling the box (corners included, ``tests/oracles.py``), never from the engine."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robusttext import RobustTextError
from robusttext.bounds import METHODS, Box, LinfBall, compute_bounds
from tests.oracles import violations


class Body(nn.Module):
    """``head(fn(self, first(x)))``: a first Linear over the last dimension, a tested step, a
    Linear head over the flattened result."""

    def __init__(self, fn, dim, flat, modules=()):
        super().__init__()
        self.first = nn.Linear(dim, dim)
        self.parts = nn.ModuleList(modules)
        self.head = nn.Linear(flat, 2)
        self.fn = fn

    def forward(self, x):
        return self.head(self.fn(self, self.first(x)).flatten(1))


def _box(*shape, eps=0.4, seed=0):
    torch.manual_seed(seed)
    return LinfBall(torch.randn(*shape), eps)


# -- max pooling: the function the model calls, on every rank it accepts ----------------------
MAX_POOLS = {
    # a 2-D pool on a 3-D input pools each example's plane; a 1-D pool on a 2-D input each row
    "MaxPool2d on [b, H, W]": (lambda s, h: s.parts[0](h), (3, 4, 4), 4, [nn.MaxPool2d(2)]),
    "F.max_pool2d on [b, H, W]": (lambda s, h: F.max_pool2d(h, 2), (3, 4, 4), 4, []),
    "MaxPool2d on [b, C, H, W]": (lambda s, h: s.parts[0](h), (3, 2, 4, 4), 8, [nn.MaxPool2d(2)]),
    "MaxPool1d on [b, L]": (lambda s, h: s.parts[0](h), (3, 6), 3, [nn.MaxPool1d(2)]),
    "F.max_pool1d on [b, C, L]": (lambda s, h: F.max_pool1d(h, 3, 1), (3, 2, 5), 6, []),
    "MaxPool1d(3, 2, padding 1) on [b, C, L]": (lambda s, h: s.parts[0](h), (3, 2, 5), 6,
                                                 [nn.MaxPool1d(3, 2, padding=1)]),
    "MaxPool2d(dilation 2) on [b, H, W]": (lambda s, h: s.parts[0](h), (3, 5, 5), 1,
                                          [nn.MaxPool2d(2, dilation=2, stride=3)]),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(MAX_POOLS))
def test_max_pooling_follows_the_called_function_on_every_rank(case, method):
    fn, shape, flat, modules = MAX_POOLS[case]
    model = Body(fn, shape[-1], flat, modules).eval()
    box = _box(*shape)
    with torch.no_grad():
        assert model(box.center).shape == (shape[0], 2)  # the model itself runs
    assert violations(model, box, method)[0] == 0


def test_max_pool_on_a_rank_it_does_not_take_is_refused_by_name():
    model = Body(lambda s, h: F.max_pool1d(h.unsqueeze(1).unsqueeze(1), 2).flatten(1), 4, 2)
    with pytest.raises(RobustTextError, match="max pool"):
        compute_bounds(model, _box(3, 4), "ibp")


# -- average pooling: the sign of divisor_override --------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("divisor", [-3, -1, 2, 7])
@pytest.mark.parametrize("form", ["module", "function"])
def test_average_pooling_with_a_divisor_of_either_sign_is_sound(divisor, form, method):
    pool = nn.AvgPool2d(2, divisor_override=divisor)
    fn = ((lambda s, h: s.parts[0](h)) if form == "module" else
          (lambda s, h: F.avg_pool2d(h, 2, divisor_override=divisor)))
    model = Body(fn, 4, 8, [pool]).eval()
    assert violations(model, _box(3, 2, 4, 4), method)[0] == 0


def test_average_pooling_with_a_zero_divisor_is_refused_by_name():
    model = Body(lambda s, h: F.avg_pool2d(h, 2, divisor_override=0), 4, 8)
    with pytest.raises(RobustTextError, match="divisor_override"):
        compute_bounds(model, _box(3, 2, 4, 4), "ibp")


# -- CROWN through [batch]-shaped nodes --------------------------------------------------------
SCALAR_NODES = {
    "x.sum(-1).view(-1, 1)": lambda s, h: torch.relu(h.sum(-1).view(-1, 1)),
    "relu(x).sum(1)[:, None]": lambda s, h: torch.relu(torch.relu(h).sum(1)[:, None]),
    "relu(x.sum(-1)).view(-1, 1)": lambda s, h: torch.relu(h.sum(-1)).view(-1, 1),
    "relu(x[:, 0])[:, None]": lambda s, h: torch.relu(h[:, 0])[:, None],
    "tanh(x[..., 0]).reshape(-1, 1)": lambda s, h: torch.tanh(h[..., 0]).reshape(-1, 1),
    "x.sum(-1) * x.mean(-1)": lambda s, h: (h.sum(-1) * h.mean(-1)).unsqueeze(1),
    "exp(x.amax-free sum)": lambda s, h: torch.exp(h.sum(-1) / 4)[:, None],
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(SCALAR_NODES))
def test_crown_through_batch_shaped_nodes(case, method):
    model = Body(SCALAR_NODES[case], 4, 1).eval()
    assert violations(model, _box(3, 4), method)[0] == 0


@pytest.mark.parametrize("method", METHODS)
def test_a_batch_shaped_input_is_bounded(method):
    """The input itself ``[batch]``: concretizing a linear bound over it."""
    class Scalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(1, 2)

        def forward(self, x):
            return self.head(torch.relu(x * 2 - 0.1)[:, None])

    torch.manual_seed(0)
    centre = torch.randn(5)
    assert violations(Scalar(), Box(centre - 0.3, centre + 0.3), method)[0] == 0


# -- LayerNorm called by keyword --------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("call", ["norm(x)", "norm(input=x)"])
def test_layer_norm_called_by_keyword(call, method):
    norm = nn.LayerNorm(4)
    with torch.no_grad():
        norm.weight.uniform_(-2, 2)
        norm.bias.uniform_(-1, 1)
    fn = ((lambda s, h: s.parts[0](h)) if call == "norm(x)" else
          (lambda s, h: s.parts[0](input=h)))
    model = Body(fn, 4, 8, [norm]).eval()
    assert violations(model, _box(3, 2, 4, eps=0.05), method)[0] == 0


# -- nn.Embedding(max_norm=...): the rows the model reads are rescaled ------------------------
class Pooled(nn.Module):
    """An ordinary model whose embedding renormalises the rows it reads."""

    def __init__(self, vocab_size, max_norm, norm_type=2.0):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, 4, padding_idx=0, max_norm=max_norm,
                                norm_type=norm_type)
        with torch.no_grad():
            self.emb.weight.mul_(3.0)  # most rows above max_norm
            self.emb.weight[0] = 0
        self.mix = nn.Linear(4, 5)
        self.last = nn.Linear(5, 2)

    def forward(self, ids, mask):
        h = torch.tanh(self.mix(self.emb(ids))) * mask.unsqueeze(-1)
        return self.last(h.sum(1) / mask.sum(1, keepdim=True))


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "crown"])
@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (0.5, 1.0)])
def test_embedding_max_norm_is_bounded_as_the_model_reads_it(max_norm, norm_type, method):
    from robusttext.bounds.specs import margin_lower_bounds
    from robusttext.text import wrap_text_model
    from robusttext.text.bounds import batch_problem
    from tests.builders import word_setup
    from tests.oracles import enumerate_rewrites

    vocab, space = word_setup()
    torch.manual_seed(0)
    model = wrap_text_model(Pooled(len(vocab), max_norm, norm_type), embedding="emb").eval()
    batch = space.encode(["a good film", "not a bad plot , good", "good"], vocab)
    for label in (0, 1):  # both signs of the margin: a wrong table leaves one of them
        labels = torch.full((3,), label)
        table = model.embedding.weight.clone()
        with torch.no_grad():  # before any forward pass: the model renormalises in place
            lower = margin_lower_bounds(batch_problem(model, batch, labels, 1, classes=2), method)
            model.embedding.weight.copy_(table)
        for b in range(3):
            n = int(batch.mask[b].sum())
            rows = torch.tensor(list(enumerate_rewrites(
                batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
                batch.candidate_mask[b, :n].tolist(), 1)))
            with torch.no_grad():
                logits = model(rows, torch.ones(rows.shape))
                model.embedding.weight.copy_(table)
            margins = logits[:, label] - logits[:, 1 - label]
            assert lower[b, 0] <= margins.min() + 1e-5


def test_an_embedding_with_its_own_forward_is_refused_by_name():
    from robusttext.bounds.specs import margin_lower_bounds
    from robusttext.text import wrap_text_model
    from robusttext.text.bounds import batch_problem
    from tests.builders import word_setup

    vocab, space = word_setup()
    model = wrap_text_model(Pooled(len(vocab), None), embedding="emb").eval()
    model.embedding.register_forward_hook(lambda module, args, out: out * 2)
    batch = space.encode(["a good film"], vocab)
    with pytest.raises(RobustTextError, match="embedding"):
        margin_lower_bounds(batch_problem(model, batch, torch.tensor([1]), 1, classes=2), "ibp")
