"""The bound rules, by family, and the registry that maps each covered object to its rule.

Importing this package registers every rule (docs/RULES.md says how to add one):

- ``affine``: Linear, Conv, BatchNorm (eval), add/sub/neg, scaling, ``x @ W``;
- ``activations``: ReLU, LeakyReLU, sigmoid, tanh, GELU, exp, reciprocal, sqrt, square;
- ``products``: products of two bounded tensors, softmax;
- ``rearrangements``: view, reshape, permute, slicing, cat, stack, pad, dropout (eval);
- ``reductions``: sum, mean, average and max pooling;
- ``normalization``: LayerNorm, rewritten into primitives when a model is traced.

The graph rewrites live beside the rules they serve: ``decompose_layer_norm``
(normalization.py) and ``fuse_sequence_conv`` (affine.py, the sequence convolution's rule).
"""

import torch.nn as nn

from robusttext.bounds.rules import (  # noqa: F401  (registration on import)
    activations,
    affine,
    normalization,
    products,
    rearrangements,
    reductions,
)
from robusttext.bounds.rules.affine import conv1d_over_sequence, fuse_sequence_conv
from robusttext.bounds.rules.common import Rule, known_finite, sound, widen
from robusttext.bounds.rules.normalization import decompose_layer_norm
from robusttext.bounds.rules.registry import (
    bind,
    covered_modules,
    lookup,
    refuse_by_name,
    register,
    writes_input,
)

refuse_by_name(
    (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
     nn.TransformerEncoder, nn.Transformer),
    "write the attention out with nn.Linear projections, torch.matmul and torch.softmax "
    "(as robusttext.text.sequence_models.TransformerBody does), which robusttext bounds",
)
refuse_by_name(
    (nn.LSTM, nn.GRU, nn.RNN),
    "unroll the recurrence with nn.Linear gates and torch.sigmoid / torch.tanh (as "
    "robusttext.text.sequence_models.BiLSTMBody does), which robusttext bounds",
)

__all__ = ["Rule", "bind", "conv1d_over_sequence", "covered_modules", "decompose_layer_norm",
           "fuse_sequence_conv", "known_finite", "lookup", "refuse_by_name", "register", "sound",
           "widen", "writes_input"]
