"""Labelled sentences for training: ``robusttext.data.load_examples`` with a default split
(``load_training_examples``).

A local file (``.tsv``, ``.csv``, ``.jsonl``) is read whole; a hub id (e.g. ``stanfordnlp/sst2``)
is read at ``split``. Labels must be classes ``0 .. classes-1``; a bad row, a missing column or an
empty set raises RobustTextError naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

from robusttext.data import Example, check_labels, load_examples
from robusttext.data.records import LOCAL_SUFFIXES


def load_training_examples(source: str | Path, split: str = "train",
                           classes: int = 2) -> list[Example]:
    """Examples from a local file or split ``split`` of a hub data set, labels checked."""
    path = Path(source)
    local = path.suffix.lower() in LOCAL_SUFFIXES or path.is_file()
    examples = load_examples(source, None if local else split)
    check_labels(examples, classes)
    return examples


__all__ = ["Example", "load_training_examples"]
