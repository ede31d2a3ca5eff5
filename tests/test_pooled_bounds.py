"""budget-ibp: sound against enumeration, never looser than IBP, exact where the math says so."""

import pytest
import torch

from robusttext.bounds import SubstitutionSet, TokenSubstitutionSet, compute_bounds, margin_matrix
from robusttext.bounds.pooling import pooled_interval, pooled_margin_lower
from robusttext.bounds.specs import margin_lower_bounds
from robusttext.errors import RobustTextError
from robusttext.text import BagOfWords, BiLSTM, CharCNN, WordCNN
from robusttext.text.bounds import body_problem
from robusttext.text.models import masked_mean
from tests.builders import char_setup, word_setup
from tests.oracles import enumerate_rewrites

WORD_SENTENCES = ["a good film , not dull , a good movie", "good film", "not a dull film"]
CHAR_SENTENCES = ["a good film and a dog", "dog", "good"]
MODELS = [
    ("char", lambda n: CharCNN(n, embed_dim=8, filters=6, width=5)),
    ("char", lambda n: CharCNN(n, embed_dim=8, filters=6, width=3)),
    ("word", lambda n: WordCNN(n, embed_dim=8, filters=6, width=3)),
    ("word", lambda n: BagOfWords(n, embed_dim=8, hidden=6)),
    ("word", lambda n: WordCNN(n, embed_dim=8, filters=6, width=3, projection=5)),
]


def setup(level, make, budget, seed=0):
    torch.manual_seed(seed)
    vocab, space = word_setup() if level == "word" else char_setup()
    sentences = WORD_SENTENCES if level == "word" else CHAR_SENTENCES
    batch = space.encode(sentences, vocab)
    model = make(len(vocab)).eval()
    with torch.no_grad():
        model.embedding.weight.normal_()
        model.embedding.weight[0] = 0
    labels = torch.tensor([0, 1, 0])
    input_set = TokenSubstitutionSet(model.embedding.weight, batch.token_ids,
                                     batch.candidate_ids, batch.candidate_mask, budget)
    return model, batch, labels, input_set


def rewrites_of(batch, b, budget):
    n = int(batch.mask[b].sum())
    return torch.tensor(list(enumerate_rewrites(
        batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
        batch.candidate_mask[b, :n].tolist(), 10**6 if budget is None else budget)))


@pytest.mark.parametrize("level,make", MODELS)
@pytest.mark.parametrize("budget", [1, 2, 3, None])
def test_budget_bound_is_below_every_enumerated_margin(level, make, budget):
    for seed in range(3):
        model, batch, labels, input_set = setup(level, make, budget, seed)
        C = margin_matrix(labels, 2)
        with torch.no_grad():
            lower = pooled_margin_lower(model.body, input_set, C, batch.mask)
            ibp = compute_bounds(model.body, input_set, "ibp", C=C,
                                 extra_inputs=(batch.mask,))[0]
            for b in range(len(labels)):
                ids = rewrites_of(batch, b, budget)
                logits = model(ids, torch.ones(ids.shape))
                true_margin = (logits[:, labels[b]] - logits[:, 1 - labels[b]]).min()
                assert lower[b, 0] <= true_margin + 1e-5
                assert lower[b, 0] >= ibp[b, 0] - 1e-5  # never looser than IBP


@pytest.mark.parametrize("level,make", MODELS[:3])
def test_without_a_budget_the_cnn_bound_is_ibp(level, make):
    """Every window at its own worst case is what IBP computes for a CNN with a linear head."""
    model, batch, labels, input_set = setup(level, make, None)
    C = margin_matrix(labels, 2)
    with torch.no_grad():
        lower = pooled_margin_lower(model.body, input_set, C, batch.mask)
        ibp = compute_bounds(model.body, input_set, "ibp", C=C, extra_inputs=(batch.mask,))[0]
    torch.testing.assert_close(lower, ibp, atol=1e-5, rtol=1e-5)


def test_budget_one_is_much_tighter_than_ibp_on_a_long_sentence():
    model, batch, labels, input_set = setup("char", MODELS[0][1], 1)
    C = margin_matrix(labels, 2)
    with torch.no_grad():
        lower = pooled_margin_lower(model.body, input_set, C, batch.mask)
        ibp = compute_bounds(model.body, input_set, "ibp", C=C, extra_inputs=(batch.mask,))[0]
        logits = model(batch.token_ids, batch.mask)
    clean = logits[0, labels[0]] - logits[0, 1 - labels[0]]
    # one flip moves at most 5 of the 21 windows; IBP lets all of them move
    assert clean - lower[0, 0] < 0.5 * (clean - ibp[0, 0])


@pytest.mark.parametrize("budget", [1, 2, None])
def test_bag_of_words_pooled_interval_is_the_exact_range(budget):
    """Each token's features depend on that token alone, so per coordinate the budget-aware
    interval is reached: compare with the min/max over every enumerated rewrite."""
    model, batch, labels, input_set = setup("word", MODELS[3][1], budget)
    with torch.no_grad():
        low, high = pooled_interval(model.body, input_set, batch.mask)
        for b in range(len(labels)):
            ids = rewrites_of(batch, b, budget)
            pooled = masked_mean(model.body.features(model.embedding(ids)),
                                 torch.ones(ids.shape))
            torch.testing.assert_close(low[b], pooled.amin(0), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(high[b], pooled.amax(0), atol=1e-5, rtol=1e-5)


def test_budget_bound_trains_every_weight():
    model, batch, labels, _ = setup("char", MODELS[0][1], 2)
    input_set = TokenSubstitutionSet(model.embedding.weight, batch.token_ids,
                                     batch.candidate_ids, batch.candidate_mask, 2, eps=0.5)
    lower = pooled_margin_lower(model.body, input_set, margin_matrix(labels, 2), batch.mask)
    (-lower.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_models_without_pooled_features_are_refused_by_name():
    vocab, space = word_setup()
    model = BiLSTM(len(vocab), embed_dim=8, hidden=4, max_length=12)
    batch = space.encode(["a good film"], vocab)
    emb = model.embedding
    input_set = SubstitutionSet(emb(batch.token_ids), emb(batch.candidate_ids),
                                batch.candidate_mask, 1)
    with pytest.raises(RobustTextError, match="budget-ibp bounds need a body that pools"):
        margin_lower_bounds(body_problem(model.body, input_set,
                                         margin_matrix(torch.tensor([0]), 2), batch.mask),
                            "budget-ibp")
    with pytest.raises(RobustTextError, match="unknown method 'bogus'"):
        margin_lower_bounds(body_problem(model.body, input_set,
                                         margin_matrix(torch.tensor([0]), 2), batch.mask),
                            "bogus")


def test_certify_picks_budget_ibp_for_pooling_models_and_crown_ibp_otherwise():
    from robusttext.certify import certify

    vocab, space = word_setup()
    examples = [(s, i % 2) for i, s in enumerate(WORD_SENTENCES)]
    torch.manual_seed(0)
    bow = BagOfWords(len(vocab), embed_dim=8, hidden=6)
    auto = certify(bow, vocab, space, examples, budgets=[1, 2])
    ibp = certify(bow, vocab, space, examples, budgets=[1, 2], method="ibp")
    assert auto.settings["method"] == "budget-ibp" and ibp.settings["method"] == "ibp"
    for a, i in zip(auto.examples, ibp.examples):
        assert a.margin_lower >= i.margin_lower - 1e-5
    lstm = BiLSTM(len(vocab), embed_dim=8, hidden=4, max_length=12)
    auto = certify(lstm, vocab, space, examples, budgets=[1])
    ibp = certify(lstm, vocab, space, examples, budgets=[1], method="ibp")
    assert auto.settings["method"] == "crown-ibp"
    for a, i in zip(auto.examples, ibp.examples):
        assert a.margin_lower >= i.margin_lower - 1e-5


@pytest.mark.parametrize("window", [(0, 0), (1, 1), (2, 2), (0, 2), (1, 0)])
@pytest.mark.parametrize("budget", [0, 1, 2, 3, 4])
def test_budgeted_window_sum_is_the_smallest_over_every_position_set(window, budget):
    """The dynamic programme against every set of at most `budget` changeable positions, and
    never below the per-position top-budget sum or the all-windows sum."""
    from itertools import combinations

    from robusttext.bounds.pooling import _smallest_union_sum

    left, right = window
    generator = torch.Generator().manual_seed(budget * 10 + left * 3 + right)
    batch, rows, length = 3, 2, 7
    change = -torch.rand(batch, rows, length, generator=generator, dtype=torch.float64)
    change[:, :, ::3] = 0  # some windows never move
    changeable = torch.rand(batch, length, generator=generator) < 0.7
    changeable[0] = False  # nothing can change in the first sentence
    ours = _smallest_union_sum(change, changeable, budget, window)
    for b in range(batch):
        places = [p for p in range(length) if changeable[b, p]]
        for r in range(rows):
            expected = 0.0
            for k in range(1, budget + 1):
                for chosen in combinations(places, k):
                    read = {o for p in chosen for o in range(p - right, p + left + 1)
                            if 0 <= o < length}
                    expected = min(expected, sum(change[b, r, o].item() for o in read))
            assert ours[b, r].item() == pytest.approx(expected, abs=1e-12)
            per_position = sorted(
                sum(change[b, r, o].item() for o in range(p - right, p + left + 1)
                    if 0 <= o < length) for p in places)
            assert ours[b, r].item() >= sum(per_position[:budget]) - 1e-12
            assert ours[b, r].item() >= change[b, r].sum().item() - 1e-12
