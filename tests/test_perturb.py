"""Perturbation spaces on small hand-made sources: tokenising, vocabulary, encoding, counting,
enumeration, filters, serialisation, and bad input."""

from __future__ import annotations

import itertools
import json
import warnings

import pytest
import torch

from robusttext.errors import RobustTextError
from robusttext.perturb import (
    STOP_WORDS,
    CharacterFlips,
    EncodedBatch,
    PerturbationSpace,
    SynonymTable,
    Vocabulary,
    tokenize,
)
from robusttext.perturb.counting import count_sentences, enumerate_sentences

TABLE = {
    "good": ["fine", "great", "nice"],
    "movie": ["film", "picture", "flick", "pic"],
    "fine": ["good", "okay"],
    "the": ["a"],  # a stop word: never substituted
    "plot": ["story", "storyline", "narrative"],  # all out of the vocabulary below
    "zzz": ["film", "yyy"],  # an out-of-vocabulary word with one in-vocabulary neighbour
}
VOCAB = Vocabulary(["the", "a", "good", "movie", "film", "fine", "great", "picture", "plot", "."])


def space(budget=None, **kwargs) -> PerturbationSpace:
    return PerturbationSpace([SynonymTable(TABLE)], budget, **kwargs)


# -- tokenising and vocabulary ----------------------------------------------------------------


def test_tokenize_glue_and_raw():
    assert tokenize("It 's a GOOD movie .") == ["it", "'s", "a", "good", "movie", "."]
    assert tokenize("It's a GOOD movie, isn't it?", style="raw") == [
        "it", "'s", "a", "good", "movie", ",", "is", "n't", "it", "?"]


@pytest.mark.parametrize("text", ["", "   ", None, 3, ["a"]])
def test_tokenize_rejects_bad_text(text):
    with pytest.raises(RobustTextError):
        tokenize(text)


def test_tokenize_rejects_unknown_style():
    with pytest.raises(RobustTextError, match="unknown tokenizer"):
        tokenize("a", style="spacy")


def test_vocabulary_specials_lookup_and_json():
    vocab = Vocabulary(["b", "a"])
    assert (vocab.pad_id, vocab.unk_id, len(vocab)) == (0, 1, 4)
    assert vocab.token(0) == "<pad>" and vocab.token(1) == "<unk>"
    assert vocab.id("a") == 3 and vocab.id("nope") == vocab.unk_id
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.tokens == vocab.tokens
    assert Vocabulary(vocab.tokens).tokens == vocab.tokens


def test_vocabulary_build_orders_by_count_and_cuts():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "a", "b"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "b", "a"]
    assert Vocabulary.build([["b", "a", "b", "c"]], max_size=3).tokens == ["<pad>", "<unk>", "b"]
    with pytest.raises(RobustTextError, match="twice"):
        Vocabulary(["a", "a"])


# -- counting ---------------------------------------------------------------------------------


def brute_force_count(counts, budget):
    """Count by listing every choice (0 = keep, k = k-th candidate) per position."""
    total = 0
    for choice in itertools.product(*(range(c + 1) for c in counts)):
        changed = sum(1 for x in choice if x)
        total += budget is None or changed <= budget
    return total


@pytest.mark.parametrize("counts", [[], [0], [3], [2, 0, 1, 4], [1, 1, 1, 1, 1], [5, 3, 0, 2]])
@pytest.mark.parametrize("budget", [0, 1, 2, 3, None])
def test_count_matches_brute_force(counts, budget):
    assert count_sentences(counts, budget) == brute_force_count(counts, budget)
    listed = list(enumerate_sentences([-1] * len(counts),
                                      [list(range(c)) for c in counts], budget))
    assert len(listed) == len({tuple(s) for s in listed}) == brute_force_count(counts, budget)


def test_count_is_an_exact_big_integer():
    assert count_sentences([8] * 100, None) == 9**100
    # at most one change: 1 + sum of counts; at most two: + sum over pairs
    assert count_sentences([8] * 100, 1) == 1 + 800
    assert count_sentences([8] * 100, 2) == 1 + 800 + 64 * (100 * 99 // 2)


# -- encoding ---------------------------------------------------------------------------------


def test_encode_shapes_and_contents():
    batch = space(1).encode(["the good movie .", "good plot"], VOCAB)
    assert isinstance(batch, EncodedBatch)
    assert batch.token_ids.shape == (2, 4) and batch.token_ids.dtype == torch.long
    assert batch.mask.dtype == torch.float32 and batch.mask.tolist() == [[1] * 4, [1, 1, 0, 0]]
    assert batch.candidate_ids.shape == batch.candidate_mask.shape == (2, 4, 3)  # 3 after dedup
    assert batch.candidate_mask.dtype == torch.bool
    assert batch.token_ids[1, 2:].tolist() == [VOCAB.pad_id] * 2
    assert batch.tokens == [["the", "good", "movie", "."], ["good", "plot"]]
    ids = VOCAB.ids
    # "good": fine, great in the vocabulary, "nice" -> unk
    assert batch.candidate_ids[0, 1][batch.candidate_mask[0, 1]].tolist() == ids(
        ["fine", "great", "<unk>"])
    # "movie": film, picture, then flick and pic both unk -> one unk
    assert batch.candidate_ids[0, 2][batch.candidate_mask[0, 2]].tolist() == ids(
        ["film", "picture", "<unk>"])
    # stop word, punctuation and padding: no candidates, padded with pad_id
    assert not batch.candidate_mask[0, 0].any() and not batch.candidate_mask[0, 3].any()
    assert not batch.candidate_mask[1, 2:].any()
    assert (batch.candidate_ids[~batch.candidate_mask] == VOCAB.pad_id).all()
    # "plot": every neighbour is out of the vocabulary -> one unk candidate
    assert batch.candidate_ids[1, 1][batch.candidate_mask[1, 1]].tolist() == [VOCAB.unk_id]
    assert batch.num_candidates.tolist() == [[0, 3, 3, 0], [3, 1, 0, 0]]
    moved = batch.to("cpu")
    assert torch.equal(moved.candidate_ids, batch.candidate_ids)


def test_candidates_never_repeat_or_equal_the_original():
    # "zzz" is unknown (unk): its unknown neighbour "yyy" maps to unk too and is dropped
    batch = space().encode("zzz", VOCAB)
    assert batch.token_ids.tolist() == [[VOCAB.unk_id]]
    assert batch.candidate_ids[0, 0][batch.candidate_mask[0, 0]].tolist() == [VOCAB.id("film")]
    # a space with no candidate anywhere still has one candidate slot
    assert space().encode(". .", VOCAB).candidate_ids.shape == (1, 2, 1)
    tiny = Vocabulary(["good", "fine"])  # great, nice -> unk once
    batch = space().encode("good", tiny)
    assert batch.candidate_ids[0, 0][batch.candidate_mask[0, 0]].tolist() == [
        tiny.id("fine"), tiny.unk_id]


def test_count_and_enumerate_agree_with_brute_force_on_sentences():
    sentence = "the good movie plot ."
    for budget in (0, 1, 2, None):
        s = space(budget)
        listed = list(s.enumerate(sentence, VOCAB))
        assert listed[0] == VOCAB.ids(tokenize(sentence))
        assert len(listed) == len({tuple(x) for x in listed}) == s.count(sentence, VOCAB)
    # by hand: good 3, movie 3, plot 1 -> budget 1: 1 + 7; none: 4 * 4 * 2
    assert space(1).count(sentence, VOCAB) == 8
    assert space(None).count(sentence, VOCAB) == 32


def test_enumerate_limit():
    with pytest.raises(RobustTextError, match="32 sentences"):
        space().enumerate("the good movie plot", VOCAB, limit=10)
    assert len(list(space().enumerate("the good movie plot", VOCAB, limit=32))) == 32


def test_stop_words_allow_and_deny():
    assert "the" in STOP_WORDS and "not" in STOP_WORDS and "n't" in STOP_WORDS
    no_stop = space(stop_words=[])
    assert no_stop.count("the", VOCAB) == 2
    assert space().count("the", VOCAB) == 1
    only_movie = space(allow=["movie"])
    assert only_movie.count("good movie", VOCAB) == 4
    deny = space(deny=["film", "good"])
    batch = deny.encode("good movie", VOCAB)
    assert not batch.candidate_mask[0, 0].any()
    assert VOCAB.id("film") not in batch.candidate_ids[0, 1][batch.candidate_mask[0, 1]].tolist()


def test_max_candidates_cut_is_recorded_and_warned():
    s = space(max_candidates=2)
    with pytest.warns(RuntimeWarning, match="max_candidates=2 cut"):
        batch = s.encode("good movie", VOCAB)
    assert batch.candidate_mask.sum(-1).tolist() == [[2, 2]]
    assert s.truncations == {"good": (3, 2), "movie": (3, 2)}
    with pytest.raises(RobustTextError, match="more than max_candidates"):
        space(max_candidates=2, on_cut="raise").encode("good", VOCAB)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        space().encode("good movie", VOCAB)  # no limit: nothing cut, no warning


@pytest.mark.parametrize("kwargs,match", [
    ({"budget": -1}, "budget must be >= 0"),
    ({"budget": 1.5}, "budget must be an integer"),
    ({"budget": 1, "level": "sentence"}, "unknown level"),
    ({"budget": 1, "level": "char"}, "does not work at the char level"),
    ({"budget": 1, "max_candidates": 0}, "max_candidates"),
    ({"budget": 1, "tokenizer": "bpe"}, "unknown tokenizer"),
    ({"budget": 1, "deny": "abc"}, "not a string"),
])
def test_space_rejects_bad_settings(kwargs, match):
    with pytest.raises(RobustTextError, match=match):
        PerturbationSpace([SynonymTable(TABLE)], **kwargs)


def test_encode_rejects_bad_sentences():
    for bad in ([], ["good", ""], [None], "  "):
        with pytest.raises(RobustTextError):
            space().encode(bad, VOCAB)
    with pytest.raises(RobustTextError, match="Vocabulary"):
        space().encode("good", {"good": 2})


# -- serialising ------------------------------------------------------------------------------


def test_space_json_round_trip_is_exact():
    s = space(2, max_candidates=5, allow=["good", "movie"], deny=["pic"], tokenizer="raw")
    obj = json.loads(json.dumps(s.to_json()))
    again = PerturbationSpace.from_json(obj)
    assert again.to_json() == obj
    a, b = s.encode("the good movie", VOCAB), again.encode("the good movie", VOCAB)
    assert torch.equal(a.candidate_ids, b.candidate_ids)
    with pytest.raises(RobustTextError, match="not a perturbation space"):
        PerturbationSpace.from_json({"sources": []})
    with pytest.raises(RobustTextError, match="unknown source kind"):
        PerturbationSpace.from_json({**obj, "sources": [{"kind": "magic"}]})


def test_restrict_to_keeps_candidate_ids():
    s = space(1)
    restricted = s.restrict_to(VOCAB)
    table = restricted.sources[0].table
    assert "zzz" in table  # unknown word with an in-vocabulary neighbour
    assert table["movie"] == ("film", "picture", "flick")  # one unknown representative kept
    sentences = ["the good movie plot .", "zzz fine"]
    a, b = s.encode(sentences, VOCAB), restricted.encode(sentences, VOCAB)
    for name in ("token_ids", "candidate_ids", "candidate_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    again = PerturbationSpace.from_json(json.loads(json.dumps(restricted.to_json())))
    assert torch.equal(again.encode(sentences, VOCAB).candidate_ids, a.candidate_ids)


# -- character level --------------------------------------------------------------------------


def test_sources_by_name_or_path(tmp_path):
    path = tmp_path / "table.json"
    path.write_text(json.dumps(TABLE))
    by_path = PerturbationSpace([str(path), "typos"], budget=1)
    assert [s.kind for s in by_path.sources] == ["counterfitted", "char_flips"]
    assert by_path.count("good", VOCAB) == space(1).count("good", VOCAB)
    with pytest.raises(RobustTextError, match="unknown source"):
        PerturbationSpace(["glove"], budget=1)


def test_char_level_positions_and_count():
    flips = CharacterFlips({"a": ["s", "q"], "b": ["v"], "d": ["s", "f"]})
    s = PerturbationSpace([flips], budget=None, level="char")
    chars = Vocabulary(list("abdsqvf "))
    batch = s.encode("Bad  ab", chars)
    assert batch.tokens == [list("bad ab")]
    assert batch.num_candidates.tolist() == [[1, 2, 2, 0, 2, 1]]
    assert s.count("bad ab", chars) == 2 * 3 * 3 * 3 * 2
    assert PerturbationSpace([flips], budget=1, level="char").count("bad ab", chars) == 1 + 8
    # an out-of-vocabulary substitute becomes the unknown character
    small = Vocabulary(list("abd "))
    batch = s.encode("a", small)
    assert batch.candidate_ids[0, 0][batch.candidate_mask[0, 0]].tolist() == [small.unk_id]
    # stop words, when asked for, protect their characters
    protected = PerturbationSpace([flips], budget=None, level="char", stop_words=["a"])
    assert protected.encode("a bad", chars).num_candidates.tolist() == [[0, 0, 1, 2, 2]]
