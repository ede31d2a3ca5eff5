"""``robusttext train``: train a (certifiably robust) sentiment classifier.

Every setting of ``TrainConfig`` is a flag (``--robust-weight 0.5``, ``--sources wordnet``,
``--budget any``; the ``model`` setting is ``--architecture``), with the help text and choices
of its field (``robusttext.config.setting``, ``Settings.add_flags``); ``--config FILE`` reads a
JSON object of settings first and flags given on the command line override it. The run resumes
when ``--out`` holds an unfinished run of the same settings.
"""

from __future__ import annotations

import argparse
import json
import sys

from robusttext.config import MAY_CHANGE
from robusttext.errors import RobustTextError
from robusttext.train.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON file of settings (flags win)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved settings as JSON and exit")
    TrainConfig.add_flags(parser, [n for n in TrainConfig.__dataclass_fields__
                                   if n not in ("start_from", "progress")])
    from robusttext.options import add_quiet_flag

    add_quiet_flag(parser, dest="progress", quiet=False, default=argparse.SUPPRESS)
    parser.add_argument("--model", dest="start_from", action=ModelOrArchitecture,
                        default=argparse.SUPPRESS, metavar="FOLDER|HUB_ID",
                        help=TrainConfig.HELP["start_from"] + "; an architecture name here is "
                             "the deprecated spelling of --architecture")


class ModelOrArchitecture(argparse.Action):
    """``--model``: a ``transformers`` folder or hub id to continue (``start_from``); an
    architecture name (``--model bert``) is the old spelling of ``--architecture``, kept for
    one release with a message saying so."""

    def __call__(self, parser, namespace, values, option_string=None):
        from robusttext.text.kinds import MODEL_KINDS

        if values in MODEL_KINDS:
            print(f"{parser.prog}: {option_string} is deprecated as the name of an "
                  "architecture and will be removed in the next release; use --architecture "
                  "(--model names a model to continue, as in certify)", file=sys.stderr)
            namespace.model = values
        else:
            namespace.start_from = values


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The file's settings (if any), then the flags given."""
    settings = TrainConfig.from_file(args.config).to_json() if args.config else {}
    settings.update(TrainConfig.flag_values(args))
    return TrainConfig.from_dict(settings, where=args.config or "command line")


# Settings a run in --out may continue with other values (``resume=MAY_CHANGE``): how long it
# trains, where, how it is shown and how its dev set is evaluated. Any other setting that
# differs is refused (the trainer refuses those that shape the model, the data or the space;
# this covers the rest, such as --lr, which a resumed run would otherwise take silently).
MAY_CHANGE_ON_RESUME = TrainConfig.names(resume=MAY_CHANGE)


def check_same_settings(config: TrainConfig) -> None:
    """RobustTextError naming each setting (as its flag) that differs from the run in
    ``--out``; nothing when ``--out`` holds no run."""
    from pathlib import Path

    from robusttext.checkpoint import META_FILE

    meta_path = Path(config.out) / META_FILE
    if not meta_path.is_file():
        return
    try:
        saved = json.loads(meta_path.read_text(encoding="utf-8")).get("training_config")
    except (OSError, ValueError, AttributeError):
        return  # the trainer reads the checkpoint and names what is wrong with it
    if not isinstance(saved, dict):
        return
    saved = TrainConfig.current_names(saved, config.out)  # a run recorded under old names
    config.refuse_changes(saved, [k for k in TrainConfig.names()
                                  if k not in MAY_CHANGE_ON_RESUME], config.out)


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves behind (``robusttext.cli`` prints it)."""
    try:
        out = resolve_config(args).out
    except RobustTextError:
        out = "--out"
    return (f"the same command resumes the run in {out} from its last finished epoch (a "
            "checkpoint is written after every epoch)")


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.print_config:
        print(json.dumps(config.to_json(), indent=1))
        return 0
    from robusttext.options import check_out_folder
    from robusttext.train.applies import check_ranges, check_settings_act

    check_ranges(config)
    check_settings_act(config)
    if not config.progress:
        from robusttext.certify.cli import quiet_libraries

        quiet_libraries()  # transformers' own bars (loading, saving a bert folder) too
    check_out_folder(config.out)
    check_same_settings(config)
    from robusttext import distributed
    from robusttext.train.trainer import train

    if config.robust and config.warmup_epochs >= config.epochs:
        distributed.current().say(
            f"warning: --epochs {config.epochs} ends within the warm-up (--warmup-epochs "
            f"{config.warmup_epochs:g}), so no step perturbs the inputs and this trains a normal "
            "model; lower --warmup-epochs or raise --epochs")
    if config.robust and config.budget == 0:
        distributed.current().say(
            "warning: --budget 0 allows no change, so the worst case is the sentence itself and "
            "this trains a normal model; give --budget 1 or more (or none: no limit)")
    metrics = train(config)
    if not metrics:
        distributed.current().say("trained; no dev set given, so no metrics (pass --dev FILE)")
    return 0


__all__ = ["RobustTextError", "add_arguments", "resolve_config", "run"]
