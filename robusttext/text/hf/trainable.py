"""``bert``: a small BERT-style encoder that robusttext trains like its own models.

``BertClassifier`` is a ``transformers.BertForSequenceClassification`` built from a config
(``layers``, ``heads``, ``embed_dim`` as the hidden size, ``ffn``, ``max_length``) over a
robusttext word ``Vocabulary`` (``<pad>`` 0, ``<unk>`` 1, one word per token, so no word
pieces); it follows the text-model contract through ``robusttext.text.hf.model.EncoderBody``,
so ``robusttext train --model bert`` trains it with IBP or CROWN-IBP and ``robusttext certify``
certifies it. Sentences are read as they are, without ``[CLS]``: the pooler reads the first
word's final state. ReLU feed-forward (``activation="gelu_new"`` gives GELU's tanh form).

Its checkpoint folder also holds the ``save_pretrained`` files and a word-level tokenizer of
the vocabulary (lower-casing, split on whitespace as the ``glue`` style does, no special
tokens), so ``AutoModelForSequenceClassification.from_pretrained(folder)`` and
``pipeline("text-classification", model=folder)`` give the same logits
(``write_transformers_files``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robusttext.errors import RobustTextError
from robusttext.perturb.vocabulary import PAD, UNK, Vocabulary
from robusttext.text.base import TextClassifier
from robusttext.text.hf.model import ACTIVATIONS, _build_bert


class BertClassifier(TextClassifier):
    """BERT-style classifier (defaults: 1 layer, 4 heads, hidden 64, feed-forward 128, ReLU),
    learned positions for up to ``max_length`` tokens; ``hf`` is the ``transformers`` model
    (kept outside the module tree, so each parameter is saved once, under ``embedding`` and
    ``body``)."""

    kind = "bert"

    def __init__(self, vocab_size: int, embed_dim: int = 64, heads: int = 4, ffn: int = 128,
                 layers: int = 1, max_length: int = 64, classes: int = 2,
                 activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise RobustTextError(f"BertClassifier: activation must be one of "
                                  f"{', '.join(ACTIVATIONS)}, got {activation!r}")
        if isinstance(heads, int) and heads > 0 and isinstance(embed_dim, int) and \
                embed_dim % heads:
            raise RobustTextError(f"BertClassifier: embed_dim ({embed_dim}) must be a multiple "
                                  f"of heads ({heads})")
        sizes = {"heads": heads, "ffn": ffn, "layers": layers, "max_length": max_length,
                 "classes": classes}
        from torch import nn

        super().__init__(vocab_size, embed_dim, nn.Identity(), **sizes)
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(vocab_size=vocab_size, hidden_size=embed_dim, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=ffn,
                            max_position_embeddings=max_length, hidden_act=activation,
                            num_labels=classes, pad_token_id=0, type_vocab_size=1)
        hf = BertForSequenceClassification(config)
        self.__dict__["hf"] = hf  # not a submodule: its parameters are those of embedding/body
        self.embedding, self.body = _build_bert(hf)
        self.activation = activation

    def config(self) -> dict[str, Any]:
        return {**super().config(), "activation": self.activation}


def word_tokenizer(vocab: Vocabulary):
    """A ``transformers`` fast tokenizer that maps text to exactly robusttext's ids for the
    ``glue`` style: lower-case, split on whitespace, unknown words to ``<unk>``, no special
    tokens added."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    table = {token: i for i, token in enumerate(vocab.tokens)}
    raw = Tokenizer(models.WordLevel(table, unk_token=UNK))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token=UNK, pad_token=PAD)


def write_transformers_files(directory: str | Path, model: BertClassifier, vocab: Vocabulary,
                             space, training_config: dict | None, metrics: dict | None) -> None:
    """``save_pretrained`` files, the word tokenizer and ``robusttext.json`` in ``directory``
    (beside robusttext's own checkpoint files)."""
    from robusttext.text.hf.folders import FORMAT, ROBUSTTEXT_FILE

    if space is not None and space.tokenizer != "glue":
        raise RobustTextError(f"a bert model saves a whitespace tokenizer for transformers; "
                              f"its space must use the 'glue' tokenizer, not {space.tokenizer!r}")
    directory = Path(directory)
    hf = model.hf
    hf.config.architectures = ["BertForSequenceClassification"]
    hf.save_pretrained(directory)
    word_tokenizer(vocab).save_pretrained(directory)
    extra = {"format": FORMAT, "version": 1, "architecture": "BertForSequenceClassification",
             "perturbation_space": space.to_json() if space is not None else None,
             "training_config": training_config or {}, "metrics": metrics or {}}
    (directory / ROBUSTTEXT_FILE).write_text(json.dumps(extra, indent=1) + "\n")
