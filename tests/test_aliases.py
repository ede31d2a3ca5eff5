"""Variant aliases (a robust encoding): a candidate that is not a vocabulary token reads as the
token it varies. The space of an aliased vocabulary must still hold exactly the id sequences of
every one-flip rewrite, checked here by rewriting strings and looking each word up by hand."""

from __future__ import annotations

import json

import pytest
import torch

from robusttext.cli import main
from robusttext.errors import RobustTextError
from robusttext.perturb import CharacterFlips, PerturbationSpace, SynonymTable, Vocabulary
from robusttext.text import WordCNN, load_text_model, save_text_model
from robusttext.train import train
from robusttext.train.trainer import build_space, build_vocabulary
from tests.builders import ROWS, one_flip_strings, tiny_config, write_tsv

KEYBOARD = {"a": ["s", "q"], "d": ["s"], "e": ["w"], "i": ["o"], "n": ["m"], "o": ["i"],
            "t": ["r", "y"]}
TOKENS = ["a", "good", "bad", "film", "fine", "tired", "story", "s", "goid", "bed", "ad", "aa"]


def test_aliases_take_the_id_of_the_first_token_that_proposes_them():
    vocab = Vocabulary(TOKENS, alias_source=CharacterFlips(dict(KEYBOARD)))
    assert len(vocab) == len(TOKENS) + 2  # aliases get no rows
    # "good" -> "giod" (o -> i at the second letter) is an alias; "goid" is a token of its own
    assert vocab.id("giod") == vocab.id("good") != vocab.unk_id
    assert vocab.id("goid") == TOKENS.index("goid") + 2
    # "bad" varies into "bsd", "bqd" and "bas", "bed" into "bwd" and "bes": each its own
    assert {v for v, t in vocab.aliases.items() if t == "bad"} == {"bsd", "bqd", "bas"}
    assert {v for v, t in vocab.aliases.items() if t == "bed"} == {"bwd", "bes"}
    # "a" varies into "s", a token (kept), and "q", an alias
    assert vocab.id("s") == TOKENS.index("s") + 2 and vocab.aliases["q"] == "a"
    # "as" is a variant of both "ad" (d -> s) and "aa" (a -> s): the earlier token takes it
    assert vocab.aliases["as"] == "ad"
    # every alias: not a token, and belongs to the first token (in vocabulary order) proposing it
    flips = CharacterFlips(dict(KEYBOARD))
    for variant, token in vocab.aliases.items():
        assert variant not in TOKENS
        assert token == next(t for t in TOKENS if variant in flips.word_candidates(t))
    assert vocab.id("zzz") == vocab.unk_id
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.aliases == vocab.aliases and again.tokens == vocab.tokens
    assert "aliases" in repr(vocab)


def test_alias_source_must_be_a_source():
    with pytest.raises(RobustTextError, match="alias_source must be a substitution source"):
        Vocabulary(TOKENS, alias_source={"a": ["s"]})


@pytest.mark.parametrize("sentence", ["a good film", "a bad , tired story", "fine bed",
                                      "goid film is not bad"])
def test_aliased_space_holds_the_ids_of_every_one_flip_rewrite(sentence):
    source = CharacterFlips(dict(KEYBOARD))
    vocab = Vocabulary(TOKENS, alias_source=source)
    space = PerturbationSpace(source, budget=1, stop_words=[])
    expected = {tuple(vocab.ids(text.split())) for text in one_flip_strings(sentence, KEYBOARD)}
    found = [tuple(ids) for ids in space.enumerate(sentence, vocab)]
    assert len(found) == len(set(found)) == space.count(sentence, vocab)
    assert set(found) == expected


def test_restricting_a_space_keeps_candidates_that_are_aliases():
    source = CharacterFlips(dict(KEYBOARD))
    vocab = Vocabulary(TOKENS, alias_source=source)
    # "giod" is an alias of "good": a synonym table proposing it must keep it when restricted
    table = SynonymTable({"fine": ["giod", "zzz", "yyy"], "bad": ["poor"]})
    space = PerturbationSpace(table, budget=2, stop_words=[])
    small = space.restrict_to(vocab)
    for sentence in ("a fine film", "a bad story"):
        assert small.candidates(sentence, vocab) == space.candidates(sentence, vocab)


def test_a_checkpoint_rebuilds_its_aliases(tmp_path, capsys):
    source = CharacterFlips(dict(KEYBOARD))
    vocab = Vocabulary(TOKENS, alias_source=source)
    torch.manual_seed(0)
    model = WordCNN(len(vocab), embed_dim=8, filters=6)
    space = PerturbationSpace(source, budget=1, stop_words=[])
    save_text_model(tmp_path / "m", model, vocab, space)
    bundle = load_text_model(tmp_path / "m")
    assert bundle.vocab.aliases == vocab.aliases
    assert bundle.space.candidates("a goid film", bundle.vocab) == space.candidates(
        "a goid film", vocab)
    # robusttext certify says that the model reads variants as words
    data = write_tsv(tmp_path / "data.tsv", [("a good film", 1), ("a bad story", 0)])
    assert main(["certify", "--model", str(tmp_path / "m"), "--data", str(data),
                 "--budget", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{len(vocab.aliases)} variants read as the word they vary" in out


def test_training_with_alias_candidates(tmp_path):
    (tmp_path / "keys.json").write_text(json.dumps(KEYBOARD))
    config = tiny_config(tmp_path, model="bow", filters=None, epochs=1, stop_words=[],
                         sources=[str(tmp_path / "keys.json")], alias_candidates=True)
    space = build_space(config)
    from robusttext.train import load_training_examples

    vocab = build_vocabulary(load_training_examples(config.train), space, config)
    words = {w for sentence, _ in ROWS for w in sentence.split()}
    assert set(vocab.tokens[2:]) == words and vocab.aliases
    assert all(vocab.aliases[v] in words for v in vocab.aliases)
    metrics = train(config)
    assert metrics["exhaustive"]["unsound"] == 0
    assert load_text_model(tmp_path / "run").vocab.aliases == vocab.aliases
    two = tiny_config(tmp_path, model="bow", filters=None, sources=["qwerty", "qwerty"],
                      alias_candidates=True, out=str(tmp_path / "two"))
    with pytest.raises(RobustTextError, match="exactly one source"):
        build_vocabulary(load_training_examples(config.train), build_space(two), two)


def test_a_saved_vocabulary_stores_the_aliases_of_a_synonym_source_not_the_source():
    synonyms = SynonymTable({"good": ["great", "fine", "decent"], "film": ["movie", "picture"],
                             "fine": ["decent", "okay"], "bad": ["poor"], "unused": ["x", "y"]})
    vocab = Vocabulary(["good", "film", "fine", "bad", "poor"], alias_source=synonyms)
    # "decent" is proposed by "good" first; "poor" is a token; "unused" is no token
    assert vocab.aliases == {"great": "good", "decent": "good", "movie": "film",
                             "picture": "film", "okay": "fine"}
    saved = json.loads(json.dumps(vocab.to_json()))
    assert saved["alias_source"]["kind"] == "alias_table"
    assert "unused" not in json.dumps(saved)
    again = Vocabulary.from_json(saved)
    assert again.aliases == vocab.aliases and again.tokens == vocab.tokens
    # a keyboard map is stored as it is (smaller than the aliases it makes)
    flips = Vocabulary(TOKENS, alias_source=CharacterFlips(dict(KEYBOARD))).to_json()
    assert flips["alias_source"]["kind"] == "char_flips"
    with pytest.raises(RobustTextError, match="alias table"):
        Vocabulary.from_json({"tokens": ["<pad>", "<unk>", "a"],
                              "alias_source": {"kind": "alias_table", "table": {"a": "b"}}})
