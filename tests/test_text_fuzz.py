"""The text fuzzer: random sentences as people write them (lower-case, title-case, ALL CAPS,
punctuation, contractions, numbers, accents, emoji, quotes), read by tokenizers of every
family. For each: the ids are the tokenizer's own on the text, every rewrite of the set (as
text) reads back as its row, and a certified sentence keeps its label on every rewrite run
through ``transformers``' own forward.

``python bench/fuzz_campaign.py --text --examples 500`` runs a longer campaign.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from robusttext.certify import certify  # noqa: E402
from robusttext.certify.exhaustive import rewrites  # noqa: E402
from robusttext.certify.margins import margins  # noqa: E402
from robusttext.perturb import PerturbationSpace, SynonymTable  # noqa: E402
from robusttext.perturb.subwords import SubwordSpace  # noqa: E402
from robusttext.text.hf import from_transformers  # noqa: E402
from tests.hf_tiny import FAMILIES, family_setup, sst2_phrases  # noqa: E402

TABLE = {"good": ["great", "fine"], "bad": ["awful", "poor"], "film": ["movie"],
         "funny": ["amusing", "hilarious"], "boring": ["dull"], "story": ["tale", "plot"],
         "charming": ["delightful"], "love": ["adore"], "naïve": ["innocent"]}
WORDS = [*TABLE, "the", "a", "this", "is", "was", "not", "very", "and", "but", "of", "i"]
SPECIAL = ["it's", "didn't", "can't", "I'm", "they're", "2", "10,000", "3.5", "1990s",
           "café", "résumé", "😀", "😴", "🎬", "--", "&"]
PUNCTUATION = ["", "", "", ",", ".", "!", "?!", "...", ":", ";"]
CASES = [str.lower, str.lower, str.title, str.upper]


@st.composite
def sentences(draw) -> str:
    """A sentence of 2 to 8 words as people write them (see the module docstring)."""
    words = []
    for _ in range(draw(st.integers(2, 8))):
        word = draw(st.sampled_from(WORDS + SPECIAL))
        word = draw(st.sampled_from(CASES))(word)
        if draw(st.integers(0, 9)) == 0:
            word = f'"{word}"'
        words.append(word + draw(st.sampled_from(PUNCTUATION)))
    return " ".join(words)


def check_sentence(family: str, sentence: str, budget: int = 2) -> list[str]:
    """The ways ``sentence`` breaks the reading or the certificate for ``family``."""
    tokenizer, hf = family_setup(family)
    space = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=budget, stop_words=[]),
                         tokenizer)
    problems = []
    enc = space.encode([sentence])
    n = int(enc.mask[0].sum())
    if enc.token_ids[0, :n].tolist() != tokenizer(sentence)["input_ids"]:
        problems.append(f"{family}: {sentence!r}: ids are not the tokenizer's")
    rows, changes = rewrites(enc.token_ids[0, :n], enc.candidate_ids[0, :n],
                             enc.candidate_mask[0, :n], budget)
    texts = [space.rewrite(sentence, r) for r in rows]
    read = tokenizer(texts)["input_ids"]
    problems += [f"{family}: {t!r} reads as {r} not {row}" for t, r, row
                 in zip(texts, read, rows.tolist(), strict=True) if r != row]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    label = int(logits[0].argmax())
    true = margins(logits, torch.full((len(texts),), label))
    result = certify(from_transformers(hf), space.vocabulary, space, [(sentence, label)],
                     budgets=list(range(budget + 1)), method="crown-ibp", enumerate_limit=0)
    for r in result.examples:
        within = true[changes <= r.budget]
        if r.certified and not bool((within > 0).all()):
            problems.append(f"{family}: {sentence!r} certified at budget {r.budget} but a "
                            "rewrite read by the tokenizer flips")
        if r.margin_lower > float(within.min()) + 1e-4:
            problems.append(f"{family}: {sentence!r}: bound {r.margin_lower} above the margin "
                            f"{float(within.min())} at budget {r.budget}")
    return problems


@pytest.mark.skipif(sst2_phrases() is None, reason="needs ../shared/data/sst2/train.tsv")
@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(sentence=sentences())
def test_random_sentences_read_as_the_tokenizer_reads_them(family, sentence):
    assert check_sentence(family, sentence) == []
