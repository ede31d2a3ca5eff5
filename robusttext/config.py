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


@dataclasses.dataclass(frozen=True)
class Old:
    """An earlier name (of a file key, or a flag) whose value means the setting only after
    ``convert`` (``kappa_final`` -> ``robust_weight = 1 - kappa_final``); ``note`` says how,
    in the deprecation line."""

    name: str
    convert: Any = None
    note: str = ""


def _one_minus(value):
    """An old weight of the clean loss (kappa) as the robust weight; a non-number is kept for
    the type check to name."""
    return 1.0 - value if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else value


def _old(entry) -> Old:
    return entry if isinstance(entry, Old) else Old(entry)


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
    ``old_flags`` (its earlier flags, kept as ``options.Deprecated`` ones); an entry of either
    is a name or an ``Old`` (a name whose value is converted)."""
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
    for name, default in cls.__dict__.get("DEFAULTS", {}).items():
        _redeclare(cls, name, default)
    cls = dataclasses.dataclass(cls)
    fields = dataclasses.fields(cls)
    bare = [f.name for f in fields if "help" not in f.metadata]
    if bare:
        raise TypeError(f"{cls.__name__}: field(s) {', '.join(bare)} not made by setting()")
    cls.HELP = {f.name: f.metadata["help"] for f in fields}
    cls.CHOICES = {f.name: f.metadata["choices"] for f in fields if f.metadata["choices"]}
    cls.FLAGS = {f.name: f.metadata["flag"] for f in fields if f.metadata["flag"]}
    cls.METAVARS = {f.name: f.metadata["metavar"] for f in fields if f.metadata["metavar"]}
    olds = [(_old(entry), f.name) for f in fields for entry in f.metadata["old_names"]]
    cls.RENAMED = {old.name: name for old, name in olds}
    cls.CONVERTED = {old.name: old for old, _ in olds if old.convert or old.note}
    return cls


def _redeclare(cls, name: str, default: Any) -> None:
    """Give ``cls`` its own default for the field ``name`` of a base (a shared setting: its
    help, choices and resume behaviour stay those declared once on the base)."""
    for base in cls.__mro__[1:]:
        inherited = getattr(base, "__dataclass_fields__", {}).get(name)
        if inherited is not None:
            break
    else:
        raise TypeError(f"{cls.__name__}.DEFAULTS: no shared setting {name!r}")
    cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}), name: inherited.type}
    setattr(cls, name, setting(default, **inherited.metadata))


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
    CONVERTED: ClassVar[dict[str, Old]] = {}  # an earlier name whose value is converted
    DEFAULTS: ClassVar[dict[str, Any]] = {}  # a shared setting -> this class's default

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
        for old in sorted(values.keys() & cls.RENAMED.keys()):
            note = cls.CONVERTED[old].note if old in cls.CONVERTED else ""
            print(f"{where}: the setting {old!r} is deprecated and will be removed in the next "
                  f"release; use {cls.RENAMED[old]!r}{note}", file=sys.stderr)
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
        def convert(old, value):
            change = cls.CONVERTED[old].convert if old in cls.CONVERTED else None
            return value if change is None or value is None else change(value)

        return {cls.RENAMED.get(k, k): convert(k, v) for k, v in values.items()}

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
            for old in map(_old, f.metadata["old_flags"]):
                kept = {k: v for k, v in options.items() if k not in ("action", "of", "type")}
                read = options.get("of") or options.get("type")
                if "of" in options:
                    kept["metavar"] = options["of"].metavar
                if options.get("action") is argparse.BooleanOptionalAction:
                    kept["nargs"], kept["const"] = 0, True
                    read = None
                convert = read if old.convert is None else (
                    (lambda text, read=read, change=old.convert: change(read(text))))
                parser.add_argument(old.name, **kept, action=Deprecated, convert=convert,
                                    replacement=cls.flag_of(f.name) + old.note)

    @classmethod
    def _flag_options(cls, f: dataclasses.Field, prog: str) -> dict[str, Any]:
        """The ``add_argument`` keywords of field ``f``'s flag (see ``add_flags``)."""
        from robusttext.options import ListAction, ListOf

        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        none = f.metadata["none"]
        shown = (none if default is None else ",".join(map(str, default)) or "[]"
                 if isinstance(default, list) else str(default).lower()
                 if isinstance(default, bool) else default)
        text = cls.HELP[f.name]
        kind, nullable = _unwrap(typing.get_type_hints(cls)[f.name])
        listed = typing.get_origin(kind) is list
        if listed and f.name in cls.CHOICES:  # argparse would check the words, not the items
            text = f"{text}; from {', '.join(cls.CHOICES[f.name])}"
        options = {"dest": f.name, "default": argparse.SUPPRESS,
                   "help": text if "default:" in text else f"{text} (default: {shown})"}
        if listed:  # the one list type (options.ListOf): 1,2,3 or 1 2 3
            (item,) = typing.get_args(kind)
            of = ListOf(_parse(item), cls.CHOICES.get(f.name),
                        cls.METAVARS.get(f.name, "N" if item is int else "X" if item is float
                                         else "NAME"))
            return {**options, "action": ListAction, "of": of,
                    "nargs": "*" if item is int else "+"}
        if f.name in cls.CHOICES:
            options["choices"] = cls.CHOICES[f.name]
        if kind is bool:
            return {**options, "action": argparse.BooleanOptionalAction}
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


# The help of ``eval_methods``, a setting of text and vision whose choices are each task's.
EVAL_METHODS_HELP = ("bound methods of the final verified accuracy on the evaluation examples "
                     "(text: --dev, the first also scoring each epoch; vision: the test split)")


@settings
class TrainingSettings(Settings):
    """The settings text and vision training share, declared once: the schedule (warm-up,
    ramp, the robust weight and CROWN-IBP's beta), the optimiser, the run (epochs, seed,
    batch size, device, folder) and the size of the evaluation set. Text's and vision's
    ``TrainConfig`` derive from it; each may give a setting its own default (``DEFAULTS``),
    never its own help, choices or resume behaviour. A resumed run takes another ``epochs``,
    ``device``, ``out`` or ``eval_limit``; the command refuses any other change (``COMMAND``:
    the schedule and the optimiser) and the run's data and model need the same ``seed`` and
    ``batch_size`` (``SAME``)."""

    epochs: int = setting(10, resume=MAY_CHANGE, help="training epochs")
    warmup_epochs: float = setting(
        1.0, resume=COMMAND,
        help="clean epochs before eps and the robust weight start to grow")
    ramp_epochs: float = setting(
        5.0, resume=COMMAND,
        help="epochs over which eps and the robust weight grow linearly to their final values")
    robust_weight_start: float = setting(
        0.0, resume=COMMAND, old_names=(Old("kappa_start", _one_minus, " (= 1 - kappa_start)"),),
        old_flags=(Old("--kappa-start", _one_minus, " (= 1 - kappa_start)"),),
        help="k at the start of the ramp, in the loss (1-k) CE(clean) + k CE(worst case); the "
             "warm-up trains clean (k 0) either way")
    robust_weight: float = setting(
        0.5, resume=COMMAND, old_names=(Old("kappa_final", _one_minus, " (= 1 - kappa_final)"),),
        old_flags=(Old("--kappa-final", _one_minus, " (= 1 - kappa_final)"),),
        help="final k of (1-k) CE(clean) + k CE(worst case), reached at the end of the ramp "
             "(1 - kappa of Gowal et al. 2018); 0: normal training")
    beta_start: float = setting(
        1.0, resume=COMMAND,
        help="CROWN-IBP weight against IBP at the start of the ramp")
    beta_final: float = setting(
        0.0, resume=COMMAND,
        help="CROWN-IBP weight against IBP at the end of the ramp")
    lr: float = setting(1e-3, resume=COMMAND, help="Adam learning rate")
    lr_decay_epochs: list[int] = setting(
        [], resume=COMMAND, old_names=("lr_milestones",),
        help="epochs at which the learning rate is multiplied by --lr-decay")
    lr_decay: float = setting(
        0.1, resume=COMMAND,
        help="learning-rate factor at each of --lr-decay-epochs")
    grad_clip: float = setting(
        1.0, resume=COMMAND,
        help="largest gradient norm (0: no clipping)")
    oracle_every: int = setting(
        10, resume=COMMAND,
        help="check the bounds against the model's own outputs every N steps (0: never)")
    batch_size: int = setting(32, resume=SAME, help="training examples per step")
    seed: int = setting(0, resume=SAME, help="random seed (initialisation, data order)")
    device: str = setting(
        "auto", resume=MAY_CHANGE, metavar="DEVICE",
        help="torch device: auto (CUDA when present), cpu, cuda, cuda:N")
    out: str = setting(
        "runs/run", resume=MAY_CHANGE, metavar="FOLDER",
        help="checkpoint folder, written every epoch; a run of the same settings there resumes")
    eval_limit: int | None = setting(
        None, resume=MAY_CHANGE,
        old_names=("dev_limit", "test_limit", "test_subset"),
        old_flags=("--dev-limit", "--test-limit", "--test-subset"),
        help="final evaluation on the first N evaluation examples (text: --dev, vision: the "
             "test split; none: all)")

    def check_schedule(self) -> None:
        """RobustTextError naming the flag of the first shared setting out of its range."""
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise RobustTextError(f"{flag(name)} must be at least 1")
        for name in ("robust_weight_start", "robust_weight", "beta_start", "beta_final"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RobustTextError(f"{flag(name)} must lie in [0, 1]")
        if self.lr <= 0 or self.warmup_epochs < 0 or self.ramp_epochs < 0 or self.grad_clip < 0:
            raise RobustTextError("--lr must be positive; --warmup-epochs, --ramp-epochs and "
                                  "--grad-clip >= 0")
        if self.oracle_every < 0:
            raise RobustTextError("--oracle-every must be >= 0 (0: never)")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise RobustTextError(f"--eval-limit must be at least 1, got {self.eval_limit}")
