"""Labelled sentences for training: GLUE-style TSV files or a Hugging Face hub id.

A TSV file has a header line naming a ``sentence`` and a ``label`` column (other columns are
ignored) and one example per line; labels are integers ``0 .. classes-1``. A bad row raises
RobustTextError naming the file and line. A hub id (e.g. ``stanfordnlp/sst2``) is read with
``datasets.load_dataset(id, split=split)`` and needs ``sentence`` and ``label`` columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robusttext.errors import RobustTextError


@dataclass(frozen=True)
class Example:
    """One labelled sentence."""

    sentence: str
    label: int


def _check_label(raw: str, where: str, classes: int) -> int:
    try:
        label = int(raw.strip())
    except ValueError:
        raise RobustTextError(f"{where}: label {raw.strip()!r} is not an integer") from None
    if not 0 <= label < classes:
        raise RobustTextError(f"{where}: label {label} is outside 0..{classes - 1}")
    return label


def read_tsv(path: str | Path, classes: int = 2) -> list[Example]:
    """Examples of a GLUE-style TSV file (header with ``sentence`` and ``label``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RobustTextError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RobustTextError(f"{path}: cannot read: {error}") from None
    if not lines:
        raise RobustTextError(f"{path}: the file is empty (expected a header line "
                              "'sentence<TAB>label')")
    header = lines[0].split("\t")
    if "sentence" not in header or "label" not in header:
        raise RobustTextError(f"{path}, line 1: the header must name a 'sentence' and a "
                              f"'label' column, got {lines[0]!r}")
    s_col, l_col = header.index("sentence"), header.index("label")
    examples = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{path}, line {number}"
        if len(fields) != len(header):
            raise RobustTextError(f"{where}: expected {len(header)} tab-separated fields, got "
                                  f"{len(fields)}")
        sentence = fields[s_col].strip()
        if not sentence:
            raise RobustTextError(f"{where}: the sentence is empty")
        examples.append(Example(sentence, _check_label(fields[l_col], where, classes)))
    return examples


def load_examples(source: str | Path, split: str = "train", classes: int = 2) -> list[Example]:
    """Examples from a TSV file or, if ``source`` is not an existing path, a hub data set.

    Raises RobustTextError when the result is empty.
    """
    path = Path(source).expanduser()
    if path.is_file():
        examples = read_tsv(path, classes)
    elif path.suffix.lower() in (".tsv", ".txt") or path.is_dir() or str(source).startswith(
        (".", "/", "~")
    ):
        raise RobustTextError(f"{source}: no such data file")
    else:
        examples = _load_hub(str(source), split, classes)
    if not examples:
        raise RobustTextError(f"{source} ({split}): the data set is empty")
    return examples


def _load_hub(name: str, split: str, classes: int) -> list[Example]:
    """Examples of split ``split`` of the hub data set ``name`` (columns sentence, label)."""
    try:
        from datasets import load_dataset

        data = load_dataset(name, split=split)
    except Exception as error:  # datasets raises many types for a missing or offline set
        raise RobustTextError(f"cannot load data set {name!r} split {split!r}: {error}") \
            from None
    for column in ("sentence", "label"):
        if column not in data.column_names:
            raise RobustTextError(f"data set {name!r} has no {column!r} column "
                                  f"(columns: {', '.join(data.column_names)})")
    return [
        Example(str(s).strip(), _check_label(str(y), f"{name} {split} row {i}", classes))
        for i, (s, y) in enumerate(zip(data["sentence"], data["label"]))
    ]
