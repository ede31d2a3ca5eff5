"""``robusttext train``: train a (certifiably robust) sentiment classifier.

Every setting of ``TrainConfig`` is a flag (``--robust-weight 0.5``, ``--sources wordnet``,
``--budget none``); ``--config FILE`` reads a JSON object of settings first and flags given on
the command line override it. The run resumes when ``--out`` holds an unfinished run of the
same settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from robusttext.errors import RobustTextError
from robusttext.train.config import TrainConfig


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
    parser.add_argument("--config", metavar="FILE", help="JSON file of settings (flags win)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved settings as JSON and exit")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"(default: {json.dumps(default)})"
        kind = str(f.type)
        options = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif kind.startswith("list[int"):
            parser.add_argument(flag, nargs="*", type=int, metavar="N", **options)
        elif kind.startswith("list[str"):
            parser.add_argument(flag, nargs="+", metavar="NAME", **options)
        elif kind.startswith("int"):
            nullable = "None" in kind
            parser.add_argument(flag, type=_optional_int if nullable else int, metavar="N",
                                **options)
        elif kind.startswith("float"):
            parser.add_argument(flag, type=float, metavar="X", **options)
        else:
            nullable = "None" in kind
            parser.add_argument(flag, type=_optional_str if nullable else str, metavar="VALUE",
                                **options)


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

    metrics = train(config)
    if not metrics:
        distributed.current().say("trained; no dev set given, so no metrics (pass --dev FILE)")
    return 0


__all__ = ["RobustTextError", "add_arguments", "resolve_config", "run"]
