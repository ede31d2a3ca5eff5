"""Certified training of text models: losses, schedules, the loop, evaluation, the command.

>>> from robusttext.train import TrainConfig, train
>>> metrics = train(TrainConfig(model="char-cnn", train="train.tsv", dev="dev.tsv",
...                             sources=["qwerty"], budget=1, robust_weight=0.5))
"""

from robusttext.train.config import TrainConfig
from robusttext.train.data import Example, load_training_examples
from robusttext.train.evaluate import evaluate
from robusttext.train.loss import mixed_margin_lower_bounds, robust_loss, worst_case_loss
from robusttext.train.schedule import Schedule
from robusttext.train.trainer import build_space, train

__all__ = [
    "Example",
    "Schedule",
    "TrainConfig",
    "build_space",
    "evaluate",
    "load_training_examples",
    "mixed_margin_lower_bounds",
    "robust_loss",
    "train",
    "worst_case_loss",
]
