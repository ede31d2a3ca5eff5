"""The GLUE word tokenizer: raw text and its GLUE form read alike; GLUE text reads as its
whitespace split (so models trained on SST-2's GLUE files read their data as before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from robusttext.errors import RobustTextError
from robusttext.perturb.tokenizers import tokenize, word_spans

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"

# Raw sentence -> its GLUE form, written by hand in SST-2's convention.
PAIRS = [
    ("It's a charming, often affecting journey.", "it 's a charming , often affecting journey ."),
    ("I can't believe it isn't over!", "i ca n't believe it is n't over !"),
    ('The "best" film?!', "the `` best '' film ?!"),
    ("R&D, rock 'n' roll... and $3.50 (cheap).",
     "r&d , rock 'n' roll ... and $ 3.50 ( cheap ) ."),
    ("Café au lait; 😀 fine: 10,000 times", "café au lait ; 😀 fine : 10,000 times"),
]


@pytest.mark.parametrize("raw, glue", PAIRS)
def test_raw_text_and_its_glue_form_give_the_same_words(raw, glue):
    assert tokenize(raw) == glue.split()
    assert tokenize(glue) == glue.split()
    assert tokenize(raw, "raw") == tokenize(raw, "glue")


@pytest.mark.parametrize("raw, glue", PAIRS)
def test_each_word_is_placed_in_the_text(raw, glue):
    spans = word_spans(raw)
    assert [w for w, _, _ in spans] == glue.split()
    for word, start, end in spans:
        piece = raw[start:end]
        assert piece.lower() == word or (piece == '"' and word in ("``", "''"))
    assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:]))


@pytest.mark.skipif(not (SST2 / "dev.tsv").is_file(), reason="needs ../shared/data/sst2")
def test_every_glue_sentence_of_sst2_dev_reads_as_its_whitespace_split():
    lines = (SST2 / "dev.tsv").read_text().splitlines()[1:]
    sentences = [line.rsplit("\t", 1)[0] for line in lines]
    assert len(sentences) == 872
    assert [s for s in sentences if tokenize(s) != s.split()] == []


def test_empty_text_and_unknown_styles_are_refused():
    with pytest.raises(RobustTextError, match="empty"):
        tokenize("   ")
    with pytest.raises(RobustTextError, match="unknown tokenizer"):
        tokenize("a film", "spaces")


def test_the_demo_sentences_read_as_their_whitespace_split():
    from importlib.resources import files

    lines = files("robusttext").joinpath("assets/demo_sentences.tsv").read_text().splitlines()[1:]
    sentences = [line.rsplit("\t", 1)[0] for line in lines]
    assert sentences and [s for s in sentences if tokenize(s) != s.lower().split()] == []
