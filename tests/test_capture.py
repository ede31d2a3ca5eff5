"""The graph is the model: what runs (hooks, pruning, parametrizations, instance forwards,
attributes changed between calls, ordinary shape code) is what is bounded, and what cannot be
bounded (random or state-changing forwards, branches on values) is refused by name.

Every expectation comes from the live model: its outputs at sampled points of the box (corners
included, ``tests/oracles.py``) must lie inside the bounds."""

import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize, prune

from robusttext.bounds import Box, compute_bounds
from robusttext.errors import RobustTextError
from tests.oracles import violations

METHODS = ("ibp", "crown", "crown-ibp", "alpha-crown")


class Net(nn.Module):
    def __init__(self, dim=4):
        super().__init__()
        self.fc = nn.Linear(dim, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


def box(seed=0, shape=(3, 4), width=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    return Box(x - width, x + width)


def sound(model, methods=METHODS, the_box=None):
    the_box = the_box if the_box is not None else box()
    for method in methods:
        count, _, _ = violations(model, the_box, method)
        assert count == 0, method


def shifted_by(model, the_box):
    """The bounds contain the live model's value at the centre (a cheap check that a change
    after the first bound is seen)."""
    lower, upper = compute_bounds(model, the_box, "crown")
    with torch.no_grad():
        y = model(the_box.lower / 2 + the_box.upper / 2)
    return bool(((lower <= y + 1e-5) & (y <= upper + 1e-5)).all())


# -- hooks of every kind ----------------------------------------------------------------------
def test_a_forward_hook_that_changes_the_output_is_bounded():
    torch.manual_seed(0)
    model = Net().eval()
    model.fc.register_forward_hook(lambda m, inputs, out: 3 * out + 1)
    sound(model)


def test_a_forward_pre_hook_that_changes_the_input_is_bounded():
    torch.manual_seed(1)
    model = Net().eval()
    model.out.register_forward_pre_hook(lambda m, inputs: (-inputs[0] + 2,))
    sound(model)


def test_hooks_on_the_model_itself_are_bounded():
    torch.manual_seed(2)
    model = Net().eval()
    model.register_forward_hook(lambda m, inputs, out: out * -2)
    model.register_forward_pre_hook(lambda m, inputs: (inputs[0] * 0.5,))
    sound(model)
    leaf = nn.Linear(4, 3)
    leaf.register_forward_hook(lambda m, inputs, out: out + 10)
    sound(leaf, ("ibp", "crown"))


def test_a_global_forward_hook_is_bounded():
    torch.manual_seed(3)
    model = Net().eval()
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, inputs, out: out * 2 if isinstance(m, nn.Linear) else out)
    try:
        sound(model, ("ibp", "crown-ibp"))
    finally:
        handle.remove()
    sound(model, ("ibp",))  # and once it is gone, the graph without it


def test_pruning_is_bounded_and_a_changed_mask_is_seen():
    torch.manual_seed(4)
    model = Net().eval()
    prune.random_unstructured(model.fc, "weight", amount=0.5)
    sound(model)
    with torch.no_grad():
        model.fc.weight_mask.zero_()  # the pre-hook reads the mask at every call
    sound(model, ("ibp", "crown"))
    assert isinstance(model.fc.weight, torch.Tensor)  # tracing left the live attribute alone


class Negate(nn.Module):
    def forward(self, w):
        return -w.abs()


def test_parametrizations_and_weight_norm_are_bounded():
    torch.manual_seed(5)
    model = Net().eval()
    parametrize.register_parametrization(model.fc, "weight", Negate())
    sound(model)
    normed = Net().eval()
    normed.out = nn.utils.parametrizations.weight_norm(normed.out)
    normed.fc = nn.utils.parametrizations.spectral_norm(normed.fc).eval()
    sound(normed, ("ibp", "crown"))


def test_old_style_weight_norm_is_bounded():
    torch.manual_seed(6)
    model = Net().eval()
    with pytest.warns(FutureWarning):
        nn.utils.weight_norm(model.fc)
    with torch.no_grad():
        model.fc.weight_g.mul_(-3)
    sound(model, ("ibp", "crown"))


def test_a_forward_set_on_an_instance_is_bounded():
    torch.manual_seed(7)
    model = Net().eval()

    def doubled(self, x):
        return 2 * F.linear(x, self.weight, self.bias) - 1

    model.fc.forward = types.MethodType(doubled, model.fc)
    sound(model)


# -- changes after the first bound ------------------------------------------------------------
class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.scale = 1.0
        self.register_buffer("offset", torch.zeros(3))

    def forward(self, x):
        return self.fc(x) * self.scale + self.offset


def test_attributes_submodules_and_buffers_changed_after_the_first_bound_are_seen():
    torch.manual_seed(8)
    model = Scaled().eval()
    the_box = box()
    assert shifted_by(model, the_box)
    model.scale = -7.0
    assert shifted_by(model, the_box)
    model.fc = nn.Linear(4, 3)
    assert shifted_by(model, the_box)
    model.offset = torch.full((3,), 5.0)
    assert shifted_by(model, the_box)
    model.fc.register_forward_hook(lambda m, inputs, out: out - 0.5)
    assert shifted_by(model, the_box)
    sound(model, ("ibp", "crown"))


# -- what cannot be bounded is refused by name --------------------------------------------------
class Noisy(nn.Module):
    def __init__(self, draw):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.draw = draw

    def forward(self, x):
        return self.fc(x) + self.draw(self.fc.bias)


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.fc(x) * self.calls


def test_random_and_state_changing_forwards_are_refused():
    for draw in (torch.randn_like, lambda b: torch.rand(3), lambda b: F.dropout(b, 0.5)):
        with pytest.raises(RobustTextError, match="random"):
            compute_bounds(Noisy(draw), box(), "ibp")
    model = Counting()
    with pytest.raises(RobustTextError, match="state|in place"):
        compute_bounds(model, box(), "ibp")
    assert model.calls.item() == 0  # bounding did not count


class ValueBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 0:  # the line the refusal names
            return self.fc(x)
        return -self.fc(x)


def test_a_branch_on_values_is_refused_with_the_model_line():
    with pytest.raises(RobustTextError, match=r"branch.*test_capture.py:\d+.*if x.sum\(\) > 0"):
        compute_bounds(ValueBranch(), box(), "ibp")


# -- ordinary model code ----------------------------------------------------------------------
class Attention(nn.Module):
    """2019-style attention: ``view(*new_shape)``, ``nn.Softmax`` built in forward, a branch on
    a shape."""

    def __init__(self, dim=4, heads=2):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 2)

    def split(self, x):
        new_shape = x.size()[:-1] + (self.heads, x.size(-1) // self.heads)
        return x.view(*new_shape).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2))
        probs = nn.Softmax(dim=-1)(scores)
        h = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        h = h.view(*h.size()[:-2], -1)
        if h.shape[-1] == x.shape[-1]:
            h = h + x
        return self.out(h.mean(1))


def test_ordinary_attention_code_is_traced_and_bounded():
    torch.manual_seed(9)
    model = Attention().eval()
    sound(model, ("ibp", "crown", "crown-ibp"), box(shape=(2, 3, 4), width=0.1))
    # another length traces again (the graph is specialized to the shapes it was traced for)
    sound(model, ("ibp", "crown-ibp"), box(1, shape=(2, 5, 4), width=0.1))


def _tiny_bert_config(transformers, attention: str):
    """A one-layer, two-head BERT of hidden size 8 over 30 ids, with ``attention`` as its
    attention implementation."""
    return transformers.BertConfig(
        vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=2,
        attn_implementation=attention)


def test_a_transformers_classifier_is_wrapped_without_edits_and_bounded():
    """``BertForSequenceClassification`` (built from a config, nothing downloaded) through the
    own-model API: the wrapped model computes the library's logits, and every rewrite of budget
    1 (enumerated, run through the library's model) lies inside the bounds."""
    transformers = pytest.importorskip("transformers")
    from robusttext.bounds import SubstitutionSet
    from robusttext.text.contract import wrap_text_model

    torch.manual_seed(0)
    config = _tiny_bert_config(transformers, "eager")
    bert = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():
        bert.classifier.bias.normal_()
    model = wrap_text_model(bert, "bert.embeddings.word_embeddings")
    for length, methods in ((5, ("ibp", "crown-ibp")), (3, ("ibp",))):
        ids = torch.randint(5, 30, (2, length))
        cand = torch.randint(5, 30, (2, length, 2))
        mask = torch.ones(2, length)
        mask[1, -1] = 0
        with torch.no_grad():
            torch.testing.assert_close(model(ids, mask),
                                       bert(ids, attention_mask=mask).logits)
        table = model.embedding.weight.detach()
        subs = SubstitutionSet(table[ids], table[cand], torch.ones(2, length, 2, dtype=torch.bool),
                               1)
        rewrites = [ids] + [ids.index_put((torch.arange(2), torch.full((2,), p)), cand[:, p, k])
                            for p in range(length) for k in range(2)]
        with torch.no_grad():
            outs = torch.stack([bert(r, attention_mask=mask).logits for r in rewrites])
        for method in methods:
            lower, upper = compute_bounds(model.body, subs, method, extra_inputs=(mask,))
            assert (outs >= lower - 1e-5).all() and (outs <= upper + 1e-5).all(), method


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        scale = float(x.sum())  # a Python number made of the values: fx cannot trace it
        return self.fc(x) * scale


def test_what_cannot_be_traced_is_refused_naming_the_model_line():
    with pytest.raises(RobustTextError, match=r"tensor's values.*test_capture.py:\d+ in "
                                              r"forward: scale = float"):
        compute_bounds(Untraceable(), box(), "ibp")


def test_hooks_with_keyword_arguments_and_always_called_are_bounded():
    torch.manual_seed(10)
    model = Net().eval()
    model.fc.register_forward_pre_hook(lambda m, args, kwargs: ((args[0] * -1,), kwargs),
                                       with_kwargs=True)
    model.out.register_forward_hook(lambda m, args, kwargs, out: out + 4, with_kwargs=True,
                                    always_call=True)
    sound(model)


class Mode(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.signs = [1.0, 1.0, 1.0]

    def forward(self, x):
        y = self.fc(x)
        if self.training:
            return -y
        return y * torch.tensor(self.signs)


def test_a_list_changed_in_place_and_a_changed_training_flag_are_seen():
    torch.manual_seed(11)
    model = Mode().eval()
    the_box = box()
    assert shifted_by(model, the_box)
    model.signs[1] = -3.0
    assert shifted_by(model, the_box)
    model.train()
    assert shifted_by(model, the_box)


class ShapeCode(nn.Module):
    """``assert`` on a rank, a loop over ``range(x.size(1))``, ``len(x)``, ``math.sqrt`` of a
    size: Python on shapes, answered from the input set's centre."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        import math

        assert x.dim() == 3, "a sequence"
        total = x[:, 0]
        for i in range(1, x.size(1)):
            total = total + torch.relu(x[:, i])
        scale = math.sqrt(x.size(-1)) * len(x) / x.shape[0]
        return self.fc(total / scale)


def test_python_on_shapes_is_answered_from_the_examples():
    torch.manual_seed(12)
    sound(ShapeCode().eval(), ("ibp", "crown", "crown-ibp"), box(shape=(2, 3, 4), width=0.3))


def test_what_a_wrapped_transformers_model_uses_unbounded_is_refused_naming_its_line():
    transformers = pytest.importorskip("transformers")
    from robusttext.bounds import SubstitutionSet
    from robusttext.text.contract import wrap_text_model

    torch.manual_seed(0)
    config = _tiny_bert_config(transformers, "sdpa")
    model = wrap_text_model(transformers.BertForSequenceClassification(config).eval(),
                            "bert.embeddings.word_embeddings")
    ids, cand = torch.randint(5, 30, (2, 4)), torch.randint(5, 30, (2, 4, 2))
    table = model.embedding.weight.detach()
    subs = SubstitutionSet(table[ids], table[cand], torch.ones(2, 4, 2, dtype=torch.bool), 1)
    with pytest.raises(RobustTextError, match=r"scaled_dot_product_attention, used at "
                                              r".*sdpa_attention\.py:\d+"):
        compute_bounds(model.body, subs, "ibp", extra_inputs=(torch.ones(2, 4),))


def test_the_graph_is_checked_once_and_reads_parameters_as_they_are(monkeypatch):
    """A second bound reuses the checked graph; an optimiser step (values written in place)
    does not trace again, and the bound follows the new values."""
    import robusttext.bounds.capture as capture

    checked = []
    honest = capture.check_graph
    monkeypatch.setattr(capture, "check_graph", lambda *a: (checked.append(1), honest(*a)))
    torch.manual_seed(13)
    model, the_box = Net().eval(), box()
    assert shifted_by(model, the_box) and shifted_by(model, the_box)
    assert len(checked) == 1
    with torch.no_grad():
        model.out.weight.mul_(-5)
    assert shifted_by(model, the_box)
    assert len(checked) == 1
    model.out.weight = nn.Parameter(model.out.weight.detach() * 2)  # a new tensor: checked anew
    assert shifted_by(model, the_box)
    assert len(checked) == 2


def test_a_forward_set_on_the_model_itself_and_a_global_pre_hook_are_bounded():
    torch.manual_seed(14)
    model = Net().eval()
    model.forward = types.MethodType(lambda self, x: self.out(torch.tanh(self.fc(x))) * 3, model)
    sound(model)
    handle = nn.modules.module.register_module_forward_pre_hook(
        lambda m, args: (args[0] + 1,) if isinstance(m, nn.Linear) else None)
    try:
        sound(Net().eval(), ("ibp", "crown"))
    finally:
        handle.remove()


def test_a_graph_that_is_not_the_model_is_refused(monkeypatch):
    """The check itself: a graph traced from another model (a stand-in for anything the capture
    might miss) is refused before any bound is returned."""
    import robusttext.bounds.capture as capture

    torch.manual_seed(15)
    other = Net().eval()
    honest = capture.trace
    monkeypatch.setattr(capture, "trace", lambda model, examples: honest(other, examples))
    with pytest.raises(RobustTextError, match="does not compute what the model computes"):
        compute_bounds(Net().eval(), box(), "ibp")


class Factories(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        start = torch.zeros(x.size(0), 3) + torch.ones(x.shape)[:, :3]
        return self.fc(x) + start + torch.arange(3.0)


def test_tensor_factories_given_traced_sizes_are_recorded_and_random_ones_refused():
    torch.manual_seed(16)
    sound(Factories().eval(), ("ibp", "crown", "crown-ibp"))
    with pytest.raises(RobustTextError, match="random"):
        compute_bounds(Noisy(lambda b: torch.randn(b.shape[0], 3)), box(), "ibp")
