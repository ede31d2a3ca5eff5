"""Hugging Face ``transformers`` sequence classifiers as robusttext text models.

``from_transformers(model)`` turns a ``BertForSequenceClassification``,
``DistilBertForSequenceClassification``, ``RobertaForSequenceClassification`` or
``XLMForSequenceClassification`` into a model that follows the text-model contract
(``robusttext.text.contract``):

- ``embedding`` is the model's own word-embedding table (``nn.Embedding``, shared, not copied):
  the perturbed input;
- ``body(embeddings [batch, length, hidden], mask [batch, length] float) -> logits [batch,
  labels]`` is everything after it: position and token-type embeddings, the embedding
  LayerNorm, the encoder layers (self-attention with the mask's padded keys removed, the
  feed-forward block, post-norm residuals), and the classification head (BERT's pooler and
  classifier, RoBERTa's two-layer head, DistilBERT's pre-classifier and classifier, XLM's
  sequence summary: the first token's state or the mean of the real tokens' states, then its
  projection to the labels).

The body is written here with plain modules that reuse the ``transformers`` model's layers
(``nn.Linear``, ``nn.LayerNorm``, ``nn.Embedding``), so the bound engine traces exactly the
operations it has rules for, instead of ``transformers``' own code. It computes the same
logits as ``model(input_ids, attention_mask=mask).logits`` in eval mode for right-padded
batches (dropout is never applied); for XLM with ``summary_type="mean"``, whose own mean runs
over padded positions too, the logits are those of each sentence unpadded (what ``pipeline``
computes for one sentence). Activations: ``relu``; ``gelu_new`` /
``gelu_pytorch_tanh`` (the tanh approximation), written with tanh and products, which the engine
bounds exactly on a single point (its F.gelu rule widens a point by a rounding margin, which
two layers of interval attention amplify); ``gelu`` (the exact erf form) as ``F.gelu``, bounded
by the engine's GELU rule. Anything else (another architecture, relative position
embeddings, a decoder configuration, a regression head) is refused by name when the model is
converted.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from robusttext.errors import RobustTextError
from robusttext.text.sequence_models import MASKED_SCORE, checked_length, masked_mean_over_tokens

SUPPORTED_ARCHITECTURES = (
    "BertForSequenceClassification",
    "DistilBertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMForSequenceClassification",
)
"""The ``transformers`` classes robusttext certifies, attacks and trains."""

POOLS = ("first", "mean")
"""How ``EncoderBody`` reads the sentence's state: the first token's (BERT's ``[CLS]``), or the
mean over the real tokens (XLM's ``summary_type="mean"``)."""

ACTIVATIONS = ("relu", "gelu", "gelu_new", "gelu_pytorch_tanh")
"""``hidden_act`` (BERT, RoBERTa) / ``activation`` (DistilBERT) values the body implements."""

_GELU_TANH = math.sqrt(2 / math.pi)

# Traced as one call (evaluated by the bound engine on the constant length), as in
# sequence_models: fx.wrap patches the name in this module's globals.
torch.fx.wrap(checked_length)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh approximation ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, written
    with a square, products, a sum and tanh (each of which the bound engine bounds soundly)."""
    cube = x * x * x
    return 0.5 * x * (1 + torch.tanh(_GELU_TANH * (x + 0.044715 * cube)))


def gelu_exact(x: torch.Tensor) -> torch.Tensor:
    """GELU's exact form ``x Phi(x)`` (``F.gelu``, bounded by the engine's GELU rule)."""
    return F.gelu(x)


_ACTIVATION_FUNCTIONS = {"relu": torch.relu, "gelu": gelu_exact, "gelu_new": gelu_tanh,
                         "gelu_pytorch_tanh": gelu_tanh}


def _activation(name: object, architecture: str) -> Any:
    if name not in _ACTIVATION_FUNCTIONS:
        raise RobustTextError(f"{architecture}: activation {name!r} is not supported; robusttext "
                              f"supports {', '.join(ACTIVATIONS)}")
    return _ACTIVATION_FUNCTIONS[name]


class EncoderLayer(nn.Module):
    """One post-norm encoder layer made of a ``transformers`` layer's modules (shared).

    ``x = norm1(x + out(attention(q(x), k(x), v(x))))``; ``x = norm2(x + ffn_out(act(ffn_in(x))))``.
    ``forward(x [batch, length, hidden], padded_keys [batch, 1, 1, length]) -> [batch, length,
    hidden]``; ``padded_keys`` is added to the attention scores (``MASKED_SCORE`` on padding).
    """

    def __init__(self, query: nn.Linear, key: nn.Linear, value: nn.Linear, out: nn.Linear,
                 norm1: nn.LayerNorm, ffn_in: nn.Linear, ffn_out: nn.Linear, norm2: nn.LayerNorm,
                 heads: int, activation):
        super().__init__()
        self.query, self.key, self.value, self.out = query, key, value, out
        self.norm1, self.ffn_in, self.ffn_out, self.norm2 = norm1, ffn_in, ffn_out, norm2
        self.heads = heads
        self.hidden = query.out_features
        self.activation = activation

    def _split_heads(self, t: torch.Tensor, batch, length) -> torch.Tensor:
        """``[batch, length, hidden]`` -> ``[batch, heads, length, hidden / heads]``."""
        return t.view(batch, length, self.heads, self.hidden // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, padded_keys: torch.Tensor) -> torch.Tensor:
        batch, length = x.shape[0], x.shape[1]
        scale = (self.hidden // self.heads) ** -0.5
        q = self._split_heads(self.query(x) * scale, batch, length)
        k = self._split_heads(self.key(x), batch, length)
        v = self._split_heads(self.value(x), batch, length)
        scores = q @ k.transpose(2, 3) + padded_keys  # [batch, heads, length, length]
        attended = torch.softmax(scores, dim=-1) @ v
        attended = attended.transpose(1, 2).reshape(batch, length, self.hidden)
        x = self.norm1(x + self.out(attended))
        return self.norm2(x + self.ffn_out(self.activation(self.ffn_in(x))))


class EncoderBody(nn.Module):
    """Embeddings after the word table, encoder layers, classification head.

    ``forward(x [batch, length, hidden], mask [batch, length] float) -> [batch, labels]``:
    ``h = norm(x + position(p) + token_type)`` with ``p = position_offset + 0, 1, ...`` counted
    over the real tokens (RoBERTa's offset is its padding index + 1), ``h = layer(h)`` for each
    layer, ``logits = head(h[:, 0])`` (``pool="first"``) or ``head(mean of h over the real
    tokens)`` (``pool="mean"``). Sentences are right-padded; at most ``max_length`` tokens.
    """

    def __init__(self, position: nn.Embedding, token_type: nn.Embedding | None,
                 norm: nn.LayerNorm, layers: list[EncoderLayer], head: nn.Module,
                 position_offset: int, max_length: int, pool: str = "first"):
        super().__init__()
        if pool not in POOLS:
            raise RobustTextError(f"EncoderBody: pool must be one of {', '.join(POOLS)}, got "
                                  f"{pool!r}")
        self.pool = pool
        self.position = position
        self.token_type = token_type
        self.norm = norm
        self.layers = nn.ModuleList(layers)
        self.head = head
        self.position_offset, self.max_length = position_offset, max_length

    @property
    def out(self) -> nn.Linear:
        """The classifier layer (the head's last linear layer), where training reads the class
        count."""
        return [m for m in self.head if isinstance(m, nn.Linear)][-1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encode(self.positionwise(x, mask), mask)

    def positionwise(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The first layers, which read each position alone: ``norm(x + position + token
        type)``, ``[batch, length, hidden]`` (the text contract's ``positionwise``)."""
        checked_length(x.shape[1], self.max_length)
        # Positions 0, 1, ... of the real tokens (padding repeats the last; it is masked out).
        positions = (torch.cumsum(mask, 1) - 1).clamp(min=0).long() + self.position_offset
        h = x + self.position(positions)
        if self.token_type is not None:
            h = h + self.token_type.weight[0]  # every token is of type 0 (one sentence)
        return self.norm(h)

    def encode(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The rest: the encoder layers and the head on ``positionwise``'s output."""
        checked_length(h.shape[1], self.max_length)
        padded_keys = ((1 - mask) * MASKED_SCORE)[:, None, None, :]  # [batch, 1, 1, length]
        for layer in self.layers:
            h = layer(h, padded_keys)
        if self.pool == "mean":
            return self.head(masked_mean_over_tokens(h, mask))
        return self.head(h[:, 0])


class HFTextModel(nn.Module):
    """A ``transformers`` sequence classifier under the text-model contract.

    ``hf`` is the ``transformers`` model itself (for saving, ``pipeline`` and its config);
    ``embedding`` its word-embedding table; ``body`` an ``EncoderBody`` sharing its layers.
    ``forward(token_ids [batch, length], mask [batch, length]) -> logits [batch, labels]``.
    """

    kind = "transformers"
    level = "word"

    def __init__(self, hf: nn.Module):
        super().__init__()
        architecture = check_architecture(hf)
        self.hf = hf
        self.architecture = architecture
        self.embedding, self.body = _BUILDERS[architecture](hf)

    @property
    def num_labels(self) -> int:
        return int(self.hf.config.num_labels)

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body(self.embedding(token_ids), mask)


def check_tokenizer_inputs(model: HFTextModel, tokenizer) -> None:
    """RobustTextError when ``tokenizer`` gives ``model`` an input its body does not compute:
    XLM adds ``token_type_ids`` as word vectors, so robusttext reads XLM models only through a
    tokenizer that does not return them (``model_input_names``)."""
    names = getattr(tokenizer, "model_input_names", ())
    if model.architecture == "XLMForSequenceClassification" and "token_type_ids" in names:
        raise RobustTextError("XLMForSequenceClassification adds token_type_ids as word "
                              "vectors; robusttext reads XLM models through a tokenizer whose "
                              "model_input_names leave them out (input_ids, attention_mask)")


def check_architecture(hf: object) -> str:
    """The architecture name of a supported ``transformers`` model; RobustTextError naming
    anything robusttext does not bound."""
    name = type(hf).__name__
    if name not in SUPPORTED_ARCHITECTURES:
        raise RobustTextError(f"robusttext does not support the architecture {name}; supported: "
                              f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    config = hf.config
    if getattr(config, "num_labels", 0) < 2 or getattr(config, "problem_type", None) not in (
            None, "single_label_classification"):
        raise RobustTextError(f"{name}: robusttext certifies single-label classifiers with at "
                              f"least 2 labels; this model has num_labels={config.num_labels} "
                              f"and problem_type={config.problem_type!r}")
    position = getattr(config, "position_embedding_type", "absolute")
    if position not in (None, "absolute"):
        raise RobustTextError(f"{name}: position_embedding_type {position!r} is not supported "
                              "(robusttext supports 'absolute')")
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise RobustTextError(f"{name}: decoder configurations (is_decoder, add_cross_attention) "
                              "are not supported")
    return name


def _bert_layers(layers, heads: int, activation) -> list[EncoderLayer]:
    return [EncoderLayer(la.attention.self.query, la.attention.self.key, la.attention.self.value,
                         la.attention.output.dense, la.attention.output.LayerNorm,
                         la.intermediate.dense, la.output.dense, la.output.LayerNorm, heads,
                         activation) for la in layers]


def _build_bert(hf):
    config, emb = hf.config, hf.bert.embeddings
    if hf.bert.pooler is None:
        raise RobustTextError("BertForSequenceClassification without its pooler is not "
                              "supported")
    activation = _activation(config.hidden_act, "BertForSequenceClassification")
    head = nn.Sequential(hf.bert.pooler.dense, nn.Tanh(), hf.classifier)
    body = EncoderBody(emb.position_embeddings, emb.token_type_embeddings, emb.LayerNorm,
                       _bert_layers(hf.bert.encoder.layer, config.num_attention_heads,
                                    activation), head, 0, config.max_position_embeddings)
    return emb.word_embeddings, body


def _build_roberta(hf):
    config, emb = hf.config, hf.roberta.embeddings
    activation = _activation(config.hidden_act, "RobertaForSequenceClassification")
    head = nn.Sequential(hf.classifier.dense, nn.Tanh(), hf.classifier.out_proj)
    offset = emb.padding_idx + 1
    body = EncoderBody(emb.position_embeddings, emb.token_type_embeddings, emb.LayerNorm,
                       _bert_layers(hf.roberta.encoder.layer, config.num_attention_heads,
                                    activation), head, offset,
                       config.max_position_embeddings - offset)
    return emb.word_embeddings, body


def _build_distilbert(hf):
    config, emb = hf.config, hf.distilbert.embeddings
    activation = _activation(config.activation, "DistilBertForSequenceClassification")
    layers = [EncoderLayer(la.attention.q_lin, la.attention.k_lin, la.attention.v_lin,
                           la.attention.out_lin, la.sa_layer_norm, la.ffn.lin1, la.ffn.lin2,
                           la.output_layer_norm, config.n_heads, activation)
              for la in hf.distilbert.transformer.layer]
    head = nn.Sequential(hf.pre_classifier, nn.ReLU(), hf.classifier)
    body = EncoderBody(emb.position_embeddings, None, emb.LayerNorm, layers, head, 0,
                       config.max_position_embeddings)
    return emb.word_embeddings, body


XLM_SUMMARY_ACTIVATIONS = {None: None, "linear": None, "tanh": nn.Tanh, "relu": nn.ReLU}
"""XLM's ``summary_activation`` values the head implements (none and ``linear`` are the
identity)."""


def _check_xlm(config) -> None:
    """Refuse, by name, the XLM settings the body does not compute."""
    where = "XLMForSequenceClassification"
    if config.summary_type not in POOLS:
        raise RobustTextError(f"{where}: summary_type {config.summary_type!r} is not supported "
                              f"(robusttext supports {', '.join(POOLS)})")
    if not (config.summary_use_proj and config.summary_proj_to_labels):
        raise RobustTextError(f"{where}: robusttext certifies the summary projected to the "
                              "labels (summary_use_proj and summary_proj_to_labels true)")
    if config.summary_activation not in XLM_SUMMARY_ACTIVATIONS:
        raise RobustTextError(f"{where}: summary_activation {config.summary_activation!r} is "
                              "not supported (robusttext supports none, linear, tanh, relu)")
    if config.causal or not config.is_encoder:
        raise RobustTextError(f"{where}: causal or decoder configurations are not supported")


def build_xlm(hf):
    config, xlm = hf.config, hf.transformer
    _check_xlm(config)
    activation = _activation("gelu" if config.gelu_activation else "relu",
                             "XLMForSequenceClassification")
    layers = [EncoderLayer(xlm.attentions[i].q_lin, xlm.attentions[i].k_lin,
                           xlm.attentions[i].v_lin, xlm.attentions[i].out_lin,
                           xlm.layer_norm1[i], xlm.ffns[i].lin1, xlm.ffns[i].lin2,
                           xlm.layer_norm2[i], config.n_heads, activation)
              for i in range(config.n_layers)]
    summary_activation = XLM_SUMMARY_ACTIVATIONS[config.summary_activation]
    head = nn.Sequential(hf.sequence_summary.summary,
                         *([summary_activation()] if summary_activation else []))
    body = EncoderBody(xlm.position_embeddings, None, xlm.layer_norm_emb, layers, head, 0,
                       config.max_position_embeddings, pool=config.summary_type)
    return xlm.embeddings, body


_BUILDERS = {
    "BertForSequenceClassification": _build_bert,
    "DistilBertForSequenceClassification": _build_distilbert,
    "RobertaForSequenceClassification": _build_roberta,
    "XLMForSequenceClassification": build_xlm,
}


def from_transformers(hf: nn.Module) -> HFTextModel:
    """The text model of a ``transformers`` sequence classifier (see the module docstring);
    it shares the classifier's parameters and is in eval mode."""
    return HFTextModel(hf).eval()
