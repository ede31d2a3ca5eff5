"""Substitution-set bounds against exhaustive enumeration of every rewrite."""

import itertools

import pytest
import torch
import torch.nn as nn

from robusttext import RobustTextError
from robusttext.bounds import METHODS, RELAXATIONS, SubstitutionSet, compute_bounds, margin_matrix
from tests.builders import ConvBody, random_problem

TOL = 1e-5


class TokenLinearBody(nn.Module):
    """Per-token Linear, ReLU, mean pooling, ReLU layer, linear head."""

    def __init__(self, dim, hidden=6):
        super().__init__()
        self.token = nn.Linear(dim, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x, mask):
        h = torch.relu(self.token(x)) * mask.unsqueeze(-1)
        pooled = h.sum(1) / mask.sum(1, keepdim=True)
        return self.head(torch.relu(self.mid(pooled)))


def rewrites(ids, cand, cand_mask, budget):
    """Every sentence (as ids) of one example's set: at most ``budget`` positions changed."""
    options = [[ids[p].item()] + [cand[p, k].item() for k in range(cand.shape[1])
                                  if cand_mask[p, k]] for p in range(len(ids))]
    out = []
    for choice in itertools.product(*[range(len(o)) for o in options]):
        if budget is None or sum(c > 0 for c in choice) <= budget:
            out.append([options[p][c] for p, c in enumerate(choice)])
    return torch.tensor(out)


def substitution_set(table, ids, cand, cand_mask, budget, relaxation):
    return SubstitutionSet(table[ids], table[cand], cand_mask, budget, relaxation)


def true_margin_range(body, table, ids, cand, cand_mask, mask, labels, budget):
    lows, highs = [], []
    with torch.no_grad():
        for b in range(ids.shape[0]):
            sentences = rewrites(ids[b], cand[b], cand_mask[b], budget)
            logits = body(table[sentences], mask[b].expand(len(sentences), -1))
            C = margin_matrix(labels[b : b + 1], 2)[0]
            margins = logits @ C.T  # [sentences, specs]
            lows.append(margins.amin(0))
            highs.append(margins.amax(0))
    return torch.stack(lows), torch.stack(highs)


BODIES = {"conv": ConvBody, "token_linear": TokenLinearBody}


@pytest.mark.parametrize("budget", [0, 1, 2, None])
@pytest.mark.parametrize("body_name", sorted(BODIES))
def test_bounds_contain_every_rewrite(body_name, budget):
    for seed in range(3):
        torch.manual_seed(seed)
        table, ids, cand, cand_mask, mask = random_problem(seed)
        body = BODIES[body_name](table.shape[1]).eval()
        labels = torch.tensor([0, 1, 0])
        C = margin_matrix(labels, 2)
        low, high = true_margin_range(body, table, ids, cand, cand_mask, mask, labels, budget)
        lowers = {}
        for method in METHODS:
            for relaxation in RELAXATIONS:
                subs = substitution_set(table, ids, cand, cand_mask, budget, relaxation)
                lower, upper = compute_bounds(body, subs, method, C=C, extra_inputs=(mask,))
                assert (lower <= low + TOL).all(), (method, relaxation)
                assert (upper >= high - TOL).all(), (method, relaxation)
                lowers[method, relaxation] = lower
            # The exact relaxation is never looser than the published ones.
            for other in ("box", "simplex"):
                assert (lowers[method, "exact"] >= lowers[method, other] - TOL).all(), (
                    method, other)


@pytest.mark.parametrize("budget", [0, 1, 2, 3, None])
def test_exact_concretization_is_the_true_extreme(budget):
    """max and min of a linear function sum(A * x) over the set, found by enumeration."""
    table, ids, cand, cand_mask, _ = random_problem(7, batch=2, length=4)
    subs = substitution_set(table, ids, cand, cand_mask, budget, "exact")
    A = torch.randn(2, 3, 4, table.shape[1])  # [batch, specs, length, dim]
    upper, lower = subs.concretize(A, 1), subs.concretize(A, -1)
    for b in range(2):
        values = torch.einsum("sld,nld->ns", A[b], table[rewrites(ids[b], cand[b],
                                                                  cand_mask[b], budget)])
        torch.testing.assert_close(upper[b], values.amax(0), atol=1e-5, rtol=0)
        torch.testing.assert_close(lower[b], values.amin(0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("budget", [1, 2, None])
def test_first_layer_intervals_are_exact(budget):
    """A Conv1d (top-budget per window) and a per-token Linear: the exact range per output."""
    table, ids, cand, cand_mask, _ = random_problem(3, batch=2, length=6)
    subs = substitution_set(table, ids, cand, cand_mask, budget, "exact")
    conv = nn.Conv1d(table.shape[1], 5, 3, stride=2, padding=2, dilation=2)
    linear = nn.Linear(table.shape[1], 5)
    conv_bounds = subs.conv1d_interval(conv.weight, conv.bias, 2, 2, 2, transposed_input=True)
    linear_bounds = subs.linear_interval(linear.weight, linear.bias)
    with torch.no_grad():
        for b in range(2):
            sentences = table[rewrites(ids[b], cand[b], cand_mask[b], budget)]
            conv_out = conv(sentences.transpose(1, 2))
            lin_out = linear(sentences)
            for bounds, out in ((conv_bounds, conv_out), (linear_bounds, lin_out)):
                torch.testing.assert_close(bounds[0][b], out.amin(0), atol=1e-5, rtol=0)
                torch.testing.assert_close(bounds[1][b], out.amax(0), atol=1e-5, rtol=0)


def test_memory_grows_with_length_times_candidates():
    """A long sentence with many candidates: 8^60 sentences, bounded without enumerating."""
    table = torch.randn(50, 8)
    ids = torch.randint(1, 50, (1, 60))
    cand = torch.randint(1, 50, (1, 60, 8))
    subs = SubstitutionSet(table[ids], table[cand], torch.ones(1, 60, 8, dtype=torch.bool), 5)
    body = ConvBody(8).eval()
    lower, upper = compute_bounds(body, subs, "crown-ibp", extra_inputs=(torch.ones(1, 60),))
    assert torch.isfinite(lower).all() and (lower <= upper).all()


def test_gradients_flow_through_substitution_bounds():
    table, ids, cand, cand_mask, mask = random_problem(1)
    table.requires_grad_(True)
    body = ConvBody(table.shape[1])
    subs = substitution_set(table, ids, cand, cand_mask, 2, "exact")
    lower, _ = compute_bounds(body, subs, "crown-ibp", C=margin_matrix(torch.tensor([0, 1, 1]), 2),
                              extra_inputs=(mask,))
    lower.sum().backward()
    assert table.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in body.parameters())


def test_a_set_reused_after_an_in_place_write_is_bounded_as_it_now_is():
    """The set keeps its embedding differences between bounds; writing into its tensors in
    place must not leave the kept ones (and a stale bound) behind."""
    table, ids, cand, cand_mask, mask = random_problem(2)
    body = ConvBody(table.shape[1]).eval()
    C = margin_matrix(torch.tensor([0, 1, 1]), 2)
    with torch.no_grad():
        subs = substitution_set(table, ids, cand, cand_mask, 2, "exact")
        before = compute_bounds(body, subs, "crown", C=C, extra_inputs=(mask,))[0]
        subs.candidates.mul_(3.0)
        subs.center.add_(0.5)
        after = compute_bounds(body, subs, "crown", C=C, extra_inputs=(mask,))[0]
        fresh = SubstitutionSet(subs.center.clone(), subs.candidates.clone(), subs.mask,
                                subs.budget)
        expected = compute_bounds(body, fresh, "crown", C=C, extra_inputs=(mask,))[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected)


def test_bad_substitution_sets():
    with pytest.raises(RobustTextError, match="budget must be an int >= 0"):
        SubstitutionSet(torch.zeros(1, 2, 3), torch.zeros(1, 2, 1, 3),
                        torch.ones(1, 2, 1, dtype=torch.bool), -1)
    with pytest.raises(RobustTextError, match="candidates must be"):
        SubstitutionSet(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3),
                        torch.ones(1, 2, 1, dtype=torch.bool), 1)
    with pytest.raises(RobustTextError, match="mask must have shape"):
        SubstitutionSet(torch.zeros(1, 2, 3), torch.zeros(1, 2, 1, 3), torch.ones(1, 2), 1)
    with pytest.raises(RobustTextError, match="unknown relaxation 'hull'"):
        SubstitutionSet(torch.zeros(1, 2, 3), torch.zeros(1, 2, 1, 3),
                        torch.ones(1, 2, 1, dtype=torch.bool), 1, relaxation="hull")


@pytest.mark.parametrize("eps", [0.3, 1.0])
@pytest.mark.parametrize("budget", [1, 2, None])
def test_token_set_with_eps_matches_the_scaled_substitution_set(eps, budget):
    """Candidates moved to e + eps (e_k - e): the id-based set gives the embedding-based bounds."""
    from robusttext.bounds import TokenSubstitutionSet

    table, ids, cand, cand_mask, mask = random_problem(5)
    original, candidates = table[ids], table[cand]
    scaled = original.unsqueeze(2) + eps * (candidates - original.unsqueeze(2))
    for body in (ConvBody(table.shape[1]).eval(), TokenLinearBody(table.shape[1]).eval()):
        C = margin_matrix(torch.tensor([0, 1, 0]), 2)
        expected = compute_bounds(body, SubstitutionSet(original, scaled, cand_mask, budget),
                                  "ibp", C=C, extra_inputs=(mask,))
        got = compute_bounds(body, TokenSubstitutionSet(table, ids, cand, cand_mask, budget,
                                                        eps=eps),
                             "ibp", C=C, extra_inputs=(mask,))
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("width", [3, 5])
@pytest.mark.parametrize("budget", [1, 2])
def test_token_set_conv_bounds_are_the_same_in_a_training_step(budget, width):
    """The token set's window bound of a Conv1d in a training step (the table requires grad:
    max over the taps at budget 1, topk above) equals the bound without gradients (kept by
    compare-and-swap) and contains every rewrite, enumerated."""
    from robusttext.bounds import TokenSubstitutionSet

    torch.manual_seed(6)
    table, ids, cand, cand_mask, mask = random_problem(7, length=6)
    body = ConvBody(table.shape[1], width=width).eval()
    labels = torch.tensor([0, 1, 0])
    C = margin_matrix(labels, 2)

    def lower(table):
        subs = TokenSubstitutionSet(table, ids, cand, cand_mask, budget)
        return compute_bounds(body, subs, "ibp", C=C, extra_inputs=(mask,))[0]

    with torch.no_grad():
        plain = lower(table)
    trained = lower(table.clone().requires_grad_(True))
    trained.sum().backward()
    torch.testing.assert_close(trained.detach(), plain, atol=1e-6, rtol=1e-6)
    low, _ = true_margin_range(body, table, ids, cand, cand_mask, mask, labels, budget)
    assert (plain <= low + TOL).all()
