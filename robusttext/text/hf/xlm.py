"""``xlm``: a small XLM-style encoder whose sentence state is the mean of its tokens' states.

``XlmClassifier`` is a ``transformers.XLMForSequenceClassification`` built from a config
(``layers``, ``heads``, ``embed_dim`` as the hidden size, ``max_length``, ``layer_norm_eps``,
ReLU or GELU) with XLM's sequence summary set to ``summary_type="mean"`` projected to the labels:
the logits are a linear layer of the mean, over the sentence's tokens, of the encoder's last
states. That is how robusttext's own Transformer reads a sentence, and it certifies; BERT reads
its ``[CLS]`` state, which sees the words only through attention and then its pooler's tanh,
and its bounds saturate (``bench/hf_results.md``). XLM's feed-forward block is 4 times the
hidden size (``transformers`` fixes it), so ``ffn`` is not a setting here. With
``layer_norm_eps`` of 1 or more every LayerNorm's weight starts at ``sqrt(eps)``, so a norm
whose eps is large against the states' variance starts as a centring norm (``x - mean``), as
robusttext's Transformer's.

The model works over a robusttext word ``Vocabulary`` (``<pad>`` 0 is XLM's ``pad_index``,
``<unk>`` 1 its ``unk_index``, one word per token, no special token added), follows the
text-model contract through ``robusttext.text.hf.model.EncoderBody`` (``pool="mean"``), so
``robusttext train --architecture xlm`` trains it with IBP or CROWN-IBP and ``robusttext
certify`` certifies it. Its checkpoint folder also holds the ``save_pretrained`` files and a
word-level tokenizer (lower-casing, split on whitespace as the ``glue`` style does), so
``AutoModelForSequenceClassification.from_pretrained(folder)`` and
``pipeline("text-classification", model=folder)`` give robusttext's logits for each sentence
(XLM's own mean also counts padded positions, so ``transformers`` gives them for a sentence
read alone, as ``pipeline`` reads one).
"""

from __future__ import annotations

import copy
from typing import Any

from robusttext.errors import RobustTextError
from robusttext.perturb.vocabulary import Vocabulary
from robusttext.text.base import TextClassifier
from robusttext.text.hf.model import build_xlm
from robusttext.text.hf.trainable import (
    DEFAULT_LAYER_NORM_EPS,
    check_encoder_settings,
    start_queries,
    word_tokenizer,
    write_transformers_files,
)

XLM_ACTIVATIONS = ("relu", "gelu")
"""XLM's feed-forward activations (``gelu_activation`` false or true; GELU is the erf form)."""


class XlmClassifier(TextClassifier):
    """XLM-style classifier (defaults: 1 layer, 4 heads, hidden 64, feed-forward 256, ReLU,
    mean summary); ``hf`` is the ``transformers`` model (kept outside the module tree, so each
    parameter is saved once, under ``embedding`` and ``body``). ``ffn``, when given, must be
    ``4 * embed_dim`` (XLM's own)."""

    kind = "xlm"

    def __init__(self, vocab_size: int, embed_dim: int = 64, heads: int = 4,
                 ffn: int | None = None, layers: int = 1, max_length: int = 64,
                 classes: int = 2, activation: str = "relu",
                 layer_norm_eps: float = DEFAULT_LAYER_NORM_EPS, dropout: float = 0.0,
                 query_init: str = "normal"):
        check_encoder_settings("XlmClassifier", embed_dim, heads, activation, layer_norm_eps,
                               query_init, XLM_ACTIVATIONS)
        if ffn is not None and isinstance(embed_dim, int) and ffn != 4 * embed_dim:
            raise RobustTextError(f"XlmClassifier: XLM's feed-forward size is 4 x embed_dim "
                                  f"({4 * embed_dim}), fixed by transformers; got ffn {ffn!r}")
        sizes = {"heads": heads, "layers": layers, "max_length": max_length, "classes": classes}
        from torch import nn

        super().__init__(vocab_size, embed_dim, nn.Identity(), dropout=dropout, **sizes)
        from transformers import XLMConfig, XLMForSequenceClassification

        config = XLMConfig(vocab_size=vocab_size, emb_dim=embed_dim, n_layers=layers,
                           n_heads=heads, gelu_activation=activation == "gelu",
                           max_position_embeddings=max_length, layer_norm_eps=float(layer_norm_eps),
                           n_langs=1, use_lang_emb=False, pad_index=0, pad_token_id=0,
                           unk_index=1, bos_index=0, eos_index=0, num_labels=classes,
                           summary_type="mean", summary_use_proj=True, summary_activation=None,
                           summary_proj_to_labels=True, summary_first_dropout=0.0, dropout=0.0,
                           attention_dropout=0.0)
        hf = XLMForSequenceClassification(config)
        self.__dict__["hf"] = hf  # not a submodule: its parameters are those of embedding/body
        self.embedding, self.body = build_xlm(hf)
        self.activation = activation
        self.layer_norm_eps = float(layer_norm_eps)
        self.query_init = query_init
        start_queries([attention.q_lin for attention in hf.transformer.attentions], query_init)
        if self.layer_norm_eps >= 1:
            centring_gains(hf, self.layer_norm_eps)

    def config(self) -> dict[str, Any]:
        extra = {"activation": self.activation, "layer_norm_eps": self.layer_norm_eps}
        if self.query_init != "normal":
            extra["query_init"] = self.query_init
        return {**super().config(), **extra}

    def exported_transformers_model(self):
        """A copy of ``hf`` in eval mode: what ``save_pretrained`` writes."""
        hf = copy.deepcopy(self.hf)
        hf.config.architectures = ["XLMForSequenceClassification"]
        return hf.eval()

    @staticmethod
    def transformers_tokenizer(vocab: Vocabulary):
        """The tokenizer of the exported folder: ``word_tokenizer`` without ``[CLS]``."""
        return word_tokenizer(vocab, cls=False)

    def write_extra_files(self, directory, vocab, space, training_config, metrics) -> None:
        """Also a ``from_pretrained`` / ``pipeline`` folder (``write_transformers_files``)."""
        write_transformers_files(directory, self, vocab, space, training_config, metrics)


def centring_gains(hf, layer_norm_eps: float) -> None:
    """Start every LayerNorm's weight at ``sqrt(layer_norm_eps)``: with an eps large against
    the variance, ``LayerNorm(x) = (x - mean) * sqrt(eps / (var + eps))`` then starts as a
    centring norm, ``x - mean``, rather than one that divides every state by ``sqrt(eps)``."""
    import torch
    from torch import nn

    with torch.no_grad():
        for module in hf.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(layer_norm_eps ** 0.5)
