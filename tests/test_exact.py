"""Branch and bound (``robusttext.certify.exact``) against enumeration on every set small enough.

Expectations come from listing every rewrite with ``tests/oracles.enumerate_rewrites`` and
running each through the model's forward, never from the search under test.
"""

import json

import pytest
import torch

from robusttext import RobustTextError
from robusttext.certify import certify
from robusttext.certify.exact import (
    CERTIFIED,
    COUNTEREXAMPLE,
    TIMEOUT,
    exact_search,
)
from robusttext.certify.margins import margins
from robusttext.certify.window_dp import supports_window_dp, window_minima, window_minimum
from robusttext.cli import main
from robusttext.data import Example
from robusttext.perturb.encoded import EncodedBatch
from robusttext.text import BagOfWords, WordCNN
from robusttext.text.sequence_models import BiLSTM
from tests.builders import SENTENCES, save_word_model, word_setup, write_tsv
from tests.oracles import enumerate_rewrites

VOCAB = 24


def random_batch(seed, sentences=6, length=7, candidates=3):
    """An ``EncodedBatch`` of random sentences (the last ones padded) and random labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (sentences, length), generator=g)
    cand = torch.randint(1, VOCAB, (sentences, length, candidates), generator=g)
    cmask = torch.rand(sentences, length, candidates, generator=g) < 0.6
    mask = torch.ones(sentences, length)
    for j in range(sentences):
        real = int(torch.randint(3, length + 1, (1,), generator=g))
        mask[j, real:] = 0
        ids[j, real:] = 0
        cmask[j, real:] = False
    labels = torch.randint(0, 2, (sentences,), generator=g)
    return EncodedBatch(ids, mask, cand, cmask, tokens=[]), labels


def make_model(kind, seed):
    torch.manual_seed(seed)
    if kind == "cnn":
        model = WordCNN(VOCAB, embed_dim=6, filters=8)
    elif kind == "bow":
        model = BagOfWords(VOCAB, embed_dim=6, hidden=8)
    else:
        model = BiLSTM(VOCAB, embed_dim=6, hidden=5, max_length=16)
    with torch.no_grad():  # nearby embeddings: some sets are certified, some are not
        model.embedding.weight.mul_(0.4)
        model.embedding.weight[0] = 0
    return model.eval()


def truth(model, batch, j, label, budget):
    """(every rewrite classified as ``label``, the set of rewrites as tuples), by enumeration."""
    real = int(batch.mask[j].sum())
    rows = list(enumerate_rewrites(batch.token_ids[j].tolist(), batch.candidate_ids[j].tolist(),
                                   batch.candidate_mask[j].tolist(),
                                   real if budget is None else budget))
    ids = torch.tensor(rows)
    with torch.no_grad():
        logits = model(ids, batch.mask[j].expand(len(rows), -1))
    return bool((logits.argmax(1) == label).all()), {tuple(r) for r in rows}


def misclassified(model, batch, j, label, rewrite):
    with torch.no_grad():
        return int(model(rewrite[None], batch.mask[j][None]).argmax(1)) != label


CASES = [("cnn", "budget-ibp", 1), ("cnn", "budget-ibp", 4), ("bow", "budget-ibp", 1),
         ("bow", "budget-ibp", 4), ("cnn", "crown-ibp", 1), ("bow", "ibp", 1),
         ("lstm", "crown-ibp", 4)]


@pytest.mark.parametrize("kind,method,leaf_size", CASES)
def test_answers_match_enumeration(kind, method, leaf_size, monkeypatch):
    # the branch and bound alone (the CNN's dynamic programme is tested on its own below)
    monkeypatch.setattr("robusttext.certify.exact.supports_window_dp", lambda body: False)
    outcomes = set()
    for seed in range(2 if kind == "lstm" else 3):
        model = make_model(kind, seed)
        batch, labels = random_batch(seed)
        roots = [(j, b) for j in range(len(batch)) for b in (0, 1, 2, 3, None)]
        answers = exact_search(model, batch, labels, roots, method, time_limit=60.0,
                               leaf_size=leaf_size, round_size=7)
        for (j, budget), answer in zip(roots, answers):
            robust, rewrites = truth(model, batch, j, int(labels[j]), budget)
            assert answer.status == (CERTIFIED if robust else COUNTEREXAMPLE), (seed, j, budget)
            if answer.status == COUNTEREXAMPLE:
                assert tuple(answer.rewrite.tolist()) in rewrites
                assert misclassified(model, batch, j, int(labels[j]), answer.rewrite)
            else:
                assert answer.rewrite is None
            outcomes.add(answer.status)
    assert outcomes == {CERTIFIED, COUNTEREXAMPLE}  # neither answer is vacuous


def test_branching_happens_and_is_needed(monkeypatch):
    """With leaves of one sentence, some certified set needs more than its root's bound."""
    monkeypatch.setattr("robusttext.certify.exact.supports_window_dp", lambda body: False)
    model = make_model("cnn", 1)
    batch, labels = random_batch(1, sentences=8, length=8, candidates=4)
    roots = [(j, 3) for j in range(len(batch))]
    answers = exact_search(model, batch, labels, roots, "ibp", leaf_size=1, time_limit=60.0)
    assert any(a.status == CERTIFIED and a.nodes > 1 for a in answers)

def test_time_limit_reports_timeouts(monkeypatch):
    monkeypatch.setattr("robusttext.certify.exact.supports_window_dp", lambda body: False)
    model = make_model("cnn", 2)
    batch, labels = random_batch(2, sentences=6, length=10, candidates=4)
    roots = [(j, 3) for j in range(len(batch))]
    answers = exact_search(model, batch, labels, roots, "ibp", leaf_size=1, round_size=1,
                           time_limit=1e-9)
    assert any(a.status == TIMEOUT for a in answers)
    for (j, budget), answer in zip(roots, answers):
        if answer.status != TIMEOUT:  # whatever is decided is right
            robust, _ = truth(model, batch, j, int(labels[j]), budget)
            assert answer.status == (CERTIFIED if robust else COUNTEREXAMPLE)


def test_bad_settings_are_refused():
    model = make_model("bow", 0)
    batch, labels = random_batch(0)
    for kwargs in ({"leaf_size": 0}, {"round_size": 0}, {"time_limit": 0},
                   {"time_limit": "10"}, {"method": "fast"}):
        settings = {"method": "ibp", **kwargs}
        with pytest.raises(RobustTextError):
            exact_search(model, batch, labels, [(0, 1)], **settings)


@pytest.mark.parametrize("width,classes,projection", [(3, 2, None), (5, 3, None), (3, 3, 4),
                                                       (5, 2, 4)])
def test_window_minimum_is_the_enumerated_minimum(width, classes, projection):
    """The CNN's dynamic programme gives the lowest margin over the set, and a rewrite of the
    set that attains it."""
    for seed in range(6):
        torch.manual_seed(seed)
        model = WordCNN(VOCAB, embed_dim=5, filters=6, width=width, classes=classes,
                        projection=projection).eval()
        with torch.no_grad():
            model.embedding.weight[0] = 0
        assert supports_window_dp(model.body)
        batch, _ = random_batch(seed, sentences=2, length=7)
        for j in range(len(batch)):
            label = (seed + j) % classes
            ids, mask = batch.token_ids[j], batch.mask[j]
            args = (model.body, model.embedding, ids, mask, batch.candidate_ids[j],
                    batch.candidate_mask[j])
            minima = window_minima(*args, 3, label)  # one programme, every budget up to 3
            for budget in range(4):
                lowest, rewrite = minima[budget]
                assert window_minimum(*args, budget, label)[0] == pytest.approx(lowest)
                rows = list(enumerate_rewrites(ids.tolist(), batch.candidate_ids[j].tolist(),
                                               batch.candidate_mask[j].tolist(), budget))
                with torch.no_grad():
                    logits = model(torch.tensor(rows), mask.expand(len(rows), -1))
                    reached = model(rewrite[None], mask[None])
                labels = torch.full((len(rows),), label)
                assert lowest == pytest.approx(float(margins(logits, labels).min()), abs=1e-5)
                assert float(margins(reached, labels[:1])) == pytest.approx(lowest, abs=1e-5)
                assert rewrite.tolist() in rows


def test_window_pass_decides_cnn_roots_without_branching():
    model = make_model("cnn", 0)
    batch, labels = random_batch(0, sentences=6, length=8)
    roots = [(j, 3) for j in range(len(batch))]
    answers = exact_search(model, batch, labels, roots, "budget-ibp", leaf_size=1)
    for (j, budget), answer in zip(roots, answers):
        robust, _ = truth(model, batch, j, int(labels[j]), budget)
        assert answer.status == (CERTIFIED if robust else COUNTEREXAMPLE)
        assert answer.nodes == 0  # decided by the dynamic programme alone


@pytest.mark.parametrize("kind", ["cnn", "bow"])
def test_certify_exact_matches_enumeration(kind):
    """``certify(method="exact")``: every sentence decided, each answer the enumeration's."""
    vocab, space = word_setup()
    torch.manual_seed(0)
    model = (WordCNN(len(vocab), embed_dim=6, filters=6) if kind == "cnn"
             else BagOfWords(len(vocab), embed_dim=6, hidden=6)).eval()
    words = "a good film , not dull".split()
    examples = [Example(" ".join(words[(i + k) % len(words)] for k in range(2 + i % 4)), i % 2)
                for i in range(8)]
    result = certify(model, vocab, space, examples, budgets=[1, 2, None], method="exact")
    assert result.settings["exact"]["bounds"] == "budget-ibp"
    for r in result.examples:
        assert r.exhaustive is not None  # small sets: enumerated as well
        assert r.exact == ("certified" if r.exhaustive else "counterexample")
        if r.exact == "counterexample":
            assert r.rewrite is not None
    for s in result.summaries:
        assert s.exact_accuracy == s.exhaustive_accuracy and s.exact_timeouts == 0


def test_cli_method_exact(tmp_path, capsys):
    path = save_word_model(tmp_path / "model")
    data = write_tsv(tmp_path / "data.tsv", SENTENCES)
    report = tmp_path / "report.json"
    code = main(["certify", "--model", str(path), "--data", str(data), "--budget", "1,2",
                 "--method", "exact", "--exact-time-limit", "5", "--json", str(report),
                 "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "exact search at 1 position: exact robust accuracy" in out
    written = json.loads(report.read_text())
    assert all(e["exact"] in (CERTIFIED, COUNTEREXAMPLE) for e in written["examples"])
    assert all(s["exact_accuracy"] == s["exhaustive_accuracy"] for s in written["summary"])
    code = main(["certify", "--model", str(path), "--data", str(data), "--method", "exact",
                 "--exact-time-limit", "0"])
    assert code != 0
    assert "--exact-time-limit must be above 0" in capsys.readouterr().err
