"""``bert``: a small BERT-style encoder that robusttext trains like its own models.

``BertClassifier`` is a ``transformers.BertForSequenceClassification`` built from a config
(``layers``, ``heads``, ``embed_dim`` as the hidden size, ``ffn``, ``max_length``) over a
robusttext word ``Vocabulary`` (``<pad>`` 0, ``<unk>`` 1, one word per token, so no word
pieces); it follows the text-model contract through ``ClsBody`` around
``robusttext.text.hf.model.EncoderBody``, so ``robusttext train --model bert`` trains it with IBP
or CROWN-IBP and ``robusttext certify`` certifies it. As in BERT, every sentence is read as
``[CLS] w1 .. wn``: the body prepends a learned ``[CLS]`` vector (no substitution touches it)
at position 0 and the pooler reads its final state. ReLU feed-forward (``activation=
"gelu_new"`` gives GELU's tanh form).

Its checkpoint folder also holds the ``save_pretrained`` files, whose word-embedding table is
the vocabulary's plus one last row, ``[CLS]`` (``CLS_TOKEN``), and a word-level tokenizer of the
vocabulary (lower-casing, split on whitespace as the ``glue`` style does, ``[CLS]`` prepended
and declared as its ``cls_token``),
so ``AutoModelForSequenceClassification.from_pretrained(folder)`` and
``pipeline("text-classification", model=folder)`` give robusttext's logits
(``write_transformers_files``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn

from robusttext.errors import RobustTextError
from robusttext.perturb.vocabulary import PAD, UNK, Vocabulary
from robusttext.text.base import TextClassifier
from robusttext.text.hf.model import ACTIVATIONS, EncoderBody, _build_bert
from robusttext.text.sequence_models import checked_length

DEFAULT_LAYER_NORM_EPS = 1e-12
"""``BertConfig``'s own ``layer_norm_eps``. A large value (against the variance of the hidden
states) makes every LayerNorm close to a centring norm, ``(x - mean) / sqrt(eps)`` scaled, which
the bounds follow far more tightly; it stays the standard module, so the saved folder still
loads with no robusttext code."""

QUERY_INITS = ("normal", "zero", "fixed-zero")
"""How the attention queries start: BERT's normal initialisation, ``"zero"`` (weights and
bias), so every score is exactly 0 and attention starts as the mean of the values, or
``"fixed-zero"``: zero and never trained (``requires_grad`` off), so attention stays the exact
mean of the values over the sentence; the folder is still a standard BERT whose query weights
are zero. The pooled
``[CLS]`` state reads the words only through attention, and interval bounds of softmax
attention with wide scores add up every key's value; with exact scores they are the mean's
bounds, so certified training starts from tight bounds. Measured on SST-2
(``bench/archive/hf_results.md``, third round): the queries regrew to BERT's size within one
epoch, so this alone does not keep the bounds tight; ``"fixed-zero"`` is the measured
alternative (``bench/hf_results.md``)."""

CLS_TOKEN = "[CLS]"
"""The token the saved tokenizer prepends; its id is the vocabulary's size (the last row)."""

torch.fx.wrap(checked_length)  # traced as one call on the constant length (see model.py)


def check_encoder_settings(owner: str, embed_dim, heads, activation, layer_norm_eps, query_init,
                           activations) -> None:
    """RobustTextError naming a setting of a ``transformers`` encoder that cannot be built."""
    if activation not in activations:
        raise RobustTextError(f"{owner}: activation must be one of "
                              f"{', '.join(activations)}, got {activation!r}")
    if isinstance(heads, int) and heads > 0 and isinstance(embed_dim, int) and \
            embed_dim % heads:
        raise RobustTextError(f"{owner}: embed_dim ({embed_dim}) must be a multiple "
                              f"of heads ({heads})")
    if isinstance(layer_norm_eps, bool) or not isinstance(layer_norm_eps, (int, float)) or \
            not 0 < layer_norm_eps < float("inf"):
        raise RobustTextError(f"{owner}: layer_norm_eps must be a positive number, "
                              f"got {layer_norm_eps!r}")
    if query_init not in QUERY_INITS:
        raise RobustTextError(f"{owner}: query_init must be one of "
                              f"{', '.join(QUERY_INITS)}, got {query_init!r}")


def start_queries(queries: list[nn.Linear], query_init: str) -> None:
    """Apply ``query_init`` (``QUERY_INITS``) to the attention query layers."""
    if query_init in ("zero", "fixed-zero"):
        with torch.no_grad():
            for query in queries:
                query.weight.zero_()
                query.bias.zero_()
    if query_init == "fixed-zero":
        for query in queries:
            query.requires_grad_(False)


class ClsBody(nn.Module):
    """``[CLS]`` in front of every sentence, then the encoder.

    ``forward(x [batch, length, hidden], mask [batch, length] float) -> [batch, labels]``:
    ``encoder(cat(cls, x), cat(1, mask))``, so the encoder reads ``length + 1`` tokens,
    ``[CLS]`` at position 0, and its pooler reads ``[CLS]``'s final state. ``cls`` is a
    parameter (``[hidden]``), a constant for the bounds; at most ``max_length`` words.
    """

    def __init__(self, encoder: EncoderBody, initializer_range: float):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.norm.normalized_shape[0]
        self.cls = nn.Parameter(torch.randn(hidden) * initializer_range)
        self.max_length = encoder.max_length - 1

    @property
    def out(self) -> nn.Linear:
        """The classifier layer (the head's last)."""
        return self.encoder.out

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        checked_length(x.shape[1], self.max_length)
        batch = x.shape[0]
        cls = self.cls.expand(batch, 1, self.cls.shape[0])
        return self.encoder(torch.cat([cls, x], 1), torch.cat([mask.new_ones(batch, 1), mask], 1))


class BertClassifier(TextClassifier):
    """BERT-style classifier (defaults: 1 layer, 4 heads, hidden 64, feed-forward 128, ReLU),
    learned positions for ``[CLS]`` and up to ``max_length`` words; ``hf`` is the
    ``transformers`` model without the ``[CLS]`` row (kept outside the module tree, so each
    parameter is saved once, under ``embedding`` and ``body``)."""

    kind = "bert"

    def __init__(self, vocab_size: int, embed_dim: int = 64, heads: int = 4, ffn: int = 128,
                 layers: int = 1, max_length: int = 64, classes: int = 2,
                 activation: str = "relu", layer_norm_eps: float = DEFAULT_LAYER_NORM_EPS,
                 dropout: float = 0.0, query_init: str = "normal"):
        check_encoder_settings("BertClassifier", embed_dim, heads, activation, layer_norm_eps,
                               query_init, ACTIVATIONS)
        sizes = {"heads": heads, "ffn": ffn, "layers": layers, "max_length": max_length,
                 "classes": classes}
        from torch import nn

        super().__init__(vocab_size, embed_dim, nn.Identity(), dropout=dropout, **sizes)
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(vocab_size=vocab_size, hidden_size=embed_dim, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=ffn,
                            max_position_embeddings=max_length + 1, hidden_act=activation,
                            num_labels=classes, pad_token_id=0, type_vocab_size=1,
                            layer_norm_eps=float(layer_norm_eps))
        hf = BertForSequenceClassification(config)
        self.__dict__["hf"] = hf  # not a submodule: its parameters are those of embedding/body
        self.embedding, encoder = _build_bert(hf)
        self.body = ClsBody(encoder, config.initializer_range)
        self.activation = activation
        self.layer_norm_eps = float(layer_norm_eps)
        self.query_init = query_init
        start_queries([layer.attention.self.query for layer in hf.bert.encoder.layer],
                      query_init)

    def config(self) -> dict[str, Any]:
        extra = {"activation": self.activation}
        if self.layer_norm_eps != DEFAULT_LAYER_NORM_EPS:
            extra["layer_norm_eps"] = self.layer_norm_eps
        if self.query_init != "normal":
            extra["query_init"] = self.query_init
        return {**super().config(), **extra}

    def exported_transformers_model(self):
        """The ``transformers`` model of this classifier (``exported_transformers_model``)."""
        return exported_transformers_model(self)

    @staticmethod
    def transformers_tokenizer(vocab: Vocabulary):
        """The tokenizer of the exported folder (``word_tokenizer``)."""
        return word_tokenizer(vocab)

    def write_extra_files(self, directory, vocab, space, training_config, metrics) -> None:
        """Also a ``from_pretrained`` / ``pipeline`` folder (``write_transformers_files``)."""
        write_transformers_files(directory, self, vocab, space, training_config, metrics)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if "body.cls" not in state_dict and "body.position.weight" in state_dict:
            raise RobustTextError("this bert checkpoint comes from a robusttext that read "
                                  "sentences without [CLS] (the pooler read the first word); "
                                  "today's bert prepends [CLS]: train it again")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def word_tokenizer(vocab: Vocabulary, cls: bool = True):
    """A ``transformers`` fast tokenizer that maps text to exactly robusttext's ids for the
    ``glue`` style: lower-case, split on whitespace, unknown words to ``<unk>``.

    With ``cls`` (bert's), ``[CLS]`` (id ``len(vocab)``) comes first. It declares its special
    tokens (``cls_token`` ``[CLS]``, ``pad_token``, ``unk_token``; no ``[SEP]``: the model reads
    ``[CLS] w1 .. wn``), so ``AutoTokenizer`` and ``pipeline`` know its ``cls_token``, and they
    and robusttext's reading of a ``transformers`` folder (``robusttext.perturb.subwords``)
    read the sentence as the model was trained. As in every BERT tokenizer, the text ``[CLS]``
    written in a sentence (exactly so, upper-case) is read as that token; robusttext's own
    checkpoint reads it as a word. Without ``cls`` (xlm's), no special token is added and no
    ``token_type_ids`` are returned (XLM adds those as word vectors)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    table = {token: i for i, token in enumerate(vocab.tokens)}
    if cls:
        cls_id = len(table)
        table[CLS_TOKEN] = cls_id
    raw = Tokenizer(models.WordLevel(table, unk_token=UNK))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if not cls:
        return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token=UNK, pad_token=PAD,
                                       model_input_names=["input_ids", "attention_mask"])
    raw.post_processor = processors.TemplateProcessing(
        single=f"{CLS_TOKEN} $A", pair=f"{CLS_TOKEN} $A $B:1", special_tokens=[(CLS_TOKEN, cls_id)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token=UNK, pad_token=PAD,
                                   cls_token=CLS_TOKEN)


def exported_transformers_model(model: BertClassifier):
    """A copy of ``model.hf`` whose word-embedding table has the ``[CLS]`` row last, so that it
    computes ``model``'s logits on the ids of ``word_tokenizer``."""
    hf = copy.deepcopy(model.hf)
    rows = hf.get_input_embeddings().num_embeddings
    hf.resize_token_embeddings(rows + 1, mean_resizing=False)
    with torch.no_grad():
        hf.get_input_embeddings().weight[rows] = model.body.cls
    hf.config.architectures = ["BertForSequenceClassification"]
    return hf.eval()


def write_transformers_files(directory: str | Path, model, vocab: Vocabulary, space,
                             training_config: dict | None, metrics: dict | None) -> None:
    """``save_pretrained`` files, the word tokenizer and ``robusttext.json`` in ``directory``
    (beside robusttext's own checkpoint files), for a model with ``exported_transformers_model``
    and ``transformers_tokenizer`` (bert, xlm)."""
    from robusttext.text.hf.folders import FORMAT, ROBUSTTEXT_FILE

    if space is not None and space.tokenizer != "glue":
        raise RobustTextError(f"a {model.kind} model saves a whitespace tokenizer for "
                              f"transformers; its space must use the 'glue' tokenizer, not "
                              f"{space.tokenizer!r}")
    directory = Path(directory)
    hf = model.exported_transformers_model()
    hf.save_pretrained(directory)
    model.transformers_tokenizer(vocab).save_pretrained(directory)
    extra = {"format": FORMAT, "version": 1, "architecture": hf.config.architectures[0],
             "perturbation_space": space.to_json() if space is not None else None,
             "training_config": training_config or {}, "metrics": metrics or {}}
    (directory / ROBUSTTEXT_FILE).write_text(json.dumps(extra, indent=1) + "\n")
