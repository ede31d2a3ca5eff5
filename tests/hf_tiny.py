"""Tiny ``transformers`` classifiers and a word-level WordPiece vocabulary, built offline.

The vocabulary holds whole words plus a few ``##`` continuations, so that some candidate words
split into several pieces (``films`` -> ``film ##s``) and the sub-word handling is exercised.
"""

from __future__ import annotations

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
