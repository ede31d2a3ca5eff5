"""Command-line pieces every command shares: ``Deprecated`` (an old spelling of an option,
kept for a release), ``check_output`` (an output path refused before any work starts) and
``check_out_folder`` (the same for a run's folder)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from robusttext.errors import RobustTextError


class Deprecated(argparse.Action):
    """An old spelling of an option, kept for one release: it stores into the new option's
    ``dest`` (``const`` for a flag without a value) and says what replaces it, on stderr."""

    def __init__(self, option_strings, dest, replacement: str, nargs=None, const=None,
                 **kwargs):
        self.replacement = replacement
        kwargs.setdefault("help", f"deprecated: use {replacement}")
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and will be removed in the next "
              f"release; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def check_output(path: str, flag: str, formats: tuple[str, ...] | None = None) -> None:
    """Refuse, before any work, an output path that cannot be written: a folder, a file under
    something that is not a folder, a folder without write permission, or (with ``formats``)
    another file type. ``-`` (standard output) passes; the caller decides where it is allowed.
    """
    if path == "-":
        return
    target = Path(path)
    if formats is not None and target.suffix.lower() not in formats:
        raise RobustTextError(f"{flag} {path}: the file name must end in "
                              f"{' or '.join(formats)}")
    if target.is_dir():
        raise RobustTextError(f"{flag} {path}: is a folder; name a file")
    if target.exists() and not os.access(target, os.W_OK):
        raise RobustTextError(f"{flag} {path}: the file is not writable")
    _check_nearest_folder(target, path, flag, "cannot write into")


def check_out_folder(path: str, flag: str = "--out") -> None:
    """Refuse, before any work, a run folder that cannot be written: a file, something under a
    file, or a place without write permission (the folder itself is created by the run)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise RobustTextError(f"{flag} {path}: is a file; name a folder")
    if target.is_dir():
        if not os.access(target, os.W_OK | os.X_OK):
            raise RobustTextError(f"{flag} {path}: the folder is not writable")
        return
    _check_nearest_folder(target, path, flag, "cannot create it in")


def _check_nearest_folder(target: Path, path: str, flag: str, refusal: str) -> None:
    """Refuse ``target`` when its nearest existing ancestor is not a folder this process can
    write into (what creating ``target`` needs); ``refusal`` words the second case."""
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RobustTextError(f"{flag} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RobustTextError(f"{flag} {path}: {refusal} {parent}")
