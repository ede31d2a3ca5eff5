"""Counter-fitted word-vector neighbours (Alzantot et al. 2018; the set of Jia et al. 2019).

The file is a JSON object word -> list of neighbour words. Read it from a path, or download it
once (checksummed) into the cache.
"""

from __future__ import annotations

from pathlib import Path

from robusttext.errors import RobustTextError
from robusttext.perturb.cache import default_cache_dir, download, sha256_of
from robusttext.perturb.sources import SynonymTable, _check_table, read_json_file

DEFAULT_URL = (
    "https://raw.githubusercontent.com/robinjia/certified-word-sub/master/"
    "data/counterfitted_neighbors.json"
)
DEFAULT_SHA256 = "103247143f39bd5dd66850f3a912393392641dbd98093c61e2b24a4cc8a96fb0"
CACHE_NAME = "counterfitted_neighbors.json"


class CounterFittedSynonyms(SynonymTable):
    """Neighbours in counter-fitted word vectors, read from a JSON file.

    ``path``: where the table was read; ``sha256``: its checksum, checked again when the
    source is rebuilt from JSON; ``url``: where it was downloaded from, if it was.
    """

    kind = "counterfitted"

    def __init__(self, table, path: str | Path, sha256: str, url: str | None = None):
        super().__init__(table, label="counterfitted")
        self.path = Path(path)
        self.sha256 = sha256
        self.url = url

    @classmethod
    def from_path(cls, path: str | Path, sha256: str | None = None) -> CounterFittedSynonyms:
        """Read the table at ``path``; with ``sha256``, refuse a file with another checksum."""
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise RobustTextError(f"{path}: no such neighbour file")
        actual = sha256_of(path)
        if sha256 is not None and actual != sha256:
            raise RobustTextError(f"{path}: SHA-256 is {actual}, expected {sha256}")
        table = _check_table(read_json_file(path), str(path))
        return cls(table, path=path, sha256=actual)

    @classmethod
    def from_url(
        cls,
        url: str = DEFAULT_URL,
        cache_dir: str | Path | None = None,
        sha256: str | None = DEFAULT_SHA256,
    ) -> CounterFittedSynonyms:
        """Download ``url`` once into ``cache_dir`` (checked against ``sha256``) and read it."""
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        target = download(url, cache_dir / CACHE_NAME, sha256)
        source = cls.from_path(target, sha256=sha256)
        source.url = url
        return source

    @classmethod
    def cached_path(cls, cache_dir: str | Path | None = None) -> Path:
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return cache_dir / CACHE_NAME

    @classmethod
    def from_cache(cls, cache_dir: str | Path | None = None) -> CounterFittedSynonyms:
        """The table from the cache; if it is not there, say how to provide it."""
        path = cls.cached_path(cache_dir)
        if not path.is_file():
            raise RobustTextError(
                f"the counter-fitted neighbour file is not in the cache ({path}); give its path "
                "(--sources PATH, or CounterFittedSynonyms.from_path) or download it once with "
                "`python -c \"from robusttext.perturb import CounterFittedSynonyms as C; "
                "C.from_url()\"`"
            )
        return cls.from_path(path)

    def to_json(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "sha256": self.sha256, "url": self.url}

    @classmethod
    def from_json(cls, obj: dict) -> CounterFittedSynonyms:
        path = Path(obj.get("path", ""))
        if path.is_file():
            source = cls.from_path(path, sha256=obj.get("sha256"))
        elif obj.get("url"):
            source = cls.from_url(obj["url"], cache_dir=path.parent, sha256=obj.get("sha256"))
        else:
            raise RobustTextError(
                f"counter-fitted neighbour file {path} is missing; restore it or rebuild the "
                "space from a checkpoint that carries its restricted table"
            )
        source.url = obj.get("url")
        return source


__all__ = ["CounterFittedSynonyms", "DEFAULT_URL", "DEFAULT_SHA256"]
