"""Labelled sentences and the checks of their parts: ``Example``, parsing a label or a text,
picking the columns. The readers (``files``, ``hub``) and ``load_examples`` build on these."""

from __future__ import annotations

from dataclasses import dataclass, field

from robusttext.errors import RobustTextError

LOCAL_SUFFIXES = (".tsv", ".csv", ".jsonl")
TEXT_COLUMNS = ("sentence", "text")
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class Example:
    """A sentence and its integer class label; ``origin`` says where it came from
    (``"dev.tsv:12"``, ``"stanfordnlp/sst2[validation]:3"``) for error messages."""

    text: str
    label: int
    origin: str = field(default="", compare=False)


def parse_label(value: object, where: str) -> int:
    """An integer label >= 0 from an int or a string of digits."""
    if isinstance(value, bool):
        raise RobustTextError(f"{where}: label {value!r} is not an integer")
    if isinstance(value, int):
        label = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        label = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        label = int(value)
    else:
        raise RobustTextError(f"{where}: label {value!r} is not an integer")
    if label < 0:
        raise RobustTextError(f"{where}: label {label} is negative (an unlabelled split?); "
                              "labels are class indices 0, 1, ...")
    return label


def parse_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise RobustTextError(f"{where}: text {value!r} is not a string")
    if not value.strip():
        raise RobustTextError(f"{where}: the text is empty")
    return value


def pick_text_column(columns: list[str], wanted: str | None, where: str) -> str:
    """``wanted`` if present, else the first of ``sentence``/``text``; RobustTextError if none."""
    if wanted is not None:
        if wanted not in columns:
            raise RobustTextError(f"{where}: no text column {wanted!r} (columns: "
                                  f"{', '.join(columns)})")
        return wanted
    for name in TEXT_COLUMNS:
        if name in columns:
            return name
    raise RobustTextError(f"{where}: no text column (looked for {', '.join(TEXT_COLUMNS)}; "
                          f"columns: {', '.join(columns)}); name it with --text-column "
                          "(text_column= from Python)")


def check_label_column(columns: list[str], wanted: str, where: str) -> str:
    if wanted not in columns:
        raise RobustTextError(f"{where}: no label column {wanted!r} (columns: "
                              f"{', '.join(columns) or 'none'}); certification and training need "
                              "labels")
    return wanted


def check_labels(examples: list[Example], num_classes: int) -> None:
    """RobustTextError naming the first example whose label is not a class of the model."""
    for example in examples:
        if not 0 <= example.label < num_classes:
            where = example.origin or repr(example.text[:40])
            raise RobustTextError(f"{where}: label {example.label} is out of range for a model "
                                  f"with {num_classes} classes (0..{num_classes - 1})")
