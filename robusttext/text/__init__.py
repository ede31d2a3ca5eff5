"""Sentiment models that follow the text-model contract, and their checkpoints.

>>> bundle = load_text_model("char-flips")          # a shipped model, or a checkpoint folder
>>> batch = bundle.space.encode(["a gripping film ."], bundle.vocab)
>>> logits = bundle.model(batch.token_ids, batch.mask)
"""

from robusttext.text.base import TextClassifier
from robusttext.text.contract import check_text_model, wrap_text_model
from robusttext.text.embeddings import pretrained_embeddings
from robusttext.text.io import (
    SHIPPED_MODELS,
    TextModelBundle,
    check_space_matches,
    load_text_model,
    save_text_model,
    shipped_model_path,
)
from robusttext.text.kinds import MODEL_KINDS, build_model
from robusttext.text.models import BagOfWords, CharCNN, WordCNN
from robusttext.text.sequence_models import BiLSTM, TransformerClassifier
from robusttext.text.vectors import WordVectors, load_vectors, table_for_vocabulary

__all__ = [
    "MODEL_KINDS",
    "SHIPPED_MODELS",
    "BagOfWords",
    "BiLSTM",
    "CharCNN",
    "TextClassifier",
    "TextModelBundle",
    "TransformerClassifier",
    "WordVectors",
    "WordCNN",
    "build_model",
    "check_space_matches",
    "check_text_model",
    "load_text_model",
    "load_vectors",
    "pretrained_embeddings",
    "save_text_model",
    "shipped_model_path",
    "table_for_vocabulary",
    "wrap_text_model",
]
