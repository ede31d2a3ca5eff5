"""Certified training of text models: losses, schedules, the loop, evaluation, the command.

>>> from robusttext.train import TrainConfig, train
>>> metrics = train(TrainConfig(model="char-cnn", train="train.tsv", dev="dev.tsv",
...                             sources=["qwerty"], budget=1, robust_weight=0.5))
"""

from robusttext.lazy import lazy_exports
from robusttext.train.config import TrainConfig

# Imported on first use: they load torch, which the command line's --help does without.
_LAZY = {
    "Example": "robusttext.train.data",
    "load_training_examples": "robusttext.train.data",
    "evaluate": "robusttext.train.evaluate",
    "text_margin_bound": "robusttext.train.loss",
    "robust_loss": "robusttext.train.loss",
    "worst_case_loss": "robusttext.train.loss",
    "Schedule": "robusttext.train.schedule",
    "build_space": "robusttext.train.trainer",
    "train": "robusttext.train.trainer",
}

lazy_exports(__name__, _LAZY)

__all__ = [
    "Example",
    "Schedule",
    "TrainConfig",
    "build_space",
    "evaluate",
    "load_training_examples",
    "robust_loss",
    "text_margin_bound",
    "train",
    "worst_case_loss",
]
