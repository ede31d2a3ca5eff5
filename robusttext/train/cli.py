"""``robusttext train``: train a (certifiably robust) sentiment classifier.

Every setting of ``TrainConfig`` is a flag (``--robust-weight 0.5``, ``--sources wordnet``,
``--budget none``; the ``model`` setting is ``--architecture``), with its help text and choices
from ``robusttext.train.config.HELP`` / ``CHOICES``; ``--config FILE`` reads a JSON object of
settings first and flags given on the command line override it. The run resumes when
``--out`` holds an unfinished run of the same settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from robusttext.errors import RobustTextError
from robusttext.train.config import CHOICES, HELP, TrainConfig
from robusttext.train.config import flag as config_flag


def _optional_int(text: str) -> int | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") \
            from None


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("none", "null") else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robusttext.options import Deprecated

    parser.add_argument("--config", metavar="FILE", help="JSON file of settings (flags win)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved settings as JSON and exit")
    parser.add_argument("--quiet", dest="progress", action="store_false",
                        default=argparse.SUPPRESS, help="no progress bars (same as "
                                                        "--no-progress)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--architecture" if f.name == "model" else config_flag(f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "none" if default is None else " ".join(map(str, default)) if isinstance(
            default, list) else str(default).lower() if isinstance(default, bool) else default
        help_text = HELP[f.name] if "default:" in HELP[f.name] else (
            f"{HELP[f.name]} (default: {shown})")
        kind = str(f.type)
        options = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if f.name in CHOICES:
            options["choices"] = CHOICES[f.name]
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif kind.startswith("list[int"):
            parser.add_argument(flag, nargs="*", type=int, metavar="N", **options)
        elif kind.startswith("list[str"):
            parser.add_argument(flag, nargs="+", metavar="NAME", **options)
        elif kind.startswith("int"):
            nullable = "None" in kind
            parser.add_argument(flag, type=_optional_int if nullable else int,
                                metavar="N|none" if nullable else "N", **options)
        elif kind.startswith("float"):
            nullable = "None" in kind
            parser.add_argument(flag, type=_optional_float if nullable else float,
                                metavar="X|none" if nullable else "X", **options)
        else:
            nullable = "None" in kind
            metavar = None if f.name in CHOICES else _METAVARS.get(f.name, "VALUE")
            parser.add_argument(flag, type=_optional_str if nullable else str, metavar=metavar,
                                **options)
    parser.add_argument("--model", dest="model", action=Deprecated, default=argparse.SUPPRESS,
                        metavar="ARCHITECTURE",
                        replacement="--architecture (--model names a checkpoint, as in "
                                    "certify)")


_METAVARS = {"train": "FILE|HUB_ID", "dev": "FILE|HUB_ID", "out": "FOLDER",
             "pretrained": "HUB_ID|FOLDER", "space_file": "FILE", "device": "DEVICE",
             "train_split": "SPLIT", "dev_split": "SPLIT"}


def _optional_float(text: str) -> float | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") \
            from None


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The file's settings (if any), then the flags given."""
    settings = TrainConfig.from_file(args.config).to_json() if args.config else {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    settings.update({k: v for k, v in vars(args).items() if k in names})
    return TrainConfig.from_json(settings, where=args.config or "command line")


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_json(), indent=1))
        return 0
    from robusttext import distributed
    from robusttext.train.trainer import train

    if config.robust and config.warmup_epochs >= config.epochs:
        distributed.current().say(
            f"warning: --epochs {config.epochs} ends within the warm-up (--warmup-epochs "
            f"{config.warmup_epochs:g}), so no step perturbs the inputs and this trains a normal "
            "model; lower --warmup-epochs or raise --epochs")
    metrics = train(config)
    if not metrics:
        distributed.current().say("trained; no dev set given, so no metrics (pass --dev FILE)")
    return 0


__all__ = ["RobustTextError", "add_arguments", "resolve_config", "run"]
