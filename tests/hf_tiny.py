"""Tiny ``transformers`` classifiers and a word-level WordPiece vocabulary, built offline.

The vocabulary holds whole words plus a few ``##`` continuations, so that some candidate words
split into several pieces (``films`` -> ``film ##s``) and the sub-word handling is exercised.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

WORDS = ["the", "a", "film", "movie", "is", "was", "good", "great", "fine", "bad", "awful",
         "poor", "plot", "story", "play", "kind", "un", "##ing", "##ed", "##s", "##kind"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TABLE = {
    "good": ["great", "fine", "superb"],          # superb: one [UNK] piece, kept
    "film": ["movie", "films"],                   # films: film ##s, another piece count
    "bad": ["awful", "poor", "unkind"],           # unkind: un ##kind, another piece count
    "playing": ["played", "plays", "kinded", "kinding"],  # play ##ing: slot 1 changes
    "plot": ["story"],
}
SENTENCES = [("the film is good", 1), ("a bad plot", 0), ("the playing was great", 1),
             ("the story is bad and the film is fine", 0), ("good", 1)]


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIALS + WORDS) + "\n")
    return path


def bert_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    write_vocab(folder)
    return BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)


SMALL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 32, "max_position_embeddings": 24}


def tiny_model(architecture: str, activation: str = "relu", vocab_size: int | None = None,
               num_labels: int = 2, seed: int = 0):
    """A randomly initialised BERT, RoBERTa or DistilBERT classifier in eval mode."""
    import transformers as tf

    torch.manual_seed(seed)
    vocab_size = vocab_size or len(SPECIALS) + len(WORDS)
    if architecture == "bert":
        config = tf.BertConfig(vocab_size=vocab_size, hidden_act=activation,
                               num_labels=num_labels, **SMALL)
        model = tf.BertForSequenceClassification(config)
    elif architecture == "roberta":
        # RoBERTa's padding index is the tokenizer's pad id (0 here); positions start after it.
        config = tf.RobertaConfig(vocab_size=vocab_size, hidden_act=activation, pad_token_id=0,
                                  num_labels=num_labels, **{**SMALL,
                                                            "max_position_embeddings": 26})
        model = tf.RobertaForSequenceClassification(config)
    elif architecture == "distilbert":
        config = tf.DistilBertConfig(vocab_size=vocab_size, dim=16, n_layers=2, n_heads=2,
                                     hidden_dim=32, max_position_embeddings=24,
                                     activation=activation, num_labels=num_labels)
        model = tf.DistilBertForSequenceClassification(config)
    else:
        raise ValueError(architecture)
    # Larger weights than the default init, so the margins differ between rewrites.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name and "layer_norm" not in name:
                p.normal_(0, 0.3)
        model.get_input_embeddings().weight[0] = 0  # the padding row ([PAD] is id 0)
    return model.eval()


# -- tokenizers of every family, trained offline on SST-2 phrases --------------------------------

SST2_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"
FAMILIES = ("wordpiece-uncased", "wordpiece-cased", "bpe", "unigram")
"""Tokenizer families: BERT's WordPiece (lower-cased or cased), RoBERTa's byte-level BPE and a
SentencePiece-style Unigram."""
ARCHITECTURE_OF = {"wordpiece-uncased": "bert", "wordpiece-cased": "bert", "bpe": "roberta",
                   "unigram": "distilbert"}


def sst2_phrases(limit: int = 3000) -> list[str] | None:
    """The first ``limit`` phrases of SST-2's training file, each also title-cased and in
    capitals (SST-2 is lower-cased; a cased tokenizer should know capitals), or None when the
    file is absent."""
    if not SST2_TRAIN.is_file():
        return None
    lines = SST2_TRAIN.read_text().splitlines()[1:limit + 1]
    phrases = [line.rsplit("\t", 1)[0] for line in lines]
    return phrases + [p.title() for p in phrases[:limit // 3]] + [p.upper() for p in
                                                                   phrases[:limit // 6]]


def trained_tokenizer(family: str, texts: list[str], vocab_size: int = 4000):
    """A ``transformers`` fast tokenizer of ``family`` (see FAMILIES) trained on ``texts`` with
    the ``tokenizers`` library, framed as its model family frames sentences."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if family.startswith("wordpiece"):
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        raw.normalizer = normalizers.BertNormalizer(lowercase=family.endswith("uncased"),
                                                    strip_accents=family.endswith("uncased"))
        raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        raw.decoder = decoders.WordPiece()
        raw.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                 special_tokens=specials))
        raw.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", raw.token_to_id("[CLS]")),
                                                     ("[SEP]", raw.token_to_id("[SEP]"))])
        names = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                     sep_token="[SEP]", mask_token="[MASK]")
    elif family == "bpe":
        specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
        raw = Tokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        raw.train_from_iterator(texts, trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        raw.post_processor = processors.RobertaProcessing(
            ("</s>", raw.token_to_id("</s>")), ("<s>", raw.token_to_id("<s>")),
            trim_offsets=True, add_prefix_space=False)
        names = dict(pad_token="<pad>", unk_token="<unk>", cls_token="<s>", sep_token="</s>",
                     bos_token="<s>", eos_token="</s>", mask_token="<mask>")
    elif family == "unigram":
        specials = ["<pad>", "<unk>", "<s>", "</s>"]
        raw = Tokenizer(models.Unigram())
        raw.normalizer = normalizers.NFKC()
        raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        raw.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        raw.train_from_iterator(texts, trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"))
        raw.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", raw.token_to_id("<s>")),
                                                  ("</s>", raw.token_to_id("</s>"))])
        names = dict(pad_token="<pad>", unk_token="<unk>", cls_token="<s>", sep_token="</s>")
    else:
        raise ValueError(family)
    return PreTrainedTokenizerFast(tokenizer_object=raw, **names)


def family_model(family: str, tokenizer, seed: int = 0, positions: int = 64,
                 std: float = 0.3, tilt: float = 0.0):
    """A random tiny classifier of the family's architecture over ``tokenizer``'s ids (its
    padding row zero, positions for ``positions`` pieces): weights drawn with ``std`` (the
    word embeddings with 0.3), ``tilt`` added to class 1's bias (a model that leans to one
    class, which the bounds can certify)."""
    import transformers as tf

    torch.manual_seed(seed)
    architecture = ARCHITECTURE_OF[family]
    size, pad = len(tokenizer), tokenizer.pad_token_id
    if architecture == "bert":
        model = tf.BertForSequenceClassification(tf.BertConfig(
            vocab_size=size, pad_token_id=pad, **{**SMALL, "max_position_embeddings": positions}))
    elif architecture == "roberta":
        model = tf.RobertaForSequenceClassification(tf.RobertaConfig(
            vocab_size=size, pad_token_id=pad, bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            **{**SMALL, "max_position_embeddings": positions + pad + 1}))
    else:
        model = tf.DistilBertForSequenceClassification(tf.DistilBertConfig(
            vocab_size=size, pad_token_id=pad, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
            max_position_embeddings=positions, activation="relu"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name and "layer_norm" not in name:
                p.normal_(0, 0.3 if "word_embeddings" in name else std)
        model.get_input_embeddings().weight[pad] = 0
        last = model.classifier.out_proj if architecture == "roberta" else model.classifier
        last.bias[1] += tilt
    return model.eval()


@cache
def family_setup(family: str, seed: int = 1):
    """``(tokenizer, transformers model)`` of ``family`` trained on ``sst2_phrases()`` (built
    once per test session); None when SST-2 is absent."""
    phrases = sst2_phrases()
    if phrases is None:
        return None
    tokenizer = trained_tokenizer(family, phrases)
    return tokenizer, family_model(family, tokenizer, seed=seed)


def word_set_lower_margins(model, enc, labels, budget: int, method: str,
                           positionwise: bool = False) -> torch.Tensor:
    """``[batch]``: each sentence's certified lower margin (the smallest over the other
    classes) over the set of its word vectors at ``budget`` (``positionwise``: over their
    images under the body's position-wise layers, ``PositionwiseSet``), the body bounded by
    ``method``: the bound the soundness tests hold below every rewrite's true margin."""
    from robusttext.bounds import TokenSubstitutionSet, margin_matrix
    from robusttext.bounds.specs import margin_lower_bounds
    from robusttext.text.bounds import PositionwiseSet, body_problem

    subs = TokenSubstitutionSet(model.embedding.weight, enc.token_ids, enc.candidate_ids,
                                enc.candidate_mask, budget, "exact")
    with torch.no_grad():
        if positionwise:
            subs = PositionwiseSet.through(model.body, subs, enc.mask)
        problem = body_problem(model.body, subs, margin_matrix(labels, 2).to(subs.center),
                               enc.mask)
        return margin_lower_bounds(problem, method).amin(1)
