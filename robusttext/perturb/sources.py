"""What a substitution source is, the in-memory synonym table, and the registry of sources.

A source proposes substitutes for one token. Word-level sources implement
``word_candidates(word) -> tuple[str, ...]`` (never containing ``word`` itself); a source that
also works on characters (``CharacterFlips``) implements ``char_candidates(char)``. Every source
serialises to JSON (``to_json`` / ``source_from_json``) so a perturbation space can be rebuilt
exactly.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import ClassVar

from robusttext.errors import RobustTextError

SOURCE_KINDS: dict[str, type[SubstitutionSource]] = {}


class SubstitutionSource(ABC):
    """Base of every source. ``levels`` lists the levels ("word", "char") it supports."""

    kind: ClassVar[str] = ""
    levels: ClassVar[frozenset[str]] = frozenset({"word"})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            SOURCE_KINDS[cls.kind] = cls

    @property
    def name(self) -> str:
        return self.kind

    @abstractmethod
    def word_candidates(self, word: str) -> tuple[str, ...]:
        """Substitutes for ``word``, in the source's order, without ``word`` itself."""

    def char_candidates(self, char: str) -> tuple[str, ...]:
        raise RobustTextError(f"source {self.name!r} has no character-level substitutions")

    @abstractmethod
    def to_json(self) -> dict:
        """A JSON object with a ``kind`` key that ``source_from_json`` turns back into a source."""

    @classmethod
    @abstractmethod
    def from_json(cls, obj: dict) -> SubstitutionSource: ...

    def restrict_to(
        self, vocab_tokens: Iterable[str], keep: Callable[[str], bool]
    ) -> SubstitutionSource:
        """A small, self-contained source that gives the same candidate ids under a vocabulary.

        ``vocab_tokens``: every string with an id of its own under the vocabulary (its tokens
        and aliases, ``Vocabulary.known``). ``keep(candidate)``: whether the space's
        filters let ``candidate`` through. Sources that are already small return ``self``.
        """
        return self


def _check_table(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    """Validate a word -> list-of-words mapping, lower-case it, drop self-references."""
    if not isinstance(raw, Mapping):
        raise RobustTextError(
            f"{where}: a neighbour table is a JSON object word -> list of words, "
            f"got {type(raw).__name__}"
        )
    table: dict[str, list[str]] = {}
    for key, values in raw.items():
        if not isinstance(key, str) or not key:
            raise RobustTextError(f"{where}: key {key!r} is not a non-empty word")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise RobustTextError(
                f"{where}: the value of key {key!r} must be a list of strings, got {values!r}"
            )
        word = key.lower()
        merged = table.setdefault(word, [])
        for value in values:
            value = value.lower()
            if value and value != word and value not in merged:
                merged.append(value)
    return {word: tuple(values) for word, values in table.items()}


def read_json_file(path: str | Path) -> object:
    """Parse a JSON file; a malformed file raises RobustTextError naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobustTextError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RobustTextError(f"{path}: cannot read: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RobustTextError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None


class SynonymTable(SubstitutionSource):
    """An in-memory word -> synonyms table (what a checkpoint carries; needs no download)."""

    kind = "synonym_table"

    def __init__(self, table: Mapping[str, Iterable[str]], label: str = "synonym_table"):
        self.table = _check_table({k: list(v) for k, v in table.items()}, label)
        self.label = label

    @property
    def name(self) -> str:
        return self.label

    def __len__(self) -> int:
        return len(self.table)

    def word_candidates(self, word: str) -> tuple[str, ...]:
        return self.table.get(word, ())

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "table": {word: list(values) for word, values in sorted(self.table.items())},
        }

    @classmethod
    def from_json(cls, obj: dict) -> SynonymTable:
        table = _check_table(obj.get("table"), "synonym table")
        return cls(table, label=obj.get("label", cls.kind))

    @classmethod
    def from_path(cls, path: str | Path) -> SynonymTable:
        return cls(_check_table(read_json_file(path), str(path)), label=Path(path).name)

    def restrict_to(self, vocab_tokens, keep):
        return restrict_table(self.table.items(), set(vocab_tokens), keep, self.name)


def restrict_table(
    items: Iterable[tuple[str, tuple[str, ...]]],
    vocab: set[str],
    keep: Callable[[str], bool],
    label: str,
) -> SynonymTable:
    """Keep what matters under ``vocab``: entries whose word is in the vocabulary or has an
    in-vocabulary candidate; in each list, the in-vocabulary candidates and the first
    out-of-vocabulary one that passes ``keep`` (every out-of-vocabulary candidate maps to the
    same unknown id), in their original order. Candidate ids are unchanged under ``vocab``."""
    restricted: dict[str, list[str]] = {}
    for word, values in items:
        kept: list[str] = []
        has_oov = False
        for value in values:
            if value in vocab:
                kept.append(value)
            elif not has_oov and keep(value):
                kept.append(value)
                has_oov = True
        if kept and (word in vocab or len(kept) > int(has_oov)):
            restricted[word] = kept
    suffix = " (restricted to a vocabulary)"
    return SynonymTable(restricted, label=label if label.endswith(suffix) else label + suffix)


def source_from_json(obj: dict) -> SubstitutionSource:
    """Rebuild a source from ``SubstitutionSource.to_json()`` output."""
    if not isinstance(obj, dict) or obj.get("kind") not in SOURCE_KINDS:
        kind = obj.get("kind") if isinstance(obj, dict) else obj
        raise RobustTextError(
            f"unknown source kind {kind!r}; known kinds: {', '.join(sorted(SOURCE_KINDS))}"
        )
    return SOURCE_KINDS[obj["kind"]].from_json(obj)
