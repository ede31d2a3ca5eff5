"""Sentiment classifiers that follow the text-model contract (docs/CONTRACTS.md).

Every model has ``embedding`` (an ``nn.Embedding``, padding row 0 kept at zero) and ``body``
(called as ``body(embeddings [batch, length, dim], mask [batch, length] float)`` -> logits
``[batch, classes]``), and ``model(token_ids, mask) == model.body(model.embedding(token_ids),
mask)``. The bodies use only operations the bound engine has rules for, and their first layer
(a Conv1d on ``x.transpose(1, 2)`` or a per-token Linear) gets the engine's exact bound over a
substitution set. Both bodies also declare ``PooledBody`` (``features``, ``head``, ``window`` and
``linear_head``), so that ``budget-ibp`` (``robusttext.bounds.pooling``) can keep the budget
through the pooling.

- ``CharCNN`` (Huang et al. 2019): character embeddings, Conv1d, ReLU, masked mean pooling,
  linear.
- ``WordCNN`` (Jia et al. 2019): word embeddings, Conv1d of width 3, ReLU, masked mean pooling,
  linear.
- ``BagOfWords`` (Jia et al. 2019): per-token Linear + ReLU, masked mean pooling, then an MLP.

Jia et al. 2019's recipe for pretrained (frozen) word vectors: ``projection`` (a per-token
Linear + ReLU to that many features before the convolution; the bag of words' per-token layer
is already one) and ``dropout`` (on the word vectors of the clean forward pass while training;
the bounds and every eval-mode call see the model without it). ``CharCNN`` takes the same
``dropout`` on its character vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from robusttext.bounds.pooling import PooledBody
from robusttext.text.base import TextClassifier, check_sizes

__all__ = ["BagOfWords", "BagOfWordsBody", "CharCNN", "ConvBody", "TextClassifier", "WordCNN",
           "masked_mean"]


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence of ``h`` ``[batch, channels, length]`` where ``mask``
    ``[batch, length]`` is 1 -> ``[batch, channels]``."""
    return (h * mask.unsqueeze(1)).sum(2) / mask.sum(1, keepdim=True)


class ConvBody(nn.Module, PooledBody):
    """(Optionally a per-token Linear + ReLU,) Conv1d over the sequence, ReLU, masked mean
    pooling, linear.

    ``forward(x [batch, length, dim], mask [batch, length]) -> [batch, classes]``. The
    convolution pads ``width // 2`` on each side (odd widths keep the length).
    """

    def __init__(self, dim: int, filters: int, width: int, classes: int, projection: int = 0):
        super().__init__()
        # Optional per-token Linear + ReLU before the convolution (Jia et al. 2019). Without a
        # bias, so that a padding position (a zero vector) stays zero, like the convolution's
        # own zero padding: the logits of a sentence then do not depend on the batch's padding.
        self.project = nn.Linear(dim, projection, bias=False) if projection else None
        self.conv = nn.Conv1d(projection or dim, filters, width, padding=width // 2)
        self.out = nn.Linear(filters, classes)

    @property
    def window(self) -> tuple[int, int]:
        """Feature window ``o`` reads input positions ``o - left .. o + right``."""
        left = self.conv.padding[0]
        return left, self.conv.kernel_size[0] - 1 - left

    @property
    def linear_head(self) -> nn.Linear:
        return self.out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, length, dim] -> [batch, filters, length']``."""
        if self.project is not None:
            x = torch.relu(self.project(x))
        return torch.relu(self.conv(x.transpose(1, 2)))

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(pooled)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(masked_mean(self.features(x), mask))


class BagOfWordsBody(nn.Module, PooledBody):
    """Per-token Linear + ReLU, masked mean pooling, then Linear + ReLU + Linear.

    ``forward(x [batch, length, dim], mask [batch, length]) -> [batch, classes]``.
    """

    def __init__(self, dim: int, hidden: int, classes: int):
        super().__init__()
        self.token = nn.Linear(dim, hidden)
        self.hidden = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    window = (0, 0)  # each token's features read that token alone
    linear_head = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, length, dim] -> [batch, hidden, length]``."""
        return torch.relu(self.token(x)).transpose(1, 2)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(pooled)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(masked_mean(self.features(x), mask))


class CharCNN(TextClassifier):
    """Character CNN of Huang et al. 2019: 150-d embeddings, 100 filters of width 5 (and
    optionally ``dropout`` on the character vectors of the clean training pass)."""

    kind = "char-cnn"
    level = "char"

    def __init__(self, vocab_size: int, embed_dim: int = 150, filters: int = 100,
                 width: int = 5, classes: int = 2, dropout: float = 0.0):
        super().__init__(vocab_size, embed_dim, ConvBody(embed_dim, filters, width, classes),
                         dropout=dropout, filters=filters, width=width, classes=classes)


class WordCNN(TextClassifier):
    """Word CNN of Jia et al. 2019: (with ``projection``, a per-token Linear + ReLU to that
    many features,) Conv1d of width 3, ReLU, mean pooling, linear."""

    kind = "word-cnn"

    def __init__(self, vocab_size: int, embed_dim: int = 300, filters: int = 100,
                 width: int = 3, classes: int = 2, projection: int | None = None,
                 dropout: float = 0.0):
        check_sizes("WordCNN", filters=filters, width=width, classes=classes,
                    **({"projection": projection} if projection is not None else {}))
        extra = {"projection": projection} if projection is not None else {}
        super().__init__(vocab_size, embed_dim,
                         ConvBody(embed_dim, filters, width, classes, projection or 0),
                         dropout=dropout, filters=filters, width=width, classes=classes,
                         **extra)


class BagOfWords(TextClassifier):
    """Bag of words of Jia et al. 2019: per-token Linear + ReLU, mean pooling, MLP."""

    kind = "bow"

    def __init__(self, vocab_size: int, embed_dim: int = 300, hidden: int = 100,
                 classes: int = 2, dropout: float = 0.0):
        check_sizes("BagOfWords", hidden=hidden, classes=classes)
        super().__init__(vocab_size, embed_dim, BagOfWordsBody(embed_dim, hidden, classes),
                         dropout=dropout, hidden=hidden, classes=classes)
