"""The shipped models carry what their certificates are about: the perturbation space, the
measured figures and, where the space is someone else's data, its attribution."""

import json
from pathlib import Path

import pytest

from robusttext.shipped import shipped_model_path
from robusttext.text import SHIPPED_MODELS, load_text_model
from tests.builders import one_flip_strings

HUANG_MAP = Path(__file__).resolve().parents[2] / "shared" / "data" / (
    "character_substitution_enkey_sub1.json")


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_text_model_has_its_dev_figures(name):
    metrics = load_text_model(name).meta["metrics"]
    assert metrics["examples"] == 872 and 0 < metrics["clean_accuracy"] <= 1
    assert all(0 <= v <= metrics["clean_accuracy"] for v in metrics["verified_accuracy"].values())


@pytest.mark.skipif(not HUANG_MAP.is_file(), reason=f"{HUANG_MAP} absent")
@pytest.mark.parametrize("name", ["char-enkey", "word-enkey"])
def test_models_on_huang_et_al_s_map_carry_it_and_its_attribution(name):
    bundle = load_text_model(name)
    (source,) = bundle.space.sources
    published = json.loads(HUANG_MAP.read_text())
    assert {k: list(v) for k, v in source.keyboard.items()} == published
    assert bundle.space.budget == 1
    notice = " ".join((shipped_model_path(name) / "NOTICE.md").read_text().split())
    assert "Huang" in notice and "Apache License, Version 2.0" in notice
    assert "interval-bound-propagation" in notice


@pytest.mark.parametrize("name", ["word-enkey", "word-flips"])
def test_word_models_against_flips_hold_exactly_the_one_flip_set(name):
    """At budget 1 the word-level space of these models is the character level's one-flip set:
    checked by rewriting the strings by hand and looking each word up in the vocabulary."""
    bundle = load_text_model(name)
    space, vocab = bundle.space, bundle.vocab
    (source,) = space.sources
    assert space.level == "word" and space.budget == 1 and space.stop_words == frozenset()
    assert source.max_flips_per_word == 1 and vocab.alias_source.to_json() == source.to_json()
    keyboard = {c: list(v) for c, v in source.keyboard.items()}
    for sentence in ("a gripping , funny film", "the plot is thin and the acting is bad"):
        expected = {tuple(vocab.ids(text.split()))
                    for text in one_flip_strings(sentence, keyboard)}
        assert {tuple(ids) for ids in space.enumerate(sentence, vocab)} == expected
