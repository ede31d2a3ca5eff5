"""The models shipped inside the package (folders under ``robusttext/assets/models``), text and
vision in one registry: name -> ``ShippedModel``. Torch-free, so that the command line can name
them without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robusttext.errors import RobustTextError

MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"


@dataclass(frozen=True)
class ShippedModel:
    """``domain``: ``"text"`` (``robusttext.text.load_text_model``) or ``"vision"``
    (``robusttext.vision.io.load_model``); ``description``: what it was trained for;
    ``by_default``: see below."""

    domain: str
    description: str
    by_default: bool = True
    """Certified by ``robusttext certify`` with no ``--model``: not a ``transformers`` folder,
    whose import of ``transformers`` alone takes about 3 s of the main command's 10."""


REGISTRY: dict[str, ShippedModel] = {
    "char-flips": ShippedModel(
        "text", "character CNN trained to be robust to one QWERTY-neighbour character flip "
                "(the project's keyboard map)"),
    "char-enkey": ShippedModel(
        "text", "character CNN trained to be robust to one flip of Huang et al. 2019's "
                "one-substitute letter map"),
    "word-enkey": ShippedModel(
        "text", "bag of words on GloVe 6B 50-d vectors trained to be robust to one flip of "
                "Huang et al. 2019's letter map; a misspelt word reads as the word it varies"),
    "word-flips": ShippedModel(
        "text", "BiLSTM on GloVe 6B 50-d vectors trained to be robust to one QWERTY-neighbour "
                "character flip; a misspelt word reads as the word it varies"),
    "word-wordnet": ShippedModel(
        "text", "word CNN trained to be robust to up to 3 WordNet synonym substitutions"),
    "word-counterfitted": ShippedModel(
        "text", "bag of words on GloVe 6B 50-d vectors (fine-tuned) trained to be robust to up "
                "to 3 counter-fitted synonym substitutions (Jia et al. 2019's space)"),
    "word-counterfitted-lstm": ShippedModel(
        "text", "BiLSTM on GloVe 6B 50-d vectors (fine-tuned) trained to be robust to up to 3 "
                "counter-fitted synonym substitutions"),
    "xlm-counterfitted": ShippedModel(
        "text", "XLM-style transformers model (XLMForSequenceClassification, mean summary) on "
                "GloVe 6B 50-d vectors (fine-tuned) trained to be robust to up to 3 "
                "counter-fitted synonym substitutions; a standard transformers folder",
        by_default=False),
    "fmnist-dm-small": ShippedModel(
        "vision", "DM-small trained with CROWN-IBP at eps 0.1 on Fashion-MNIST"),
}


def shipped_models(domain: str) -> dict[str, ShippedModel]:
    """The shipped models of ``domain`` (``"text"`` or ``"vision"``), by name."""
    return {name: model for name, model in REGISTRY.items() if model.domain == domain}


def default_models(domain: str) -> list[str]:
    """The shipped models of ``domain`` that a run with no ``--model`` certifies."""
    return [name for name, model in shipped_models(domain).items() if model.by_default]


def shipped_model_path(name: str, domain: str | None = None) -> Path:
    """The folder of the shipped model ``name`` (of ``domain``, when given)."""
    known = REGISTRY if domain is None else shipped_models(domain)
    if name not in known:
        raise RobustTextError(f"unknown shipped model {name!r}; shipped: {', '.join(known)}")
    return MODELS_DIR / name
