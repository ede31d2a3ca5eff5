"""Sub-word handling: which candidates survive, what is counted, the encoding itself."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from robusttext.certify.exhaustive import set_sizes  # noqa: E402
from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.perturb import PerturbationSpace, SynonymTable  # noqa: E402
from robusttext.perturb.subwords import SubwordSpace  # noqa: E402
from tests.hf_tiny import TABLE, bert_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return bert_tokenizer(tmp_path_factory.mktemp("vocab"))


def _space(tokenizer, budget=2, **options):
    return SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=budget, stop_words=[],
                                          **options), tokenizer)


def test_the_encoding_is_the_tokenizers_own(tokenizer):
    space = _space(tokenizer)
    sentences = ["the playing was great", "a bad plot and the films"]
    enc = space.encode(sentences)
    for b, sentence in enumerate(sentences):
        expected = tokenizer(sentence)["input_ids"]
        assert enc.token_ids[b, : len(expected)].tolist() == expected
        assert enc.mask[b].sum() == len(expected)
        assert enc.token_ids[b, len(expected):].eq(tokenizer.pad_token_id).all()


def test_candidates_are_kept_and_dropped_by_their_pieces(tokenizer):
    # By hand, from the vocabulary of tests/hf_tiny.py:
    #   good -> great, fine (one piece each), superb ([UNK], one piece): all kept
    #   film -> movie kept; films = film ##s: another number of pieces, dropped
    #   bad -> awful, poor kept; unkind = un ##kind: dropped
    #   playing = play ##ing -> played, plays (play ##ed, play ##s: slot 1, kept),
    #     kinded = kind ##ed (both pieces differ: dropped), kinding = kind ##ing (slot 0,
    #     not the word's changeable slot 1: dropped)
    space = _space(tokenizer)
    enc = space.encode(["the film is good", "a bad plot", "the playing was great"])
    ids = tokenizer.convert_tokens_to_ids

    def kept(b, p):
        return sorted(enc.candidate_ids[b, p][enc.candidate_mask[b, p]].tolist())

    assert kept(0, 2) == sorted(ids(["movie"]))
    assert kept(0, 4) == sorted(ids(["great", "fine", "[UNK]"]))
    assert kept(1, 2) == sorted(ids(["awful", "poor"]))
    assert kept(2, 2) == [] and kept(2, 3) == sorted(ids(["##ed", "##s"]))
    # Changeable positions: film, good | bad, plot | playing's second piece (great has none).
    assert enc.candidate_mask.any(-1).sum(1).tolist() == [2, 2, 1]
    assert space.dropped["the film is good"].to_json() == {
        "total": 1, "piece_count": 1, "several_pieces": 0, "other_slot": 0, "max_candidates": 0}
    assert space.dropped["the playing was great"].counts == {"several_pieces": 1,
                                                             "other_slot": 1}
    assert ("playing", "kinding", "other_slot") in space.dropped["the playing was great"].words
    assert space.dropped_totals()["total"] == 4


def test_set_sizes_count_the_word_level_set_of_kept_candidates(tokenizer):
    # "the film is good": film has 1 kept candidate, good 3; at most 2 words change:
    # 1 + (1 + 3) + 1 * 3 = 8 sentences.
    enc = _space(tokenizer).encode(["the film is good"])
    assert set_sizes(enc, 2) == [8]
    assert set_sizes(enc, 1) == [5]


def test_max_candidates_cuts_are_counted(tokenizer):
    space = _space(tokenizer, max_candidates=1)
    space.encode(["good"])
    assert space.dropped["good"].counts == {"max_candidates": 2}


def test_char_level_spaces_are_refused(tokenizer):
    with pytest.raises(RobustTextError, match="word-level"):
        SubwordSpace(PerturbationSpace("typos", budget=1, level="char"), tokenizer)


def test_a_tokenizer_that_cannot_encode_the_text_is_named(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "good": 3}))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]")
    space = SubwordSpace(PerturbationSpace(SynonymTable({"good": ["fine"]}), budget=1),
                         tokenizer)
    with pytest.raises(RobustTextError, match="cannot encode 'fine'"):
        space.encode(["good"])


def test_sentences_longer_than_the_model_are_refused(tokenizer):
    space = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=1), tokenizer,
                         max_length=5)
    with pytest.raises(RobustTextError, match="more than the model's 5 positions"):
        space.encode(["the film is good and bad"])


def test_the_attack_and_enumeration_stay_in_the_kept_set(tokenizer):
    from robusttext.certify.exhaustive import rewrites

    enc = _space(tokenizer).encode(["the playing was good"])
    rows, _ = rewrites(enc.token_ids[0], enc.candidate_ids[0], enc.candidate_mask[0], 2)
    words = {tokenizer.decode(r[1:-1]) for r in rows}
    # play ##ing / ##ed / ##s with good / great / fine / superb ([UNK]), at most two changes.
    assert "the played was fine" in words and "the plays was [UNK]" in words
    assert not any("kind" in w for w in words)
    assert len(words) == len(rows) == 1 + 2 + 3 + 2 * 3


def test_byte_level_bpe_sentences_are_encoded_as_the_tokenizer_reads_them():
    """RoBERTa-style byte-level BPE marks a word start with a space, and the first word of a
    sentence has none: the ids are the tokenizer's own on the sentence (no ``Ġ`` on the first
    word; this tokenizer has no post-processor, so no ``<s>`` / ``</s>`` either)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    texts = ["the film is good", "a bad plot", "the playing was great", "films played"] * 10
    raw.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, cls_token="<s>", sep_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    space = SubwordSpace(PerturbationSpace(SynonymTable(TABLE), budget=1, stop_words=[]),
                         tokenizer)
    for sentence in ("the film is good", "a bad plot and the playing"):
        enc = space.encode([sentence])
        expected = tokenizer(sentence)["input_ids"]
        assert enc.token_ids[0].tolist() == expected
        assert not tokenizer.convert_ids_to_tokens(expected)[0].startswith("Ġ")
