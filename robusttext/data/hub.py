"""Data sets from the Hugging Face hub through ``datasets.load_dataset``.

Known ids: ``stanfordnlp/sst2`` (columns ``sentence``, ``label``; its ``test`` split has no
labels) and ``imdb`` (``text``, ``label``); any data set with a text and an integer label column
works. The cache and offline settings are those of ``datasets`` (``HF_DATASETS_OFFLINE=1``).

Before asking the hub, one TCP connection to it (or to the HTTPS proxy) is tried with a short
timeout, so that a machine without network fails within seconds, naming the local
alternatives, instead of after the hub client's retries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from robusttext.data.records import (
    Example,
    check_label_column,
    parse_label,
    parse_text,
    pick_text_column,
)
from robusttext.errors import RobustTextError

DEFAULT_SPLITS = ("validation", "test")
PROBE_SECONDS = 3.0
OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def hub_address() -> tuple[str, int]:
    """``(host, port)`` the hub is reached through: the HTTPS proxy when one is set, else the
    hub endpoint (``HF_ENDPOINT``, default huggingface.co)."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    default = 443 if url.scheme == "https" else 80
    return url.hostname or "huggingface.co", url.port or default


TEXT_ALTERNATIVES = ("give a local .tsv/.csv/.jsonl file instead (SST-2: a sentence<TAB>label "
                     "file such as dev.tsv)")


def offline() -> bool:
    """Offline mode is set (``HF_DATASETS_OFFLINE`` or ``HF_HUB_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in OFFLINE_VARIABLES)


def unreachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Why the hub cannot be reached (``"host:port: reason"``), tried with one TCP connection
    of at most ``timeout`` seconds; None when it answers."""
    host, port = hub_address()
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return f"{host}:{port}: {error.strerror or type(error).__name__}"
    return None


def offline_unless_reachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Before ``transformers`` or ``datasets`` is imported: when the hub cannot be reached,
    set ``HF_HUB_OFFLINE=1`` and ``HF_DATASETS_OFFLINE=1`` so that they read their caches at
    once instead of retrying for half a minute; returns why (None: reachable or already
    offline)."""
    if offline():
        return None
    reason = unreachable(timeout)
    if reason is not None:
        for variable in OFFLINE_VARIABLES:
            os.environ[variable] = "1"
    return reason


def check_hub_reachable(hub_id: str, timeout: float = PROBE_SECONDS,
                        alternatives: str = TEXT_ALTERNATIVES) -> None:
    """RobustTextError within ``timeout`` seconds when the hub cannot be reached; nothing in
    offline mode (``HF_DATASETS_OFFLINE=1``: ``datasets`` reads its cache). ``alternatives``:
    what to give instead, in the message."""
    if offline():
        return
    reason = unreachable(timeout)
    if reason is not None:
        raise RobustTextError(
            f"{hub_id!r} is not a local file, and the Hugging Face hub cannot be reached "
            f"({reason}); {alternatives}, or set HF_DATASETS_OFFLINE=1 to read "
            "a data set already in the datasets cache")


def read_hub(
    hub_id: str, split: str | None, text_column: str | None, label_column: str,
    limit: int | None = None,
) -> list[Example]:
    """Examples of one split of a hub data set (default: ``validation``, else ``test``)."""
    if not Path(hub_id).is_dir():
        check_hub_reachable(hub_id)
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
