"""Sentiment models that follow the text-model contract, and their checkpoints.

>>> bundle = load_text_model("char-flips")          # a shipped model, or a checkpoint folder
>>> batch = bundle.space.encode(["a gripping film ."], bundle.vocab)
>>> logits = bundle.model(batch.token_ids, batch.mask)
"""

from robusttext.lazy import lazy_exports

# Imported on first use: they load torch, which the command line's --help does without.
_LAZY = {
    "TextClassifier": "robusttext.text.base",
    "check_text_model": "robusttext.text.contract",
    "wrap_text_model": "robusttext.text.contract",
    "pretrained_embeddings": "robusttext.text.embeddings",
    "SHIPPED_MODELS": "robusttext.text.io",
    "TextModelBundle": "robusttext.text.io",
    "check_space_matches": "robusttext.text.io",
    "load_text_model": "robusttext.text.io",
    "save_text_model": "robusttext.text.io",
    "shipped_model_path": "robusttext.text.io",
    "MODEL_KINDS": "robusttext.text.kinds",
    "build_model": "robusttext.text.kinds",
    "BagOfWords": "robusttext.text.models",
    "CharCNN": "robusttext.text.models",
    "WordCNN": "robusttext.text.models",
    "BiLSTM": "robusttext.text.sequence_models",
    "TransformerClassifier": "robusttext.text.sequence_models",
    "WordVectors": "robusttext.text.vectors",
    "load_vectors": "robusttext.text.vectors",
    "table_for_vocabulary": "robusttext.text.vectors",
}

lazy_exports(__name__, _LAZY)


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
