"""The base of robusttext's own text models: ``TextClassifier`` (``embedding`` + ``body``,
``config()`` rebuilds the model) and ``check_sizes``. The model modules (``models``,
``sequence_models``, ``hf.trainable``) build on it; ``robusttext.text.kinds`` registers them by
kind."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robusttext.errors import RobustTextError


class TextClassifier(nn.Module):
    """Base of the text models: ``embedding`` + ``body``; ``config()`` rebuilds the model."""

    kind: ClassVar[str] = ""
    level: ClassVar[str] = "word"

    def __init__(self, vocab_size: int, embed_dim: int, body: nn.Module, dropout: float = 0.0,
                 **config: Any):
        super().__init__()
        check_sizes(type(self).__name__, vocab_size=vocab_size, embed_dim=embed_dim, **config)
        if vocab_size < 2:
            raise RobustTextError(f"{type(self).__name__}: vocab_size must be at least 2")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
                0.0 <= dropout < 1.0):
            raise RobustTextError(f"{type(self).__name__}: dropout must lie in [0, 1), got "
                                  f"{dropout!r}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.body = body
        self.dropout = float(dropout)
        self._config = {"vocab_size": vocab_size, "embed_dim": embed_dim, **config}
        if self.dropout:
            self._config["dropout"] = self.dropout

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model."""
        return dict(self._config)

    def write_extra_files(self, directory, vocab, space, training_config: dict | None,
                          metrics: dict | None) -> None:
        """Called by ``save_text_model`` after the checkpoint is written in ``directory``: a
        model that is also another tool's folder writes those files here (none by default)."""

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``token_ids [batch, length]`` long, ``mask [batch, length]`` float -> logits
        ``[batch, classes]``. In training mode ``dropout`` applies to the word vectors."""
        x = self.embedding(token_ids)
        if self.dropout and self.training:
            x = F.dropout(x, self.dropout, training=True)
        return self.body(x, mask)


def check_sizes(owner: str, **sizes: Any) -> None:
    """Refuse any size that is not a positive integer."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RobustTextError(f"{owner}: {name} must be a positive integer, got {value!r}")
