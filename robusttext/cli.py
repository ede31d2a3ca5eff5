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
