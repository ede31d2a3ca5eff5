"""The base of robusttext's run settings (text and vision training): a dataclass read from a
dict or a JSON file, each field checked against its annotation, and a command-line flag per
field with its help text and choices. Torch-free, so that ``--help`` stays light.

>>> config = TrainConfig.from_file("run.json")        # or TrainConfig.from_dict({...})
>>> TrainConfig.add_flags(parser)                      # --epochs N, --budget N|none, ...

A setting is written once, as a field made by ``setting``: its default, its help text, its
allowed values, what a resumed run may do with it, and (where it is not the field's name) its
flag and metavar. The class is decorated with ``@settings`` (a dataclass whose tables are read
from those fields: ``HELP``, ``CHOICES``, ``FLAGS``, ``METAVARS``), and the flags, the help,
the resume checks and the model's constructor settings are all derived from the fields:

>>> @settings
... class RunConfig(Settings):
...     epochs: int = setting(10, help="training epochs", resume=MAY_CHANGE)
...     seed: int = setting(0, help="random seed", resume=SAME)
>>> RunConfig.names(resume=SAME)                       # ("seed",)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

from robusttext.errors import RobustTextError

# What a resumed run (a run folder that already holds a run) may do with a setting:
SAME = "same"  # the data, the space or the model depend on it: the trainer refuses a change
COMMAND = "same on the command line"  # the command refuses a change; Python's train() takes it
MAY_CHANGE = "may change"  # how long, where, how shown, how evaluated
RESUME = (SAME, COMMAND, MAY_CHANGE)


def setting(default: Any = dataclasses.MISSING, *, help: str, resume: str,  # noqa: A002
            choices: tuple | None = None, flag: str | None = None, metavar: str | None = None,
            model: bool = False, none: str = "none", old_names: tuple[str, ...] = (),
            old_flags: tuple[str, ...] = ()) -> Any:
    """A settings field: ``default`` (a list is copied per instance), its ``help`` text (the
    default is appended on the command line unless it says ``default:``), ``resume`` (one of
    ``RESUME``), the allowed values (``choices``), the flag where it is not the field's name
    (``flag``), the metavar of a text value (``metavar``), ``model`` (passed to the model's
    constructor when given), ``none`` (how the command line spells None for a field that may
    be None: ``none``, or ``any`` for a budget; ``none`` then still reads, with a warning),
    ``old_names`` (earlier names of the setting: read from files with a warning) and
    ``old_flags`` (its earlier flags, kept as ``options.Deprecated`` ones)."""
    if resume not in RESUME:
        raise TypeError(f"resume must be one of {RESUME}, got {resume!r}")
    metadata = {"help": help, "resume": resume, "choices": choices, "flag": flag,
                "metavar": metavar, "model": model, "none": none, "old_names": old_names,
                "old_flags": old_flags}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def settings(cls):
    """``cls`` (a ``Settings`` subclass) as a dataclass whose tables come from its fields'
    ``setting`` metadata; every field must be made by ``setting``."""
    cls = dataclasses.dataclass(cls)
    fields = dataclasses.fields(cls)
    bare = [f.name for f in fields if "help" not in f.metadata]
    if bare:
        raise TypeError(f"{cls.__name__}: field(s) {', '.join(bare)} not made by setting()")
    cls.HELP = {f.name: f.metadata["help"] for f in fields}
    cls.CHOICES = {f.name: f.metadata["choices"] for f in fields if f.metadata["choices"]}
    cls.FLAGS = {f.name: f.metadata["flag"] for f in fields if f.metadata["flag"]}
    cls.METAVARS = {f.name: f.metadata["metavar"] for f in fields if f.metadata["metavar"]}
    cls.RENAMED = {old: f.name for f in fields for old in f.metadata["old_names"]}
    return cls


def read_json_file(path: str | Path, what: str = "file") -> Any:
    """The JSON value in ``path``; RobustTextError naming the file when it is missing, not
    UTF-8 or not valid JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobustTextError(f"{what} {path}: no such file") from None
    except UnicodeDecodeError as error:
        raise RobustTextError(f"{what} {path}: not UTF-8 text (byte {error.start}); save it as "
                              "UTF-8 JSON") from None
    except OSError as error:
        raise RobustTextError(f"{what} {path}: cannot read it ({error.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RobustTextError(f"{what} {path}: not valid JSON at line {error.lineno}: "
                              f"{error.msg}") from None


def changed_settings(saved: dict, settings: Any, names) -> dict[str, str]:
    """The settings among ``names`` whose value in ``settings`` differs from ``saved`` (a run's
    recorded settings), each with ``"NAME was OLD, now NEW"``; empty when none differs."""
    return {name: f"{name} was {saved.get(name)!r}, now {getattr(settings, name)!r}"
            for name in names if saved.get(name) != getattr(settings, name)}


def flag(name: str) -> str:
    """The command-line flag of setting ``name`` (``eval_method`` -> ``--eval-method``)."""
    return "--" + name.replace("_", "-")


class Settings:
    """Base of a settings dataclass; see the module docstring."""

    # Read from the fields' metadata by ``@settings``:
    HELP: ClassVar[dict[str, str]] = {}
    CHOICES: ClassVar[dict[str, tuple]] = {}
    FLAGS: ClassVar[dict[str, str]] = {}  # field -> its flag where it is not flag(field)
    METAVARS: ClassVar[dict[str, str]] = {}  # field -> its metavar for a str field
    RENAMED: ClassVar[dict[str, str]] = {}  # an earlier name of a setting -> its field

    @classmethod
    def names(cls, *, resume: str | None = None, model: bool | None = None) -> tuple[str, ...]:
        """The fields, in order, whose ``resume`` (one of ``RESUME``) and ``model`` metadata
        are those given (None: any)."""
        return tuple(f.name for f in dataclasses.fields(cls)
                     if (resume is None or f.metadata["resume"] == resume)
                     and (model is None or f.metadata["model"] == model))

    def refuse_changes(self, saved: dict[str, Any], names, out: str) -> None:
        """RobustTextError naming, by flag, each setting among ``names`` whose value differs
        from ``saved`` (the run in ``out`` recorded it; a setting it did not record is not
        compared): a run resumes with the settings it began with."""
        now = self.to_json()
        differs = [k for k in names if k in saved and saved[k] != now[k]]
        if differs:
            raise RobustTextError(
                f"--out {out} holds a run with other settings ("
                + "; ".join(f"{self.flag_of(k)} was {saved[k]!r}, now {now[k]!r}"
                            for k in differs)
                + "); a run resumes with the settings it began with: give those, or another "
                  "--out")

    @classmethod
    def flag_of(cls, name: str) -> str:
        """The command-line flag of setting ``name`` (``model`` -> ``--architecture``)."""
        return cls.FLAGS.get(name, flag(name))

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "configuration"):
        """The settings of a JSON object; unknown keys are refused (keys starting with ``_``
        are notes, ignored); a bad value raises RobustTextError prefixed with ``where``."""
        if not isinstance(values, dict):
            raise RobustTextError(f"{where}: a configuration is a JSON object")
        for old in values.keys() & cls.RENAMED.keys():
            print(f"{where}: the setting {old!r} is deprecated and will be removed in the next "
                  f"release; use {cls.RENAMED[old]!r}", file=sys.stderr)
        values = cls.current_names(values, where)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in values if k not in known and not k.startswith("_"))
        if unknown:
            raise RobustTextError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except RobustTextError as error:
            raise RobustTextError(f"{where}: {error}") from None

    @classmethod
    def current_names(cls, values: dict[str, Any], where: str = "configuration") -> dict:
        """``values`` (settings read from a file, a run's record among them) with each earlier
        name of a setting replaced by the current one; both given is refused."""
        both = [old for old in values if old in cls.RENAMED and cls.RENAMED[old] in values]
        if both:
            raise RobustTextError(f"{where}: give {cls.RENAMED[both[0]]!r} or its old name "
                                  f"{both[0]!r}, not both")
        return {cls.RENAMED.get(k, k): v for k, v in values.items()}

    @classmethod
    def from_file(cls, path: str | Path):
        """The settings of a JSON file (an object of settings)."""
        return cls.from_dict(read_json_file(path, "configuration file"), where=str(path))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- checking -----------------------------------------------------------------------------

    def check_types(self) -> None:
        """RobustTextError naming the flag of the first field whose value does not fit its
        annotation (``int``, ``float`` (an int fits), ``str``, ``bool``, ``list[...]``, ``X |
        None``); booleans are never numbers."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _fits(value, hints[f.name]):
                if value is None:
                    raise RobustTextError(f"{flag(f.name)} ({f.name!r} in a config file) may not "
                                          "be none/null")
                raise RobustTextError(f"{flag(f.name)} ({f.name!r} in a config file) must be "
                                      f"{f.type}, got {value!r}")

    # -- the command line ---------------------------------------------------------------------

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, names=None) -> None:
        """A flag per field (of ``names``, default all): ``dest`` the field, default
        ``argparse.SUPPRESS`` (a flag not given leaves the file's or the default value), its
        ``HELP`` text with the default appended, its ``CHOICES``; ``X|none`` for a field that
        may be None (``X|any`` for one whose None is spelled ``any``), ``--x/--no-x`` for a
        bool, several values for a list; its earlier flags as deprecated ones."""
        from robusttext.options import Deprecated

        for f in dataclasses.fields(cls):
            if names is not None and f.name not in names:
                continue
            options = cls._flag_options(f, parser.prog)
            parser.add_argument(cls.flag_of(f.name), **options)
            options.pop("help")
            for old in f.metadata["old_flags"]:
                parser.add_argument(old, **options, action=Deprecated,
                                    replacement=cls.flag_of(f.name))

    @classmethod
    def _flag_options(cls, f: dataclasses.Field, prog: str) -> dict[str, Any]:
        """The ``add_argument`` keywords of field ``f``'s flag (see ``add_flags``)."""
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        none = f.metadata["none"]
        shown = (none if default is None else " ".join(map(str, default))
                 if isinstance(default, list) else str(default).lower()
                 if isinstance(default, bool) else default)
        text = cls.HELP[f.name]
        options = {"dest": f.name, "default": argparse.SUPPRESS,
                   "help": text if "default:" in text else f"{text} (default: {shown})"}
        if f.name in cls.CHOICES:
            options["choices"] = cls.CHOICES[f.name]
        kind, nullable = _unwrap(typing.get_type_hints(cls)[f.name])
        if kind is bool:
            return {**options, "action": argparse.BooleanOptionalAction}
        if typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            return {**options, "nargs": "*" if item is int else "+", "type": _parse(item),
                    "metavar": "N" if item is int else "X" if item is float else "NAME"}
        parse = _parse(kind, none if nullable else None, f"{prog}: {cls.flag_of(f.name)}")
        if kind in (int, float):
            metavar = "N" if kind is int else "X"
            return {**options, "type": parse,
                    "metavar": f"{metavar}|{none}" if nullable else metavar}
        metavar = None if f.name in cls.CHOICES else cls.METAVARS.get(f.name, "VALUE")
        return {**options, "type": parse, "metavar": metavar}

    @classmethod
    def flag_values(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The settings the command line gave (flags made by ``add_flags``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in vars(args).items() if k in names}


def _unwrap(annotation) -> tuple[Any, bool]:
    """``(type, may be None)`` of ``X`` or ``X | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        return arms[0], len(arms) < len(typing.get_args(annotation))
    return annotation, False


def _fits(value, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if annotation is float:
        return isinstance(value, (int, float))
    return isinstance(value, annotation)


def _parse(kind, none: str | None = None, where: str = ""):
    """An argparse ``type`` for ``kind`` that also reads ``none`` (the word that spells None:
    ``none``/``null``, or ``any``, where ``none``/``null`` then still read, with a warning
    naming ``where``, ``"PROG: --FLAG"``) when given."""
    words = {int: "an integer", float: "a number"}

    def parse(text: str):
        if none is not None and text.lower() == none:
            return None
        if none is not None and text.lower() in ("none", "null"):
            if none != "none":
                print(f"{where} {text} is deprecated and will be removed in the next "
                      f"release; use {where.split()[-1]} {none}", file=sys.stderr)
            return None
        if kind is str:
            return text
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {words[kind]}{' or ' + repr(none) if none else ''}, got "
                f"{text!r}") from None

    return parse
