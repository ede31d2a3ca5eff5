"""alpha-CROWN: sound (sampling, corners, enumeration), never looser than CROWN, slopes kept in
their valid range, a case solved by hand, bad settings refused by name."""

import pytest
import torch
import torch.nn as nn

from robusttext.bounds import Box, LinfBall, SubstitutionSet, compute_bounds, margin_matrix
from robusttext.bounds.engine import NodeContext
from robusttext.errors import RobustTextError
from robusttext.text import BagOfWords, CharCNN, WordCNN
from tests.builders import random_network, random_text_problem
from tests.oracles import enumerate_rewrites, sample_box

TOL = 1e-5


def relu_network(seed, activation=nn.ReLU):
    g = torch.Generator().manual_seed(seed)
    widths = [6, 24, 24, 16, 5]
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layer = nn.Linear(a, b)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(b, a, generator=g) / a ** 0.5)
            layer.bias.copy_(torch.randn(b, generator=g) * 0.3)
        layers.append(layer)
        if i < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(*layers).eval()


def check_sampled(model, box, C, lower, upper):
    points = sample_box(box.lower, box.upper, n=600, generator=torch.Generator().manual_seed(2))
    n, batch = points.shape[:2]
    with torch.no_grad():
        outs = model(points.flatten(0, 1)).view(n, batch, -1)
        values = torch.einsum("bso,nbo->nbs", C, outs)
    assert (values >= lower - TOL).all()
    assert (values <= upper + TOL).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("activation", [nn.ReLU, lambda: nn.LeakyReLU(0.1)])
def test_sound_on_random_networks_and_never_looser_than_crown(seed, activation):
    torch.manual_seed(seed)
    model = relu_network(seed, activation)
    x = torch.randn(8, 6)
    box = LinfBall(x, 0.25)
    C = margin_matrix(model(x).argmax(1), 5)
    with torch.no_grad():
        lower, upper = compute_bounds(model, box, "alpha-crown", C=C)
        crown_lower, crown_upper = compute_bounds(model, box, "crown", C=C)
    check_sampled(model, box, C, lower, upper)
    assert (lower >= crown_lower).all() and (upper <= crown_upper).all()
    assert (lower > crown_lower + 1e-4).any()  # the optimisation does something


@pytest.mark.parametrize("seed", range(3))
def test_sound_on_random_deep_networks_with_every_operation(seed):
    model = random_network(seed)
    x = torch.rand(2, 1, 8, 8)
    box = LinfBall(x, 0.1, lower=0.0, upper=1.0)
    C = margin_matrix(torch.tensor([0, 3]), 4)
    with torch.no_grad():
        lower, upper = compute_bounds(model, box, "alpha-crown", C=C, alpha_steps=10)
        crown_lower, crown_upper = compute_bounds(model, box, "crown", C=C)
    check_sampled(model, box, C, lower, upper)
    assert (lower >= crown_lower).all() and (upper <= crown_upper).all()


def test_a_case_solved_by_hand():
    """``relu(x) - x / 2`` on ``[-1, 2]``: its minimum is 0 (at x = 0). CROWN's adaptive slope
    (1, since 2 > 1) gives ``x / 2 >= -1/2``; the best lower line, slope 1/2, gives 0; IBP gives
    ``0 - 1 = -1``."""

    class Model(nn.Module):
        def forward(self, x):
            return torch.relu(x) - x / 2

    box = Box(torch.tensor([[-1.0]]), torch.tensor([[2.0]]))
    crown = compute_bounds(Model(), box, "crown")[0]
    alpha = compute_bounds(Model(), box, "alpha-crown")[0]
    torch.testing.assert_close(crown, torch.tensor([[-0.5]]))
    assert abs(alpha.item()) <= 1e-6


def test_slopes_stay_in_their_valid_range(monkeypatch):
    seen = []
    original = NodeContext.optimised_slope

    def recording(self, sign):
        slope = original(self, sign)
        if slope is not None:
            lo, hi = self.interval(self.inputs[0])
            seen.append((slope.detach().clone(), lo, hi))
        return slope

    monkeypatch.setattr(NodeContext, "optimised_slope", recording)
    model = relu_network(0)
    x = torch.randn(4, 6)
    C = margin_matrix(model(x).argmax(1), 5)
    with torch.no_grad():
        compute_bounds(model, LinfBall(x, 0.3), "alpha-crown", C=C, alpha_lr=5.0)
    assert seen
    moved = 0
    for slope, lo, hi in seen:
        lo, hi = lo.unsqueeze(1), hi.unsqueeze(1)
        unstable = (lo < 0) & (hi > 0)
        assert ((slope >= 0) & (slope <= 1)).all()
        assert (slope[(lo >= 0).expand_as(slope)] == 1).all()
        assert (slope[(hi <= 0).expand_as(slope)] == 0).all()
        moved += int(((slope > 0) & (slope < 1) & unstable).sum())
    assert moved > 0  # a step size this large would leave [0, 1] without the projection


def test_zero_steps_is_crown_and_gradients_reach_the_weights():
    model = relu_network(1)
    x = torch.randn(4, 6)
    box = LinfBall(x, 0.2)
    C = margin_matrix(model(x).argmax(1), 5)
    crown = compute_bounds(model, box, "crown", C=C)
    zero = compute_bounds(model, box, "alpha-crown", C=C, alpha_steps=0)
    torch.testing.assert_close(zero, crown, rtol=0, atol=0)
    lower, _ = compute_bounds(model, box, "alpha-crown", C=C, bound_upper=False)
    assert all(p.grad is None for p in model.parameters())  # the optimisation touches none
    (-lower.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("grad", [False, True])
def test_one_step_is_crown_with_and_without_gradients(grad):
    """One step takes the bound at CROWN's slopes only: without gradients that step stands in
    for CROWN's own pass, with them CROWN's pass is taken in the caller's graph; both must be
    CROWN's bound exactly."""
    model = relu_network(2)
    x = torch.randn(4, 6)
    box = LinfBall(x, 0.2)
    C = margin_matrix(model(x).argmax(1), 5)
    with torch.set_grad_enabled(grad):
        crown = compute_bounds(model, box, "crown", C=C)
        one = compute_bounds(model, box, "alpha-crown", C=C, alpha_steps=1)
    torch.testing.assert_close(one, crown, rtol=0, atol=0)


TEXT_MODELS = [
    ("char", lambda n: CharCNN(n, embed_dim=8, filters=6, width=5)),
    ("word", lambda n: WordCNN(n, embed_dim=8, filters=6, width=3, projection=5)),
    ("word", lambda n: BagOfWords(n, embed_dim=8, hidden=6)),
]


@pytest.mark.parametrize("level,make", TEXT_MODELS)
def test_text_margins_hold_for_every_enumerated_rewrite(level, make):
    vocab, space, sentences, batch, model = random_text_problem(level, make, seed=3)
    emb = model.embedding
    labels = torch.tensor([0, 1])
    C = margin_matrix(labels, 2)
    with torch.no_grad():
        input_set = SubstitutionSet(emb(batch.token_ids), emb(batch.candidate_ids),
                                    batch.candidate_mask, space.budget)
        lower, upper = compute_bounds(model.body, input_set, "alpha-crown", C=C,
                                      extra_inputs=(batch.mask,))
        crown_lower, _ = compute_bounds(model.body, input_set, "crown", C=C,
                                        extra_inputs=(batch.mask,))
        assert (lower >= crown_lower).all()
        for b in range(len(sentences)):
            n = int(batch.mask[b].sum())
            rewrites = torch.tensor(list(enumerate_rewrites(
                batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
                batch.candidate_mask[b, :n].tolist(), space.budget)))
            logits = model(rewrites, torch.ones(rewrites.shape))
            margins = logits @ C[b].T  # [rewrites, specs]
            assert (margins >= lower[b] - TOL).all()
            assert (margins <= upper[b] + TOL).all()


@pytest.mark.parametrize("settings,name", [
    ({"alpha_steps": -1}, "alpha_steps"), ({"alpha_steps": 2.5}, "alpha_steps"),
    ({"alpha_steps": True}, "alpha_steps"), ({"alpha_lr": 0}, "alpha_lr"),
    ({"alpha_lr": float("nan")}, "alpha_lr"), ({"alpha_lr": "0.1"}, "alpha_lr"),
])
def test_bad_settings_are_refused_by_name(settings, name):
    model = relu_network(0)
    with pytest.raises(RobustTextError, match=name):
        compute_bounds(model, LinfBall(torch.zeros(1, 6), 0.1), "alpha-crown", **settings)
