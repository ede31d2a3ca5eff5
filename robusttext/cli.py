"""The `robusttext` command.

Each sub-command lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robusttext.errors import RobustTextError

COMMANDS = {
    "certify": ("robusttext.certify.cli", "certify a sentiment classifier against substitutions"),
    "perturb": ("robusttext.perturb.cli", "show the substitution set of a sentence"),
    "train": ("robusttext.train.cli", "train a (certifiably robust) sentiment classifier"),
    "vision": ("robusttext.vision.cli", "train and certify image classifiers"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from robusttext import __version__

    parser = argparse.ArgumentParser(
        prog="robusttext", description="Certify and train text (and image) classifiers robust "
        "to substitutions. With no command: certify the shipped models on the demo sentences.")
    parser.add_argument("--version", action="version", version=f"robusttext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            importlib.import_module(module).add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["certify"]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args)
    except RobustTextError as error:
        print(f"robusttext {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
