"""The enumeration's time budget (``--enumerate-seconds``) and the exhaustive column's range.

Expectations come from the per-sentence results, counted by hand here (never from the
summary the code computes), and from a direct forward pass over every rewrite.
"""

import json

import pytest
import torch

from robusttext.certify import certify
from robusttext.certify.exhaustive import enumerate_sets, rewrites
from robusttext.cli import main
from robusttext.text import load_text_model
from tests.builders import SENTENCES


def test_a_spent_budget_enumerates_one_sentence_and_says_so(word_model):
    bundle = load_text_model(word_model)
    full = certify(bundle.model, bundle.vocab, bundle.space, SENTENCES, budgets=[1, 2],
                   beam_width=1, proposals=1)
    cut = certify(bundle.model, bundle.vocab, bundle.space, SENTENCES, budgets=[1, 2],
                  beam_width=1, proposals=1, enumerate_seconds=1e-12)
    # the same proofs and attacks; only the enumeration differs
    for a, b in zip(full.examples, cut.examples):
        assert (a.certified, a.attacked, a.margin_lower) == (b.certified, b.attacked,
                                                              b.margin_lower)
        assert b.exhaustive in (a.exhaustive, None)
    unsettled = {r.index for r in full.examples if not r.attacked}
    enumerated = {r.index for r in cut.examples if r.exhaustive is not None and not r.attacked}
    assert len(enumerated) == 1 and enumerated <= unsettled  # at least one, and no more
    for budget in (1, 2):
        mine = [r for r in cut.examples if r.budget == budget]
        left = sum(r.exhaustive is None for r in mine)
        assert cut.settings["enumeration_timed_out"][str(budget)] == left > 0
    assert full.settings["enumeration_timed_out"] == {"1": 0, "2": 0}


def test_enumerate_sets_stops_at_the_deadline_and_agrees_with_a_forward_pass(word_model):
    bundle = load_text_model(word_model)
    enc = bundle.space.encode([s for s, _ in SENTENCES], bundle.vocab)
    labels = torch.tensor([y for _, y in SENTENCES])
    started = []
    lowest, flipped, done = enumerate_sets(bundle.model.eval(), enc, labels,
                                           {3: 2, 0: 2, 1: 2}, 3, deadline=0.0,
                                           on_sentence=started.append)
    assert done == [3] and started == [1]
    assert torch.isinf(lowest[[0, 1, 2, 4]]).all()
    rows, changes = rewrites(enc.token_ids[3], enc.candidate_ids[3], enc.candidate_mask[3], 2)
    with torch.no_grad():
        logits = bundle.model(rows, enc.mask[3].expand(len(rows), -1))
    wrong = logits.argmax(1) != labels[3]
    for d in range(3):
        assert bool(flipped[3, d]) == bool(wrong[changes <= d].any())


def test_the_exhaustive_column_is_a_range_over_every_sentence(word_model, data, tmp_path,
                                                             capsys):
    out = tmp_path / "r.json"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget", "2",
                 "--enumerate-seconds", "1e-12", "--beam-width", "1", "--proposals", "1",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    (summary,) = report["summary"]
    examples = report["examples"]
    n = len(examples)
    low = sum(e["certified"] if e["exhaustive"] is None else e["exhaustive"]
              for e in examples)
    high = sum(not (e["attacked"] or e["misclassified"]) if e["exhaustive"] is None
               else e["exhaustive"] for e in examples)
    verified = sum(e["certified"] for e in examples)
    attack = sum(not (e["attacked"] or e["misclassified"]) for e in examples)
    assert verified <= low <= high <= attack
    assert summary["robust_range"] == pytest.approx([low / n, high / n])
    assert "--enumerate-seconds 1e-12) ran out" in printed
    shown = f"{100 * low / n:.1f}%" if low == high else (
        f"{100 * low / n:.1f}%-{100 * high / n:.1f}%")
    assert shown in printed


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_bad_seconds_are_refused_in_one_line(word_model, data, capsys, value):
    assert main(["certify", "--model", str(word_model), "--data", str(data),
                 "--enumerate-seconds", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--enumerate-seconds" in err


def test_the_demo_sentences_get_a_budget_and_data_none(word_model, data, tmp_path):
    out = tmp_path / "r.json"
    assert main(["certify", "--model", str(word_model), "--json", str(out), "--quiet"]) == 0
    settings = json.loads(out.read_text())["models"]["word-model"]["settings"]
    assert settings["enumerate_seconds"] == 0.3
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--json",
                 str(out)]) == 0
    settings = json.loads(out.read_text())["models"]["word-model"]["settings"]
    assert settings["enumerate_seconds"] is None
    assert main(["certify", "--model", str(word_model), "--json", str(out),
                 "--enumerate-seconds", "none", "--quiet"]) == 0
    settings = json.loads(out.read_text())["models"]["word-model"]["settings"]
    assert settings["enumerate_seconds"] is None


def test_progress_counts_sentences_while_enumerating(word_model, capsys):
    bundle = load_text_model(word_model)
    certify(bundle.model, bundle.vocab, bundle.space, SENTENCES, budgets=[2], progress=True,
            beam_width=1, proposals=1)
    assert "enumerating sentence 1 of" in capsys.readouterr().err
