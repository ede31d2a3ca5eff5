"""``TextModelBundle``: a loaded text model with everything a certificate depends on. A leaf
module, so that the loaders of every kind of folder (``text.io`` for robusttext's checkpoints,
``text.hf.folders`` for ``transformers`` folders) build bundles without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robusttext.perturb import PerturbationSpace, Vocabulary
from robusttext.text.base import TextClassifier


@dataclass
class TextModelBundle:
    """A loaded text model with its vocabulary, perturbation space and metadata.

    ``model`` is in eval mode on the requested device; ``meta`` is the checkpoint's JSON
    (``training_config``, ``metrics``, ``model_config``, ...); ``name`` is the shipped name or
    the folder name; ``path`` the checkpoint folder.
    """

    model: TextClassifier
    vocab: Vocabulary
    space: PerturbationSpace
    meta: dict[str, Any]
    name: str
    path: Path
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.meta["kind"]
