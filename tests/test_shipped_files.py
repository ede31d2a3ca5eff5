"""Files the project ships carry no machine paths: a checkpoint or a configuration that names a
folder on the machine where it was made is wrong on every other machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

# a path of two or more components from the root (a lone "/" is a vocabulary token)
MACHINE_PATH = re.compile(r"^(/[^/\s]+){2,}")
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "robusttext" / "assets" / "models").glob("*/checkpoint.json"))
CONFIGS = sorted((ROOT / "examples").rglob("*.json"))


def _strings(value):
    """Every string inside a JSON value, keys excluded."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("path", SHIPPED + CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_absolute_paths(path):
    absolute = [s for s in _strings(json.loads(path.read_text())) if MACHINE_PATH.match(s)]
    assert not absolute, f"{path.relative_to(ROOT)} names machine paths: {absolute}"


def test_the_files_are_found():
    assert len(SHIPPED) >= 8 and len(CONFIGS) >= 50
