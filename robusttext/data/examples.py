"""``load_examples``: one entry point for hub data sets and local files."""

from __future__ import annotations

from pathlib import Path

from robusttext.data.files import read_file
from robusttext.data.hub import read_hub
from robusttext.data.records import LABEL_COLUMN, LOCAL_SUFFIXES, Example
from robusttext.errors import RobustTextError


def load_examples(
    source: str | Path,
    split: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    limit: int | None = None,
) -> list[Example]:
    """Labelled sentences from a local file or a Hugging Face hub data set.

    ``source``: a path ending in ``.tsv`` (header row, tab-separated, no quoting), ``.csv``
    (header row) or ``.jsonl`` (one object per line), or a hub id such as ``stanfordnlp/sst2``
    or ``imdb``, or a folder of split files such as ``validation.parquet`` (both loaded with
    ``datasets.load_dataset``; ``split`` defaults to ``validation`` when the data set has one,
    else ``test``). Columns: text from ``text_column`` (default the
    first of ``sentence``, ``text`` present), label from ``label_column`` (default ``label``);
    labels are integers >= 0. ``limit``: keep the first N examples.

    Raises RobustTextError for a missing file, an empty file, a missing column, a label that is
    not an integer >= 0 or a bad row (the message names the line).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise RobustTextError(f"limit must be a positive integer, got {limit!r}")
    columns = (text_column, label_column or LABEL_COLUMN)
    path = Path(source)
    if path.suffix.lower() in LOCAL_SUFFIXES or path.is_file():
        if split is not None:
            raise RobustTextError(f"a split ({split!r}) applies to hub data sets, not to the "
                                  f"local file {path}")
        examples = read_file(path, *columns, limit=limit)
    elif str(source).startswith(("/", ".", "~")) and not path.exists():
        raise RobustTextError(f"{source}: no such file or folder (a path, not a hub id)")
    else:
        examples = read_hub(str(source), split, *columns, limit=limit)
    if not examples:
        raise RobustTextError(f"{source}: no examples")
    return examples
