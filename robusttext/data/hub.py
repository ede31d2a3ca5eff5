"""Data sets from the Hugging Face hub through ``datasets.load_dataset``.

Known ids: ``stanfordnlp/sst2`` (columns ``sentence``, ``label``; its ``test`` split has no
labels) and ``imdb`` (``text``, ``label``); any data set with a text and an integer label column
works. The cache and offline settings are those of ``datasets`` (``HF_DATASETS_OFFLINE=1``).
"""

from __future__ import annotations

from robusttext.data.examples import (
    Example,
    check_label_column,
    parse_label,
    parse_text,
    pick_text_column,
)
from robusttext.errors import RobustTextError

DEFAULT_SPLITS = ("validation", "test")


def read_hub(
    hub_id: str, split: str | None, text_column: str | None, label_column: str,
    limit: int | None = None,
) -> list[Example]:
    """Examples of one split of a hub data set (default: ``validation``, else ``test``)."""
    try:
        import datasets
    except ImportError:
        raise RobustTextError("loading hub data sets needs the `datasets` package") from None
    try:
        names = list(datasets.get_dataset_split_names(hub_id))
    except Exception as error:  # network, missing data set, bad id: datasets raises many types
        raise RobustTextError(f"cannot load data set {hub_id!r} from the Hugging Face hub (not "
                              f"a local .tsv/.csv/.jsonl file either): {error}") from None
    if split is None:
        split = next((s for s in DEFAULT_SPLITS if s in names), None)
        if split is None:
            raise RobustTextError(f"{hub_id}: choose a split among {', '.join(names)}")
    if split not in names:
        raise RobustTextError(f"{hub_id} has no split {split!r} (splits: {', '.join(names)})")
    try:
        data = datasets.load_dataset(hub_id, split=split)
    except Exception as error:
        raise RobustTextError(f"cannot load split {split!r} of {hub_id!r}: {error}") from None
    where = f"{hub_id}[{split}]"
    columns = list(data.column_names)
    text_name = pick_text_column(columns, text_column, where)
    label_name = check_label_column(columns, label_column, where)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    return [
        Example(parse_text(text, f"{where}:{i}"), parse_label(label, f"{where}:{i}"),
                f"{where}:{i}")
        for i, (text, label) in enumerate(zip(data[text_name], data[label_name]))
    ]
