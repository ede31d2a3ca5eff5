"""The containment oracle: a bound that the model's own output contradicts is never returned,
and nothing but a ``RobustTextError`` leaves the engine.

The faults are planted (a rule or an input set made wrong on purpose); what the oracle must find
is computed from the live model."""

import pytest
import torch
import torch.nn as nn

import robusttext.bounds.pooling as pooling
from robusttext.bounds import Box, SubstitutionSet, TokenSubstitutionSet, compute_bounds
from robusttext.bounds.input_sets import InputSet
from robusttext.bounds.oracle import checking, points
from robusttext.bounds.specs import margin_matrix
from robusttext.errors import RobustTextError
from robusttext.text import BagOfWords
from tests.builders import random_problem, word_setup


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()


def a_box():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    return Box(x - 0.3, x + 0.3)


@pytest.mark.parametrize("method", ["crown", "crown-ibp", "alpha-crown"])
def test_a_contradicted_bound_is_refused_naming_the_method_and_the_node(method, monkeypatch):
    import robusttext.bounds.engine as engine

    model, box = net(), a_box()
    honest = engine.intersect

    def shifted(interval, linear):  # every bound moved 10 inwards: wrong
        lower, upper = honest(interval, linear)
        return lower + 10, upper - 10

    monkeypatch.setattr(engine, "intersect", shifted)
    with pytest.raises(RobustTextError, match=rf"unsound {method} bound.*Linear \(2\).*report"):
        compute_bounds(model, box, method)
    with checking(False):  # the oracle, and nothing else, stopped it
        lower, upper = compute_bounds(model, box, method)
    with torch.no_grad():
        y = model(box.center)
    assert ((lower > y) | (upper < y)).all()


def test_an_ibp_rule_gone_wrong_is_refused(monkeypatch):
    from robusttext.bounds.rules.activations import ReLURule

    honest = ReLURule.ibp
    monkeypatch.setattr(ReLURule, "ibp", lambda self, ctx: tuple(
        end + 5 for end in honest(self, ctx)))
    with pytest.raises(RobustTextError, match="unsound ibp bound"):
        compute_bounds(net(), a_box(), "ibp")


def test_an_unforeseen_exception_becomes_an_internal_error(monkeypatch):
    def broken(self, A, sign):
        raise IndexError("index 3 is out of bounds")

    monkeypatch.setattr(InputSet, "concretize", broken)
    with pytest.raises(RobustTextError, match=r"internal error in robusttext's crown bounds.*"
                                              r"IndexError.*report"):
        compute_bounds(net(), a_box(), "crown")


def test_budget_ibp_is_checked_against_the_body(monkeypatch):
    torch.manual_seed(0)
    vocab, space = word_setup()
    batch = space.encode(["a good film , not dull", "not a dull film"], vocab)
    model = BagOfWords(len(vocab), embed_dim=8, hidden=6).eval()
    subs = TokenSubstitutionSet(model.embedding.weight, batch.token_ids, batch.candidate_ids,
                                batch.candidate_mask, 1)
    C = margin_matrix(torch.tensor([0, 1]), 2)
    pooling.pooled_margin_lower(model.body, subs, C, batch.mask)  # honest: passes
    monkeypatch.setattr(pooling, "_pooled_margin_lower", lambda body, s, C, mask: (
        C @ body(s.center, mask).unsqueeze(-1)).squeeze(-1) + 0.01)  # above the clean margin
    with pytest.raises(RobustTextError, match="unsound budget-ibp bound"):
        pooling.pooled_margin_lower(model.body, subs, C, batch.mask)


def test_the_cheap_points_are_members_of_the_set():
    table, ids, cand, cand_mask, _ = random_problem(3)
    for budget in (0, 1, 2, None):
        subs = SubstitutionSet(table[ids], table[cand], cand_mask, budget)
        found = points(subs, 4)
        assert torch.equal(found[0][1], table[ids])
        assert len(found) == (1 if budget == 0 else 4)
        for _, point in found[1:]:
            changed = (point != table[ids]).any(-1)  # [batch, length]
            assert (changed.sum(1) <= 1).all()
            for b, p in changed.nonzero().tolist():
                options = [table[c] for c, m in zip(cand[b, p], cand_mask[b, p]) if m]
                assert any(torch.equal(point[b, p], o) for o in options)
    box = a_box()
    for _, point in points(box, 4):
        assert ((box.lower <= point) & (point <= box.upper)).all()
        corner = (point == box.lower) | (point == box.upper)
        assert corner.all() or torch.equal(point, box.center)


def test_training_checks_every_n_steps_as_set():
    from robusttext.bounds.oracle import enabled
    from robusttext.train.config import TrainConfig

    assert enabled()
    with checking(False):
        assert not enabled()
    assert enabled()
    assert TrainConfig(oracle_every=5).oracle_every == 5
    with pytest.raises(RobustTextError, match="oracle-every"):
        TrainConfig(oracle_every=-1)
