"""Command-line pieces every command shares: ``Deprecated`` (an old spelling of an option,
kept for a release), ``ListOf`` and ``add_list_flag`` (the one list type: every flag that takes
several values reads ``1,2,3`` and ``1 2 3`` alike), ``check_output`` (an output path refused
before any work starts) and ``check_out_folder`` (the same for a run's folder)."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from robusttext.errors import RobustTextError


class Deprecated(argparse.Action):
    """An old spelling of an option, kept for one release: it stores into the new option's
    ``dest`` (``const`` for a flag without a value; else the values, through ``convert`` when
    given: a ``ListOf`` for a list, or the old meaning turned into the new one) and says what
    replaces it, in one line on stderr. It is left out of ``--help``."""

    def __init__(self, option_strings, dest, replacement: str, nargs=None, const=None,
                 convert=None, **kwargs):
        self.replacement = replacement
        self.convert = convert
        kwargs.setdefault("help", argparse.SUPPRESS)  # not in --help: the message says it
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and will be removed in the next "
              f"release; use {self.replacement}", file=sys.stderr)
        if self.nargs == 0:
            values = self.const
        elif self.convert is not None:
            try:
                values = self.convert(values)
            except (argparse.ArgumentTypeError, ValueError) as error:
                raise argparse.ArgumentError(self, str(error)) from None
        setattr(namespace, self.dest, values)


class ListOf:
    """The one list type of the command line: ``ListOf(item)`` turns the words a list flag
    received (``["1,2,3"]``, ``["1", "2", "3"]`` or a mix) into the list of its items, each
    read by ``item`` (an argparse ``type``: it raises ``ArgumentTypeError`` or ``ValueError``
    on a bad one) and checked against ``choices``; a bad item raises ``ArgumentTypeError``
    naming it. ``metavar`` is the one style every list flag shows: ``N[,N...]``."""

    def __init__(self, item=str, choices: tuple | None = None, metavar: str = "NAME"):
        self.item, self.choices = item, choices
        self.metavar = f"{metavar}[,{metavar}...]"

    def __call__(self, words) -> list:
        if isinstance(words, str):
            words = [words]
        # a word that names an existing file is one item, commas and all (a source's path)
        parts = [part.strip() for word in words
                 for part in ([str(word)] if os.path.exists(str(word)) else str(word).split(","))]
        values = []
        for part in parts:
            if not part:
                continue
            if self.choices is not None and part not in self.choices:
                raise argparse.ArgumentTypeError(
                    f"{part!r} is not one of {', '.join(map(str, self.choices))}")
            try:
                values.append(self.item(part))
            except (argparse.ArgumentTypeError, ValueError) as error:
                raise argparse.ArgumentTypeError(f"bad item {part!r}: {error}") from None
        return values

    def near_item(self, word: str) -> bool:
        """True for one word close to a choice (a mistyped item, not a sentence)."""
        return (self.choices is not None and " " not in word.strip()
                and bool(difflib.get_close_matches(word, list(map(str, self.choices)), n=1,
                                                   cutoff=0.6)))


class ListAction(argparse.Action):
    """A list flag (``add_list_flag``): its words split on commas, each item read by the
    ``ListOf`` given as ``of``; a bad item is refused naming the flag
    (``argument --budget: bad item 'x': ...``). With ``then`` (the dest of a positional that
    takes one word, such as certify's SENTENCE), a last word that is no item is that
    positional's, as before the list flag read several words (``--budget 1,2 "a fine film"``),
    unless it is one word close to a choice (``--method ibp crwn``: refused as a mistyped item);
    ``settle_trailing`` hands it over once parsing is done."""

    def __init__(self, option_strings, dest, of: ListOf, nargs="+", then: str | None = None,
                 **kwargs):
        self.of, self.then = of, then
        kwargs.setdefault("metavar", of.metavar)
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, self.of(values))
            return
        except argparse.ArgumentTypeError as error:
            refusal = error
        if self.then and len(values) > 1 and not self.of.near_item(values[-1]):
            try:
                items = self.of(values[:-1])
            except argparse.ArgumentTypeError:
                pass
            else:
                setattr(namespace, self.dest, items)
                setattr(namespace, TRAILING, (self.then, values[-1]))
                return
        raise argparse.ArgumentError(self, str(refusal)) from None


TRAILING = "_list_trailing_word"


def settle_trailing(namespace: argparse.Namespace) -> str | None:
    """Give the word a ``ListAction`` left (see ``then``) to its positional when that is still
    empty; returns the word when it is not (an argument too many), else None."""
    left = vars(namespace).pop(TRAILING, None)
    if left is None:
        return None
    dest, word = left
    if getattr(namespace, dest, None) is None:
        setattr(namespace, dest, word)
        return None
    return word


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with a list flag shown in the one style, ``--budget N[,N...]`` (it
    also reads ``1 2 3``)."""

    def _format_args(self, action, default_metavar):
        if isinstance(action, ListAction) or (isinstance(action, Deprecated)
                                              and isinstance(action.convert, ListOf)):
            return action.metavar
        return super()._format_args(action, default_metavar)


def add_list_flag(parser, name: str, of: ListOf, *, old: tuple[str, ...] = (),
                  empty: bool = False, **kwargs) -> None:
    """Add the list flag ``name`` (``ListAction`` reading ``of``; ``empty``: the flag alone
    gives ``[]``) and its earlier spellings ``old`` (deprecated, read the same way)."""
    nargs = "*" if empty else "+"
    dest = kwargs.pop("dest", None) or name.lstrip("-").replace("-", "_")
    parser.add_argument(name, action=ListAction, of=of, nargs=nargs, dest=dest, **kwargs)
    for spelling in old:
        parser.add_argument(spelling, action=Deprecated, replacement=name, convert=of,
                            nargs=nargs, metavar=of.metavar, dest=dest,
                            default=kwargs.get("default", argparse.SUPPRESS))


def add_quiet_flag(parser: argparse.ArgumentParser, dest: str = "quiet", quiet: bool = True,
                   default=False) -> None:
    """``--quiet`` (no progress bars) of every command, storing ``quiet`` into ``dest`` (text
    train's ``progress`` setting: False, default ``argparse.SUPPRESS``); ``--no-progress`` and
    ``--progress`` are its old spellings, kept for a release with one line each."""
    parser.add_argument("--quiet", dest=dest, action="store_const", const=quiet,
                        default=default,
                        help="no progress bars (they are also off when standard error is not a "
                             "terminal)")
    parser.add_argument("--no-progress", dest=dest, action=Deprecated, nargs=0, const=quiet,
                        default=argparse.SUPPRESS, replacement="--quiet")
    parser.add_argument("--progress", dest=dest, action=Deprecated, nargs=0, const=not quiet,
                        default=argparse.SUPPRESS,
                        replacement="nothing (progress bars are on unless --quiet)")


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
