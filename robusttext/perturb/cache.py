"""Where robusttext keeps downloaded and arranged data, and a checksummed download."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from robusttext.errors import RobustTextError


def default_cache_dir() -> Path:
    """``$ROBUSTTEXT_CACHE``, else ``$XDG_CACHE_HOME/robusttext``, else ``~/.cache/robusttext``."""
    if os.environ.get("ROBUSTTEXT_CACHE"):
        return Path(os.environ["ROBUSTTEXT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "robusttext"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, sha256: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` unless a file with the right checksum is already there.

    The file is written beside ``target`` and moved into place only after its SHA-256 matches
    ``sha256`` (when given), so a broken download never sits in the cache.
    """
    target = Path(target)
    if target.is_file() and (sha256 is None or sha256_of(target) == sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".")
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError) as error:
                raise RobustTextError(f"could not download {url}: {error}") from None
        if sha256 is not None and digest.hexdigest() != sha256:
            raise RobustTextError(
                f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
                "the file was not kept"
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target
