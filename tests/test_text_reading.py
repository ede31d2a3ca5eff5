"""robusttext's own models read a sentence as people write it exactly as its GLUE form: the same
ids, the same set, the same certificate; rewrites are text that reads back as their rows."""

from __future__ import annotations

import pytest
import torch

from robusttext.certify import certify
from robusttext.certify.exhaustive import rewrites
from robusttext.certify.margins import predict
from robusttext.certify.reading import ReadingMismatch
from robusttext.perturb import CharacterFlips, PerturbationSpace, SynonymTable, Vocabulary
from robusttext.perturb.tokenizers import tokenize
from robusttext.text import WordCNN

PAIRS = [
    ("It's a charming, often affecting journey.", "it 's a charming , often affecting journey ."),
    ("The Film Isn't Good -- it's BAD!", "the film is n't good -- it 's bad !"),
    ('A "funny" film: 2 hours, no boring story.',
     "a `` funny '' film : 2 hours , no boring story ."),
]
TABLE = {"charming": ["enchanting", "delightful"], "affecting": ["moving"], "journey": ["trip"],
         "film": ["movie"], "good": ["great", "fine", "superb"], "bad": ["awful"],
         "funny": ["amusing"], "boring": ["dull"], "story": ["tale"], "hours": ["minutes"]}


def _setup(level="word"):
    torch.manual_seed(0)
    words = [w for _, glue in PAIRS for w in glue.split()] + [w for v in TABLE.values()
                                                              for w in v if w != "superb"]
    if level == "word":
        vocab = Vocabulary(dict.fromkeys(words))
        space = PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[])
    else:
        vocab = Vocabulary(sorted(set(" ".join(words))))
        space = PerturbationSpace(CharacterFlips({"o": ["p", "i"], "a": ["s"], "g": ["h"]}),
                                  budget=2, level="char")
    return vocab, space, WordCNN(len(vocab), embed_dim=8, filters=6).eval()


@pytest.mark.parametrize("level", ["word", "char"])
def test_a_raw_sentence_and_its_glue_form_get_the_same_certificate(level):
    vocab, space, model = _setup(level)
    raw = [r for r, _ in PAIRS]
    glue = [g for _, g in PAIRS]
    a, b = space.encode(raw, vocab), space.encode(glue, vocab)
    assert torch.equal(a.token_ids, b.token_ids) and torch.equal(a.candidate_ids, b.candidate_ids)
    labels = predict(model, a.token_ids, a.mask).argmax(1).tolist()
    first = certify(model, vocab, space, list(zip(raw, labels, strict=True)), budgets=[1, 2])
    second = certify(model, vocab, space, list(zip(glue, labels, strict=True)), budgets=[1, 2])
    for x, y in zip(first.examples, second.examples, strict=True):
        assert (x.certified, x.margin_lower, x.set_size, x.exhaustive, x.attacked) == (
            y.certified, y.margin_lower, y.set_size, y.exhaustive, y.attacked)


@pytest.mark.parametrize("level", ["word", "char"])
def test_every_rewrite_as_text_reads_back_as_its_row(level):
    vocab, space, model = _setup(level)
    for raw, _ in PAIRS:
        enc = space.encode([raw], vocab)
        rows, _ = rewrites(enc.token_ids[0], enc.candidate_ids[0], enc.candidate_mask[0], 2)
        assert len(rows) > 1
        for row in rows:
            text = space.rewrite(raw, vocab, row)
            assert space.reference_ids(text, vocab) == row.tolist(), text
        # The rewrites edit the text the user wrote: its case and punctuation stay.
        changed = space.rewrite(raw, vocab, rows[-1])
        assert changed != raw and changed[0] == raw[0]
        assert len(tokenize(changed)) == len(tokenize(raw))


def test_a_word_model_rewrite_is_written_in_the_words_case():
    vocab, space, _ = _setup()
    raw = "The Film Isn't Good -- it's BAD!"
    tokens, entries = space.candidates(raw, vocab)
    row = [t for t, _ in entries]
    row[tokens.index("film")] = vocab.id("movie")
    row[tokens.index("bad")] = vocab.id("awful")
    assert space.rewrite(raw, vocab, row) == "The Movie Isn't Good -- it's AWFUL!"


def test_unknown_tokens_are_counted_in_the_settings():
    vocab, space, model = _setup()
    result = certify(model, vocab, space, [("a charming zzyzx film", 1)], budgets=[1])
    assert result.settings["unknown_tokens"] == {"tokens": 1, "sentences": 1, "of_tokens": 4}


def test_a_reading_that_is_not_the_tokenizers_is_an_error(monkeypatch):
    vocab, space, model = _setup()
    monkeypatch.setattr(space, "reference_ids",
                        lambda text, vocab: [vocab.id(w) for w in text.lower().split()])
    with pytest.raises(ReadingMismatch, match="the model's tokenizer reads"):
        certify(model, vocab, space, [(PAIRS[0][0], 1)], budgets=[1])


def test_the_one_sentence_view_shows_the_tokens_as_the_model_reads_them(capsys):
    from robusttext.cli import main

    assert main(["certify", "--model", "word-wordnet", "It's a charming, zzyzx journey.",
                 "--budget", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "reads as:   it 's a charming , [zzyzx?] journey ." in printed
    assert "unknown:    1 of 8 tokens the model does not know: zzyzx" in printed


@pytest.mark.parametrize("level", ["word", "char"])
def test_reported_rewrites_are_text_that_the_model_misreads(level):
    vocab, space, model = _setup(level)
    raw = [r for r, _ in PAIRS]
    enc = space.encode(raw, vocab)
    labels = predict(model, enc.token_ids, enc.mask).argmax(1).tolist()
    seen = 0
    for tilt in range(2):  # the prediction, then the other class: every sentence flips at 0
        chosen = [y if tilt == 0 else 1 - y for y in labels]
        result = certify(model, vocab, space, list(zip(raw, chosen, strict=True)),
                         budgets=[0, 1, 2])
        for r in result.examples:
            if r.rewrite is None:
                continue
            ids = torch.tensor([space.reference_ids(r.rewrite, vocab)])
            assert int(model(ids, torch.ones_like(ids, dtype=torch.float)).argmax()) != r.label
            seen += 1
    assert seen >= len(raw)


def test_a_counterexample_of_the_exact_search_is_text_too():
    # Seed 6 with a greedy one-proposal attack and no enumeration: the exact search, not the
    # attack, finds the flip of "a dull film , not good" (found by trying seeds 0-29).
    from tests.builders import word_setup

    vocab, space = word_setup()
    torch.manual_seed(6)
    model = WordCNN(len(vocab), embed_dim=8, filters=6).eval()
    result = certify(model, vocab, space, [("a dull film , not good", 0)], budgets=[2],
                     method="exact", enumerate_limit=0, beam_width=1, proposals=1)
    (r,) = result.examples
    if r.exact != "counterexample" or r.attacked:
        pytest.skip("the attack or the bounds decided it; the exact search's rewrite unused")
    ids = torch.tensor([space.reference_ids(r.rewrite, vocab)])
    assert int(model(ids, torch.ones_like(ids, dtype=torch.float)).argmax()) != r.label
