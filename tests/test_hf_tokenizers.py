"""Certify the sentence the user wrote, as the model's own tokenizer reads it.

Tokenizers of every family are trained here on SST-2 phrases with the ``tokenizers`` library
(cased and uncased WordPiece, byte-level BPE, SentencePiece-style Unigram), tiny BERT,
RoBERTa and DistilBERT classifiers are built from configs, and every check goes around
robusttext: each rewrite of each sentence is turned into text, read again by the tokenizer,
and run through ``transformers``' own forward. Certified sentences must never flip there,
across lower-case, title-case, ALL CAPS, punctuation, contractions, numbers, accents and emoji.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.certify import certify  # noqa: E402
from robusttext.certify.exhaustive import rewrites  # noqa: E402
from robusttext.certify.margins import margins, predict  # noqa: E402
from robusttext.certify.reading import ReadingMismatch  # noqa: E402
from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.perturb import PerturbationSpace, SynonymTable  # noqa: E402
from robusttext.perturb.subwords import SubwordSpace  # noqa: E402
from robusttext.text.hf import from_transformers  # noqa: E402
from tests.hf_tiny import FAMILIES, family_model, family_setup, sst2_phrases  # noqa: E402

PHRASES = sst2_phrases()
pytestmark = pytest.mark.skipif(PHRASES is None, reason="needs ../shared/data/sst2/train.tsv")

TABLE = {
    "charming": ["enchanting", "delightful"], "affecting": ["touching", "moving"],
    "journey": ["trip", "voyage"], "good": ["great", "fine", "decent"],
    "film": ["movie", "picture"], "story": ["tale", "plot"], "bad": ["awful", "poor"],
    "boring": ["dull", "tedious"], "funny": ["amusing", "hilarious"],
    "love": ["adore", "like"], "best": ["finest", "greatest"], "naïve": ["innocent", "simple"],
    "hours": ["minutes"], "often": ["frequently"],
}
"""Candidate words (looked up lower-cased, written in the case of the word they replace)."""

SENTENCES = [
    "It's a charming, often affecting journey.",            # as people write it
    "it 's a charming , often affecting journey .",         # its GLUE form
    "IT'S A CHARMING, OFTEN AFFECTING JOURNEY!",            # ALL CAPS
    "The Film Is Good, But The Story Is Bad.",              # title case, punctuation
    "I didn't love this film... 2 hours of boring story 😴",  # contraction, number, emoji
    "A naïve, funny café story: the best of 2002!",         # accents, numbers
    '"Good" film? No -- a bad, BORING one.',                 # quotes, dashes, capitals
]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    """``(name, tokenizer, transformers model)`` of one family."""
    return (request.param, *family_setup(request.param))


def _space(tokenizer, budget=2):
    return SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=budget, stop_words=[]),
                        tokenizer)


def _own_logits(hf, tokenizer, texts):
    """``transformers``' forward on ``texts`` as the tokenizer reads them."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_the_ids_are_the_tokenizers_own_on_the_raw_text(family):
    _, tokenizer, _ = family
    space = _space(tokenizer)
    enc = space.encode(SENTENCES)
    for b, sentence in enumerate(SENTENCES):
        expected = tokenizer(sentence)["input_ids"]
        assert enc.token_ids[b, :len(expected)].tolist() == expected
        assert int(enc.mask[b].sum()) == len(expected)


@pytest.mark.parametrize("leaning", [False, True])
def test_every_rewrite_read_again_is_its_row_and_certificates_hold(family, leaning):
    """``leaning``: a model with small weights that leans to class 1, so that the bounds
    certify sentences whose sets hold several rewrites (the random model's bounds certify
    next to none)."""
    name, tokenizer, hf = family
    if leaning:
        hf = family_model(name, tokenizer, seed=1, std=0.05, tilt=1.2)
    model = from_transformers(hf)
    space = _space(tokenizer)
    labels = _own_logits(hf, tokenizer, SENTENCES).argmax(1).tolist()
    budgets = [0, 1, 2]
    result = certify(model, space.vocabulary, space, list(zip(SENTENCES, labels, strict=True)),
                     budgets=budgets, method="crown-ibp", enumerate_limit=100_000)
    changeable = 0
    for i, sentence in enumerate(SENTENCES):
        enc = space.encode([sentence])
        n = int(enc.mask[0].sum())
        rows, changes = rewrites(enc.token_ids[0, :n], enc.candidate_ids[0, :n],
                                 enc.candidate_mask[0, :n], 2)
        texts = [space.rewrite(sentence, r) for r in rows]
        # The string set is the id set: each rewrite, read again, gives exactly its row.
        assert tokenizer(texts)["input_ids"] == rows.tolist()
        assert len(set(texts)) == len(texts)
        changeable += int(enc.candidate_mask[0].any(-1).sum())
        true = margins(_own_logits(hf, tokenizer, texts), torch.full((len(texts),), labels[i]))
        for r in (r for r in result.examples if r.index == i):
            within = true[changes <= r.budget]
            assert r.set_size == len(within)
            assert r.margin_lower <= float(within.min()) + 1e-4, (name, sentence, r.budget)
            if r.certified:
                assert bool((within > 0).all()), (name, sentence, r.budget)
            assert r.exhaustive == bool((within > 0).all())
            if r.rewrite is not None:  # a reported flip is a flip when read again
                flipped = _own_logits(hf, tokenizer, [r.rewrite]).argmax(1).item()
                assert flipped != labels[i], (name, r.rewrite)
    assert changeable >= len(SENTENCES)  # the sets are not empty
    # Certificates of sentences with several rewrites, confirmed above. (The DistilBERT of the
    # Unigram family has no tanh pooler; its crown-ibp bounds on these sets are -1e31: nothing
    # to confirm there but the soundness.)
    if leaning and name != "unigram":
        assert any(r.certified and r.set_size > 2 for r in result.examples if r.budget == 2)


def test_the_pipeline_reads_the_sentence_as_robusttext_does(family):
    from transformers import pipeline

    _, tokenizer, hf = family
    model = from_transformers(hf)
    space = _space(tokenizer)
    enc = space.encode(SENTENCES)
    ours = predict(model, enc.token_ids, enc.mask)
    pipe = pipeline("text-classification", model=hf, tokenizer=tokenizer, device="cpu",
                    function_to_apply="none", top_k=None)
    for sentence, logits in zip(SENTENCES, ours, strict=True):
        answer = pipe(sentence)
        answer = answer[0] if isinstance(answer[0], list) else answer  # versions differ
        scores = {hf.config.label2id[s["label"]]: s["score"] for s in answer}
        theirs = torch.tensor([scores[k] for k in range(len(scores))])
        torch.testing.assert_close(logits, theirs, atol=1e-4, rtol=1e-4)


def test_case_is_kept_and_rewrites_are_written_in_the_words_case(family):
    name, tokenizer, _ = family
    space = _space(tokenizer)
    sentence = "The Film Is Good, But The Story Is Bad."
    reading = space.read(sentence)
    written = {t for _, _, texts in reading.edits.values() for t in texts.values()}
    assert written and all(t[0].isupper() for t in written)
    caps = space.read("IT'S A CHARMING, OFTEN AFFECTING JOURNEY!")
    assert all(t.isupper() for _, _, texts in caps.edits.values() for t in texts.values())
    if name == "bpe":  # the first word of a byte-level BPE sentence has no Ġ
        assert not reading.pieces[1].startswith("Ġ")


def test_a_forged_reading_is_an_error_never_a_certificate(family, monkeypatch):
    _, tokenizer, hf = family
    model = from_transformers(hf)
    space = _space(tokenizer)
    label = int(_own_logits(hf, tokenizer, SENTENCES[:1]).argmax())
    monkeypatch.setattr(space, "reference_ids", lambda text: tokenizer(text.lower())["input_ids"]
                        + [tokenizer.sep_token_id])
    with pytest.raises(ReadingMismatch, match="the model's tokenizer reads"):
        certify(model, space.vocabulary, space, [(SENTENCES[0], label)], budgets=[1])


def test_logits_that_are_not_the_models_own_forward_are_an_error(family):
    name, tokenizer, hf = family
    model = from_transformers(hf)
    model.hf = family_model(name, tokenizer, seed=7)  # another model answers for "its own"
    space = _space(tokenizer)
    with pytest.raises(ReadingMismatch, match="differ from the model's own forward"):
        certify(model, space.vocabulary, space, [(SENTENCES[0], 0)], budgets=[1])


def test_a_slow_tokenizer_and_one_that_reads_across_spaces_are_refused():
    from types import SimpleNamespace

    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    space = PerturbationSpace(SynonymTable(TABLE), budget=1)
    with pytest.raises(RobustTextError, match="slow"):  # no offsets to place the pieces
        SubwordSpace(space, SimpleNamespace(is_fast=False, pad_token_id=0))
    raw = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3},
                                     unk_token="[UNK]"))
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    whole = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]",
                                    cls_token="[CLS]", sep_token="[SEP]")
    with pytest.raises(RobustTextError, match="does not split words at spaces"):
        SubwordSpace(space, whole)


def test_the_one_sentence_view_shows_the_tokenizers_pieces(family, tmp_path, capsys):
    from robusttext.cli import main
    from robusttext.text.hf import save_transformers_folder

    name, tokenizer, hf = family
    folder = save_transformers_folder(tmp_path / name, from_transformers(hf), tokenizer,
                                      _space(tokenizer, budget=1).space)
    sentence = "The Film Is Good 😴"
    assert main(["certify", "--model", str(folder), sentence, "--budget", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(sentence)["input_ids"])
    unk = tokenizer.unk_token
    shown = " ".join(f"[{p}?]" if p == unk else p for p in pieces)
    assert f"reads as:   {shown}" in printed
    assert f"unknown:    {pieces.count(unk)} of {len(pieces)} pieces" in printed
