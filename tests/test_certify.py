"""Certification against exhaustive enumeration on random small text models.

Expectations come from ``PerturbationSpace.enumerate`` (the perturb package's own enumerator),
run through the model one rewrite set at a time, never from the certify code under test.
"""

import random

import pytest
import torch
import torch.nn as nn

from robusttext import RobustTextError
from robusttext.bounds import METHODS, RELAXATIONS
from robusttext.certify import (
    SoundnessViolation,
    beam_attack,
    certify,
    exhaustive_check,
    margins,
    rewrites,
    set_sizes,
)
from robusttext.data import Example
from robusttext.perturb import PerturbationSpace, SynonymTable, Vocabulary

WORDS = [f"w{i}" for i in range(18)]


class ConvBody(nn.Module):
    """Conv1d over the sequence, ReLU, masked mean pooling, linear head."""

    def __init__(self, dim, hidden=8, width=3, classes=2):
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, width, padding=width // 2)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x, mask):  # x [batch, length, dim], mask [batch, length]
        h = torch.relu(self.conv(x.transpose(1, 2))) * mask.unsqueeze(1)
        return self.head(h.sum(2) / mask.sum(1, keepdim=True))


class TokenLinearBody(nn.Module):
    """Per-token Linear, ReLU, mean pooling, ReLU layer, linear head."""

    def __init__(self, dim, hidden=8, classes=2):
        super().__init__()
        self.token = nn.Linear(dim, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x, mask):
        h = torch.relu(self.token(x)) * mask.unsqueeze(-1)
        pooled = h.sum(1) / mask.sum(1, keepdim=True)
        return self.head(torch.relu(self.mid(pooled)))


class TextModel(nn.Module):
    """Follows the text-model contract: embedding, then body."""

    def __init__(self, vocab_size, body, dim):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)  # zero padding row
        self.body = body

    def forward(self, ids, mask):
        return self.body(self.embedding(ids), mask)


BODIES = {"conv": ConvBody, "token_linear": TokenLinearBody}


def random_setup(seed, body="conv", sentences=6, classes=2, dim=5, spread=0.3):
    """A vocabulary, a synonym space, labelled sentences and a random model whose synonyms
    have nearby embeddings (so that some sentences are certified)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    groups = [WORDS[i:i + 3] for i in range(0, len(WORDS), 3)]
    table = {}
    for group in groups:
        for word in group[: rng.randint(1, 3)]:
            table[word] = [w for w in group if w != word and rng.random() < 0.8]
    vocab = Vocabulary(WORDS)
    space = PerturbationSpace(SynonymTable(table), budget=2, stop_words=[])
    model = TextModel(len(vocab), BODIES[body](dim, classes=classes), dim).eval()
    with torch.no_grad():
        centres = torch.randn(len(groups), dim)
        for g, group in enumerate(groups):
            for word in group:
                model.embedding.weight[vocab.id(word)] = centres[g] + spread * torch.randn(dim)
    examples = [Example(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))),
                        rng.randrange(classes)) for _ in range(sentences)]
    return model, vocab, space, examples


def enumerated_truth(model, vocab, space, text, label, budget):
    """(lowest margin, every rewrite classified correctly) over the set, by enumeration."""
    single = PerturbationSpace(space.sources, budget=budget, stop_words=[])
    rows = torch.tensor(list(single.enumerate(text, vocab)))
    with torch.no_grad():
        logits = model(rows, torch.ones(rows.shape))
    m = margins(logits, torch.full((len(rows),), label))
    return float(m.min()), bool((logits.argmax(1) == label).all())


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("method", METHODS)
def test_certificates_agree_with_enumeration(body, method):
    certified_somewhere = 0
    for seed in range(2):
        model, vocab, space, examples = random_setup(seed, body)
        for relaxation in RELAXATIONS:
            result = certify(model, vocab, space, examples, budgets=[0, 1, 2, None],
                             method=method, relaxation=relaxation)
            for r in result.examples:
                low, robust = enumerated_truth(model, vocab, space, r.text, r.label, r.budget)
                assert r.margin_lower <= low + 1e-4, (r, low)
                assert r.exhaustive is robust  # every set here is small enough to enumerate
                if r.certified:
                    assert robust and not r.attacked
                    certified_somewhere += r.budget != 0
                if r.budget == 0:  # a single sentence: the bound is its margin
                    assert r.certified == (r.prediction == r.label)
    assert certified_somewhere > 0  # the check is not vacuous


def test_exact_never_looser_than_box_or_simplex():
    for body in BODIES:
        model, vocab, space, examples = random_setup(3, body)
        lower = {rel: [r.margin_lower for r in certify(model, vocab, space, examples,
                                                         budgets=[1, 2], relaxation=rel,
                                                         method="crown-ibp").examples]
                 for rel in RELAXATIONS}
        for other in ("box", "simplex"):
            assert all(e >= o - 1e-5 for e, o in zip(lower["exact"], lower[other]))


def test_summary_counts_match_examples():
    model, vocab, space, examples = random_setup(4, sentences=8)
    result = certify(model, vocab, space, examples, budgets=[1, 2])
    for s in result.summaries:
        rows = [r for r in result.examples if r.budget == s.budget]
        assert s.n == len(rows) == len(examples)
        assert s.verified_accuracy == sum(r.certified for r in rows) / s.n
        assert s.verified_accuracy <= s.exhaustive_accuracy <= s.attack_accuracy
        assert s.attack_accuracy <= s.clean_accuracy
        assert s.exhaustive_n == s.n
    assert [r.index for r in result.examples[:8]] == list(range(8))


def test_three_classes():
    model, vocab, space, examples = random_setup(5, classes=3)
    result = certify(model, vocab, space, examples, budgets=[1], method="crown")
    for r in result.examples:
        low, robust = enumerated_truth(model, vocab, space, r.text, r.label, 1)
        assert r.margin_lower <= low + 1e-4 and r.exhaustive is robust


def test_large_sets_are_not_enumerated():
    model, vocab, space, examples = random_setup(6)
    result = certify(model, vocab, space, examples, budgets=[2], enumerate_limit=3)
    for r in result.examples:
        if r.set_size > 3:
            assert r.exhaustive is None or (r.exhaustive is False and r.attacked)
    assert all(r.exhaustive is None for r in certify(
        model, vocab, space, examples, budgets=[1], enumerate_limit=0).examples)


# -- attacks ----------------------------------------------------------------------------------


def encoded(model, vocab, space, examples):
    batch = space.encode([e.text for e in examples], vocab)
    return batch, torch.tensor([e.label for e in examples])


@pytest.mark.parametrize("body", sorted(BODIES))
def test_full_beam_finds_every_flip(body):
    """With every substitution evaluated and a beam as wide as the set, the search is
    exhaustive: it finds a flip exactly when enumeration does."""
    flips = 0
    for seed in range(3):
        model, vocab, space, examples = random_setup(seed, body, spread=1.0)
        batch, labels = encoded(model, vocab, space, examples)
        result = beam_attack(model, batch, labels, 3, beam_width=512, proposals=None)
        for j, e in enumerate(examples):
            for budget in range(4):
                _, robust = enumerated_truth(model, vocab, space, e.text, e.label, budget)
                assert bool(result.flipped[j, budget]) == (not robust), (seed, j, budget)
                flips += not robust
    assert flips > 0


def test_attack_witnesses_are_real():
    """A reported flip is a sentence of the set that the model misclassifies, and the margins
    reported are margins the model reaches."""
    for seed in range(3):
        model, vocab, space, examples = random_setup(seed, spread=1.0)
        batch, labels = encoded(model, vocab, space, examples)
        result = beam_attack(model, batch, labels, 2, beam_width=1, proposals=2)
        for j, e in enumerate(examples):
            n = len(batch.tokens[j])
            truth_low, _ = enumerated_truth(model, vocab, space, e.text, e.label, 2)
            assert result.margins[j, 2] >= truth_low - 1e-5
            assert (result.margins[j, 1:] <= result.margins[j, :-1]).all()
            changes = int(result.witness_changes[j])
            if changes >= 0:
                single = PerturbationSpace(space.sources, budget=2, stop_words=[])
                members = {tuple(r) for r in single.enumerate(e.text, vocab)}
                witness = result.witness[j, :n]
                assert tuple(witness.tolist()) in members
                assert int((witness != batch.token_ids[j, :n]).sum()) == changes
                with torch.no_grad():
                    logits = model(witness[None], torch.ones(1, n))
                assert int(logits.argmax(1)) != e.label


def test_greedy_finds_flips_on_some_cases():
    found = 0
    for seed in range(4):
        model, vocab, space, examples = random_setup(seed, spread=1.0, sentences=8)
        batch, labels = encoded(model, vocab, space, examples)
        clean = beam_attack(model, batch, labels, 0).flipped[:, 0]
        greedy = beam_attack(model, batch, labels, 2, beam_width=1, proposals=1)
        found += int((greedy.flipped[:, 2] & ~clean).sum())
    assert found > 0


# -- exhaustive enumeration -------------------------------------------------------------------


def test_rewrites_match_the_spaces_enumeration():
    model, vocab, space, examples = random_setup(7)
    batch = space.encode([e.text for e in examples], vocab)
    for budget in (0, 1, 2, None):
        sizes = set_sizes(batch, budget)
        for j, e in enumerate(examples):
            n = len(batch.tokens[j])
            rows, changes = rewrites(batch.token_ids[j, :n], batch.candidate_ids[j, :n],
                                     batch.candidate_mask[j, :n], budget)
            single = PerturbationSpace(space.sources, budget=budget, stop_words=[])
            expected = [tuple(r) for r in single.enumerate(e.text, vocab)]
            assert sorted(map(tuple, rows.tolist())) == sorted(expected)
            assert len(rows) == sizes[j] == single.count(e.text, vocab)
            assert (changes == (rows != batch.token_ids[j, :n]).sum(1)).all()


def test_exhaustive_check_per_level():
    model, vocab, space, examples = random_setup(8, spread=1.0)
    batch, labels = encoded(model, vocab, space, examples)
    lowest, flipped = exhaustive_check(model, batch, labels, {j: 2 for j in range(len(examples))},
                                       levels=3, chunk=7)
    for j, e in enumerate(examples):
        for budget in range(3):
            low, robust = enumerated_truth(model, vocab, space, e.text, e.label, budget)
            assert abs(float(lowest[j, budget]) - low) < 1e-5
            assert bool(flipped[j, budget]) == (not robust)


# -- the soundness invariant ------------------------------------------------------------------


def test_a_false_certificate_is_caught(monkeypatch):
    """A bound engine that claims too much: every run checks, and names the sentence."""
    import robusttext.certify.certifier as certifier

    model, vocab, space, examples = random_setup(0, spread=1.0)

    def overconfident(problem, *args, **kwargs):
        return torch.full((problem.C.shape[0], 1), 5.0)

    monkeypatch.setattr(certifier, "margin_lower_bounds", overconfident)
    with pytest.raises(SoundnessViolation, match="sentence 'w"):
        certify(model, vocab, space, examples, budgets=[1])


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input():
    model, vocab, space, examples = random_setup(0)
    with pytest.raises(RobustTextError, match="embedding"):
        certify(model.body, vocab, space, examples)
    with pytest.raises(RobustTextError, match="unknown method 'fast'"):
        certify(model, vocab, space, examples, method="fast")
    with pytest.raises(RobustTextError, match="unknown relaxation"):
        certify(model, vocab, space, examples, relaxation="hull")
    with pytest.raises(RobustTextError, match="budget is an integer >= 0, got -1"):
        certify(model, vocab, space, examples, budgets=[1, -1])
    with pytest.raises(RobustTextError, match="label 2 is out of range.*2 classes"):
        certify(model, vocab, space, [Example("w1 w2", 2, "file.tsv:3")])
    with pytest.raises(RobustTextError, match="file.tsv:3"):
        certify(model, vocab, space, [Example("w1 w2", 7, "file.tsv:3")])
    with pytest.raises(RobustTextError, match="no sentences"):
        certify(model, vocab, space, [])
    with pytest.raises(RobustTextError, match="max_budget"):
        beam_attack(model, *encoded(model, vocab, space, examples), -1)


def test_default_budget_is_the_spaces():
    model, vocab, space, examples = random_setup(0)
    assert [s.budget for s in certify(model, vocab, space, examples[:2]).summaries] == [2]
    open_space = PerturbationSpace(space.sources, budget=None, stop_words=[])
    assert [s.budget for s in certify(model, vocab, open_space, examples[:2]).summaries] == [
        1, 2, 3]


# -- the token-aware substitution set ---------------------------------------------------------


@pytest.mark.parametrize("differentiable", [False, True])
@pytest.mark.parametrize("budget", [0, 1, 2, 3, None])
@pytest.mark.parametrize("relaxation", RELAXATIONS)
def test_token_set_matches_substitution_set(budget, relaxation, differentiable):
    """Per-distinct-row gains give the parent's first-layer bounds and input intervals, both
    on the in-place path (no gradients) and on the differentiable one."""
    from robusttext.bounds import SubstitutionSet, TokenSubstitutionSet

    g = torch.Generator().manual_seed(budget or 7)
    table = torch.randn(9, 4, generator=g)
    ids = torch.randint(1, 9, (3, 7), generator=g)
    cand = torch.randint(1, 9, (3, 7, 3), generator=g)
    mask = torch.rand(3, 7, 3, generator=g) < 0.6
    ids[:, 2] = 4  # repeated (token, candidates) rows
    cand[:, 2], mask[:, 2] = torch.tensor([5, 6, 7]), torch.tensor([True, False, True])
    table.requires_grad_(differentiable)
    ours = TokenSubstitutionSet(table, ids, cand, mask, budget, relaxation)
    theirs = SubstitutionSet(table[ids], table[cand], mask, budget, relaxation)
    for a, b in zip(ours.interval(), theirs.interval()):
        torch.testing.assert_close(a, b)
    weight, bias = torch.randn(5, 4, generator=g), torch.randn(5, generator=g)
    conv_w = torch.randn(5, 4, 3, generator=g)
    pairs = [(ours.linear_interval(weight, bias), theirs.linear_interval(weight, bias))]
    for stride, padding, dilation in ((1, 1, 1), (2, 2, 2), (1, 0, 1)):
        pairs.append((ours.conv1d_interval(conv_w, bias, stride, padding, dilation, True),
                      theirs.conv1d_interval(conv_w, bias, stride, padding, dilation, True)))
    for mine, reference in pairs:
        if reference is None:
            assert mine is None
            continue
        for a, b in zip(mine, reference):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_margin_bounds_are_differentiable():
    """The token-aware bounds give the engine's gradients (they can serve as a training loss)."""
    from robusttext.bounds import SubstitutionSet, compute_bounds, margin_matrix
    from robusttext.certify import batch_problem, margin_lower_bounds

    model, vocab, space, examples = random_setup(2)
    batch, labels = encoded(model, vocab, space, examples)
    for budget in (1, 2):
        lower = margin_lower_bounds(batch_problem(model, batch, labels, budget, classes=2),
                                    "crown-ibp")
        ours = torch.autograd.grad(lower.sum(), list(model.parameters()))
        table = model.embedding.weight
        subs = SubstitutionSet(table[batch.token_ids], table[batch.candidate_ids],
                               batch.candidate_mask, budget)
        reference, _ = compute_bounds(model.body, subs, "crown-ibp", C=margin_matrix(labels, 2),
                                      extra_inputs=(batch.mask,))
        torch.testing.assert_close(lower, reference, atol=1e-5, rtol=1e-5)
        theirs = torch.autograd.grad(reference.sum(), list(model.parameters()))
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
