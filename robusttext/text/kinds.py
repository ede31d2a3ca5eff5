"""The registry of robusttext's text models by kind: ``MODEL_KINDS`` and ``build_model``.

The one module that knows every model module: ``models`` (char-cnn, word-cnn, bow),
``sequence_models`` (lstm, transformer), ``hf.trainable`` (bert) and ``hf.xlm`` (xlm;
transformers is imported only when one is built).
"""

from __future__ import annotations

from typing import Any

from robusttext.errors import RobustTextError
from robusttext.text.base import TextClassifier
from robusttext.text.hf.trainable import BertClassifier
from robusttext.text.hf.xlm import XlmClassifier
from robusttext.text.models import BagOfWords, CharCNN, WordCNN
from robusttext.text.sequence_models import BiLSTM, TransformerClassifier

MODEL_KINDS: dict[str, type[TextClassifier]] = {
    cls.kind: cls
    for cls in (CharCNN, WordCNN, BagOfWords, BiLSTM, TransformerClassifier, BertClassifier,
              XlmClassifier)
}


def build_model(kind: str, **config: Any) -> TextClassifier:
    """The model of ``kind`` (one of ``MODEL_KINDS``) with ``config``."""
    if kind not in MODEL_KINDS:
        raise RobustTextError(f"unknown text model {kind!r}; choose one of "
                              f"{', '.join(MODEL_KINDS)}")
    try:
        return MODEL_KINDS[kind](**config)
    except TypeError as error:
        raise RobustTextError(f"bad configuration for a {kind} model: {error}") from None
