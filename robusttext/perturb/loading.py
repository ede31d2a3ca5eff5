"""``load_source``: a substitution source from a short name or a JSON file."""

from __future__ import annotations

from pathlib import Path

from robusttext.errors import RobustTextError
from robusttext.perturb.counterfitted import CounterFittedSynonyms
from robusttext.perturb.flips import BUILTIN_KEYBOARDS, CharacterFlips
from robusttext.perturb.sources import SubstitutionSource, read_json_file
from robusttext.perturb.wordnet import WordNetSynonyms

SOURCE_NAMES = ("counterfitted", "wordnet", "typos", "qwerty")


def _is_keyboard_map(raw: object) -> bool:
    return (
        isinstance(raw, dict)
        and bool(raw)
        and all(isinstance(k, str) and len(k) == 1 for k in raw)
        and all(isinstance(v, list) and all(isinstance(c, str) and len(c) == 1 for c in v)
                for v in raw.values())
    )


def load_source(name_or_path: str | Path, **options) -> SubstitutionSource:
    """Map a name or path to a source.

    - ``"counterfitted"``: the counter-fitted neighbours from the cache (``cache_dir=``), or
      from ``path=`` when given;
    - ``"wordnet"``: WordNetSynonyms (options such as ``max_senses=`` pass through);
    - ``"typos"`` / ``"qwerty"``: CharacterFlips on the project's QWERTY map;
    - a JSON file: a keyboard map (every key and substitute one character) becomes
      CharacterFlips, any other word -> list-of-words object becomes a neighbour table.
    """
    if isinstance(name_or_path, SubstitutionSource):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise RobustTextError(f"a source is a name or a path, got {name_or_path!r}")
    name = str(name_or_path)
    if name == "counterfitted":
        if options.get("path"):
            return CounterFittedSynonyms.from_path(options["path"])
        return CounterFittedSynonyms.from_cache(options.get("cache_dir"))
    if name == "wordnet":
        return WordNetSynonyms(**options)
    if name in ("typos", *BUILTIN_KEYBOARDS):
        return CharacterFlips("qwerty", **options)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise RobustTextError(f"{path}: no such file")
        if _is_keyboard_map(read_json_file(path)):
            return CharacterFlips(path, **options)
        return CounterFittedSynonyms.from_path(path)
    raise RobustTextError(
        f"unknown source {name!r}; use one of {', '.join(SOURCE_NAMES)} or a JSON file path"
    )
