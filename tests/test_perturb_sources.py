"""Substitution sources: counter-fitted neighbours (local file, cached download), WordNet,
keyboard flips, ``load_source``. No network: downloads are served by a stand-in ``urlopen``."""

from __future__ import annotations

import io
import json
from itertools import product
from pathlib import Path

import pytest
import torch

from robusttext.errors import RobustTextError
from robusttext.perturb import (
    CharacterFlips,
    CounterFittedSynonyms,
    PerturbationSpace,
    SynonymTable,
    Vocabulary,
    WordNetSynonyms,
    load_source,
    tokenize,
)
from robusttext.perturb import cache as cache_module
from robusttext.perturb import wordnet as wordnet_module
from robusttext.perturb.cache import sha256_of
from robusttext.perturb.flips import builtin_keyboard

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEIGHBORS = SHARED / "counterfitted_neighbors.json"
ENKEY = SHARED / "character_substitution_enkey_sub1.json"
DEV = SHARED / "sst2" / "dev.tsv"
needs_neighbors = pytest.mark.skipif(
    not NEIGHBORS.is_file(), reason=f"{NEIGHBORS} absent (see ../shared/data/NOTICE.md)")


def _wordnet_available() -> bool:
    try:
        WordNetSynonyms()
    except RobustTextError:
        return False
    return True


needs_wordnet = pytest.mark.skipif(
    not _wordnet_available(),
    reason="WordNet absent: python -m nltk.downloader wordnet, or apt-get install "
           "wordnet-base wordnet-sense-index")


@pytest.fixture(scope="module")
def counterfitted():
    return CounterFittedSynonyms.from_path(NEIGHBORS)


def dev_sentences(n=None):
    lines = DEV.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines[:n]]


# -- keyboard map and flips -------------------------------------------------------------------


def test_qwerty_map_is_symmetric_and_matches_hand_checked_keys():
    keyboard = builtin_keyboard("qwerty")
    assert sorted(keyboard) == list("abcdefghijklmnopqrstuvwxyz")
    for letter, neighbours in keyboard.items():
        assert letter not in neighbours
        for other in neighbours:
            assert letter in keyboard[other], (letter, other)
    # read off a US keyboard by hand
    assert set(keyboard["a"]) == set("qwsz")
    assert set(keyboard["g"]) == set("tyfhvb")
    assert set(keyboard["p"]) == set("ol")
    assert set(keyboard["m"]) == set("njk")


def hamming_variants(word, keyboard, flips):
    """Every string of the word's length whose differences from it are keyboard neighbours,
    with 1..flips differences: found by scanning all per-position choices."""
    options = [[c, *keyboard.get(c, ())] for c in word]
    found = set()
    for choice in product(*options):
        diff = sum(a != b for a, b in zip(choice, word, strict=True))
        if 1 <= diff <= flips:
            found.add("".join(choice))
    return found


@pytest.mark.parametrize("word", ["cat", "film", "a", "x-y", "42"])
@pytest.mark.parametrize("flips", [1, 2])
def test_word_level_flip_variants(word, flips):
    source = CharacterFlips("qwerty", max_flips_per_word=flips)
    variants = source.word_candidates(word)
    assert len(variants) == len(set(variants))
    assert set(variants) == hamming_variants(word, source.keyboard, flips)
    if word == "cat":
        assert len(variants) == (4 + 4 + 4 if flips == 1 else 12 + 4 * 4 * 3)


def test_word_level_flips_map_out_of_vocabulary_variants_to_unk():
    vocab = Vocabulary(["cat", "car", "vat", "bat"])  # car: t->r, vat: c->v; bat is 2 away
    space = PerturbationSpace([CharacterFlips()], budget=1)
    batch = space.encode("cat", vocab)
    got = batch.candidate_ids[0, 0][batch.candidate_mask[0, 0]].tolist()
    assert sorted(got) == sorted([vocab.id("vat"), vocab.id("car"), vocab.unk_id])


@pytest.mark.skipif(not ENKEY.is_file(), reason=f"{ENKEY} absent")
def test_enkey_map_from_path_gives_one_substitute_per_letter():
    flips = load_source(str(ENKEY))
    assert isinstance(flips, CharacterFlips)
    assert all(len(flips.char_candidates(c)) == 1 for c in "abcdefghijklmnopqrstuvwxyz")
    space = PerturbationSpace([flips], budget=1, level="char")
    chars = Vocabulary(list("abcdefghijklmnopqrstuvwxyz .;8"))
    sentence = "a fine film ."
    assert space.count(sentence, chars) == 1 + sum(c.isalpha() for c in sentence)


def test_bad_keyboard_maps():
    with pytest.raises(RobustTextError, match="single character"):
        CharacterFlips({"ab": ["c"]})
    with pytest.raises(RobustTextError, match="key 'a'"):
        CharacterFlips({"a": "s"})
    with pytest.raises(RobustTextError, match="max_flips_per_word"):
        CharacterFlips(max_flips_per_word=0)
    with pytest.raises(RobustTextError, match="no such file"):
        CharacterFlips("/nonexistent/keys.json")


# -- counter-fitted neighbours ----------------------------------------------------------------


@needs_neighbors
def test_counterfitted_from_path(counterfitted):
    assert len(counterfitted) > 40_000
    assert counterfitted.word_candidates("movie")[:2] == ("film", "filmmaking")
    assert counterfitted.sha256 == sha256_of(NEIGHBORS)
    again = CounterFittedSynonyms.from_json(json.loads(json.dumps(counterfitted.to_json())))
    assert again.table == counterfitted.table
    with pytest.raises(RobustTextError, match="SHA-256"):
        CounterFittedSynonyms.from_json({**counterfitted.to_json(), "sha256": "0" * 64})


@needs_neighbors
def test_counterfitted_coverage_on_dev_and_restricted_space(counterfitted):
    sentences = dev_sentences(200)
    vocab = Vocabulary.build(tokenize(s) for s in sentences)
    space = PerturbationSpace([counterfitted], budget=2)
    batch = space.encode(sentences, vocab)
    covered = (batch.num_candidates > 0).sum().item() / batch.mask.sum().item()
    assert 0.2 < covered < 0.7  # about half the tokens, fewer with stop words held fixed
    extra = "a flick with an unseenword"  # "flick" is not in this vocabulary
    restricted = space.restrict_to(vocab)
    assert len(restricted.sources[0]) < len(counterfitted) // 3
    obj = json.loads(json.dumps(restricted.to_json()))
    rebuilt = PerturbationSpace.from_json(obj)  # needs no file
    for s in (space, restricted, rebuilt):
        assert s.count(extra, vocab) == space.count(extra, vocab)
    a, b = space.encode(sentences, vocab), rebuilt.encode(sentences, vocab)
    for name in ("token_ids", "candidate_ids", "candidate_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("content,match", [
    ('{"good": ["fine"],\n "bad": ["poor" "awful"]}', "line 2"),
    ('["good", "fine"]', "JSON object"),
    ('{"good": "fine"}', "key 'good'"),
    ('{"good": ["fine", 3]}', "key 'good'"),
])
def test_malformed_neighbour_files(tmp_path, content, match):
    path = tmp_path / "neighbors.json"
    path.write_text(content)
    with pytest.raises(RobustTextError, match=match):
        CounterFittedSynonyms.from_path(path)
    with pytest.raises(RobustTextError, match=match):
        load_source(str(path))


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_is_cached_and_checksummed(tmp_path, monkeypatch):
    payload = json.dumps({"good": ["fine", "great"]}).encode()
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return FakeResponse(payload)

    monkeypatch.setattr(cache_module.urllib.request, "urlopen", fake_urlopen)
    digest = __import__("hashlib").sha256(payload).hexdigest()
    url = "https://example.invalid/neighbors.json"
    source = CounterFittedSynonyms.from_url(url, cache_dir=tmp_path, sha256=digest)
    assert source.word_candidates("good") == ("fine", "great") and source.url == url
    again = CounterFittedSynonyms.from_url(url, cache_dir=tmp_path, sha256=digest)
    assert again.table == source.table and len(calls) == 1  # second time from the cache
    assert CounterFittedSynonyms.from_cache(tmp_path).table == source.table
    with pytest.raises(RobustTextError, match="expected"):
        CounterFittedSynonyms.from_url(url, cache_dir=tmp_path / "other", sha256="0" * 64)
    assert not any((tmp_path / "other").iterdir())  # a bad download is not kept


def test_counterfitted_absent_from_cache_says_how_to_get_it(tmp_path):
    with pytest.raises(RobustTextError, match="--sources PATH"):
        CounterFittedSynonyms.from_cache(tmp_path)
    with pytest.raises(RobustTextError, match="not in the cache"):
        load_source("counterfitted", cache_dir=tmp_path)


def test_load_source_names_and_errors(tmp_path):
    assert isinstance(load_source("typos"), CharacterFlips)
    assert isinstance(load_source("qwerty"), CharacterFlips)
    table = tmp_path / "mine.json"
    table.write_text('{"Good": ["Fine"]}')
    source = load_source(str(table))
    assert isinstance(source, SynonymTable) and source.word_candidates("good") == ("fine",)
    for bad in ("glove", "", None):
        with pytest.raises(RobustTextError):
            load_source(bad)
    with pytest.raises(RobustTextError, match="no such file"):
        load_source(str(tmp_path / "missing.json"))


# -- WordNet ----------------------------------------------------------------------------------


@needs_wordnet
@pytest.mark.parametrize("max_senses", [1, 2, 3, 10])
def test_wordnet_terrible_is_not_tremendous(max_senses):
    candidates = WordNetSynonyms(max_senses=max_senses).word_candidates("terrible")
    assert "awful" in candidates and "dreadful" in candidates
    assert "tremendous" not in candidates


@needs_wordnet
def test_wordnet_single_words_exact_forms_and_restriction():
    wordnet = WordNetSynonyms()
    movie = wordnet.word_candidates("movie")
    assert "film" in movie and all("_" not in c and " " not in c for c in movie)
    assert wordnet.word_candidates("movies") == ()  # no lemmatisation
    assert wordnet.word_candidates("the") == ()
    sentences = ["a terrible movie", "a funny film about a picture"]
    vocab = Vocabulary.build([tokenize(s) + ["awful", "flick"] for s in sentences])
    space = PerturbationSpace([wordnet], budget=None)
    restricted = PerturbationSpace.from_json(
        json.loads(json.dumps(space.restrict_to(vocab).to_json())))
    probe = sentences + ["a dreadful pic", "horrific flick"]
    for sentence in probe:
        assert restricted.count(sentence, vocab) == space.count(sentence, vocab)
    assert torch.equal(space.encode(probe, vocab).candidate_ids,
                       restricted.encode(probe, vocab).candidate_ids)
    with pytest.raises(RobustTextError, match="max_senses"):
        WordNetSynonyms(max_senses=0)
    with pytest.raises(RobustTextError, match="char level"):
        PerturbationSpace([wordnet], budget=1, level="char")


def test_wordnet_lexnames_file():
    lines = wordnet_module.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[44] == "44\tadj.ppl\t3"


def test_wordnet_missing_names_both_ways(tmp_path, monkeypatch):
    import nltk

    def not_found(*args, **kwargs):
        raise LookupError("no wordnet")

    monkeypatch.setattr(nltk.data, "find", not_found)
    monkeypatch.setattr(wordnet_module, "DEBIAN_WORDNET", tmp_path / "none")
    wordnet_module.load_wordnet_index.cache_clear()
    try:
        with pytest.raises(RobustTextError) as error:
            WordNetSynonyms(cache_dir=tmp_path)
    finally:
        wordnet_module.load_wordnet_index.cache_clear()
    assert "nltk.downloader wordnet" in str(error.value)
    assert "wordnet-base wordnet-sense-index" in str(error.value)


@needs_wordnet
@pytest.mark.slow
def test_wordnet_agrees_with_nltk_reader():
    """nltk's WordNetCorpusReader opens the arranged folder and ranks senses the same way."""
    reader = wordnet_module.nltk_wordnet_reader()
    ours = WordNetSynonyms(max_senses=2)
    for word in ["terrible", "movie", "funny", "film", "good", "bright", "run"]:
        ranked = []
        for order, synset in enumerate(reader.synsets(word)):
            lemma = next((m for m in synset.lemmas() if m.name().lower() == word), None)
            if lemma is not None:
                ranked.append((-lemma.count(), order, synset))
        ranked.sort(key=lambda item: item[:2])
        counted = [s for c, _, s in ranked if c < 0][:2] or [s for _, _, s in ranked[:1]]
        expected = []
        for synset in counted:
            for name in synset.lemma_names():
                name = name.lower()
                if name != word and "_" not in name and name not in expected:
                    expected.append(name)
        assert list(ours.word_candidates(word)) == expected, word
