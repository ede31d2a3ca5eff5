"""Hugging Face ``transformers`` sequence classifiers in robusttext: load, certify, save.

>>> from transformers import AutoModelForSequenceClassification, AutoTokenizer
>>> from robusttext.perturb import PerturbationSpace
>>> from robusttext.text.hf import certify_transformers
>>> model = AutoModelForSequenceClassification.from_pretrained("my-bert-folder")
>>> tokenizer = AutoTokenizer.from_pretrained("my-bert-folder")
>>> space = PerturbationSpace(["counterfitted"], budget=3)
>>> result = certify_transformers(model, tokenizer, validation_dataset, space)
>>> result.summary(3).verified_accuracy, result.settings["dropped_candidates"]

``certify_transformers("ORG/NAME", None, validation_dataset, space)`` loads a folder or a hub id
itself (``from_pretrained``: the hub, else the Hugging Face cache). ``validation_dataset`` is a
``datasets.Dataset`` with a text column (``sentence`` or ``text``)
and an integer ``label`` column, or a list of ``(text, label)`` pairs. Supported architectures:
``SUPPORTED_ARCHITECTURES``; the word-piece handling is ``robusttext.perturb.subwords``.
"""

from robusttext.text.hf.api import certify_transformers, examples_from_dataset
from robusttext.text.hf.folders import (
    ROBUSTTEXT_FILE,
    is_transformers_folder,
    load_transformers_folder,
    load_transformers_hub,
    save_transformers_folder,
)
from robusttext.text.hf.model import (
    SUPPORTED_ARCHITECTURES,
    EncoderBody,
    HFTextModel,
    from_transformers,
)

__all__ = [
    "ROBUSTTEXT_FILE",
    "SUPPORTED_ARCHITECTURES",
    "EncoderBody",
    "HFTextModel",
    "certify_transformers",
    "examples_from_dataset",
    "from_transformers",
    "is_transformers_folder",
    "load_transformers_folder",
    "load_transformers_hub",
    "save_transformers_folder",
]
