"""Local data files: TSV (header, tab-separated, no quoting), CSV (header) and JSONL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from robusttext.data.records import (
    Example,
    check_label_column,
    parse_label,
    parse_text,
    pick_text_column,
)
from robusttext.errors import RobustTextError


def read_file(
    path: Path, text_column: str | None, label_column: str, limit: int | None = None
) -> list[Example]:
    """Examples of one local file, chosen by its suffix (``.tsv``, ``.csv``, ``.jsonl``)."""
    if not path.is_file():
        raise RobustTextError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RobustTextError(f"{path}: cannot read: {error}") from None
    if not text.strip():
        raise RobustTextError(f"{path}: the file is empty")
    if suffix == ".jsonl":
        return _read_jsonl(path, text, text_column, label_column, limit)
    if suffix in (".tsv", ".csv"):
        return _read_table(path, text, suffix, text_column, label_column, limit)
    raise RobustTextError(f"{path}: unknown data file type {suffix!r}; use .tsv, .csv or .jsonl")


def _read_table(path, text, suffix, text_column, label_column, limit) -> list[Example]:
    lines = text.splitlines()
    if suffix == ".tsv":
        rows = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        rows = csv.reader(lines)
    try:
        header = [h.strip() for h in next(rows)]
        text_name = pick_text_column(header, text_column, f"{path}: header")
        label_name = check_label_column(header, label_column, f"{path}: header")
        text_at, label_at = header.index(text_name), header.index(label_name)
        examples = []
        for row in rows:
            line = rows.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            where = f"{path}:{line}"
            if len(row) != len(header):
                raise RobustTextError(f"{where}: {len(row)} fields, but the header has "
                                      f"{len(header)}")
            examples.append(Example(parse_text(row[text_at], where),
                                    parse_label(row[label_at], where), where))
            if limit is not None and len(examples) >= limit:
                break
    except csv.Error as error:
        raise RobustTextError(f"{path}:{rows.line_num}: {error}") from None
    return examples


def _read_jsonl(path, text, text_column, label_column, limit) -> list[Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise RobustTextError(f"{where}: not valid JSON: {error.msg}") from None
        if not isinstance(row, dict):
            raise RobustTextError(f"{where}: expected a JSON object, got {type(row).__name__}")
        columns = list(row)
        text_name = pick_text_column(columns, text_column, where)
        label_name = check_label_column(columns, label_column, where)
        examples.append(Example(parse_text(row[text_name], where),
                                parse_label(row[label_name], where), where))
        if limit is not None and len(examples) >= limit:
            break
    return examples
