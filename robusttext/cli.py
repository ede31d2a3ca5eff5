"""The `robusttext` command.

Each sub-command lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int`` (and may define ``interrupted(args) -> str``, what Ctrl-C means for it);
the module is imported only when its command runs.

Every error a user can cause ends in one line on standard error, never a traceback: a
``RobustTextError`` (exit status 2), a command-line mistake (``Parser.error``, with a "did you
mean" where a near spelling exists; exit status 2), Ctrl-C (exit status 130) and a closed
standard output (``robusttext certify --json - | head``; exit status 141).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import shlex
import sys

from robusttext.errors import RobustTextError

COMMANDS = {
    "certify": ("robusttext.certify.cli", "certify a sentiment classifier against substitutions"),
    "perturb": ("robusttext.perturb.cli", "show the substitution set of a sentence"),
    "train": ("robusttext.train.cli", "train a (certifiably robust) sentiment classifier"),
    "vision": ("robusttext.vision.cli", "train and certify image classifiers"),
}


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (two with a "did you mean"), naming the
    command and pointing to its ``--help``, instead of the whole usage; list flags shown in
    the one style (``options.HelpFormatter``)."""

    def __init__(self, *args, **kwargs):
        from robusttext.options import HelpFormatter

        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        from robusttext.options import settle_trailing

        namespace, extras = super().parse_known_args(args, namespace)
        left = settle_trailing(namespace)  # certify's SENTENCE after --budget 1,2
        return namespace, extras + ([left] if left is not None else [])

    def error(self, message: str):
        hint = suggestion(self, message)
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """``"; did you mean X?"`` for an invalid choice or an unknown option close to a real one
    (never a deprecated spelling), else ``""``."""
    choice = (re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
              or re.search(r"'([^']*)' is not one of (.*)$", message))  # a list flag's item
    if choice:
        wanted = choice.group(1)
        options = re.findall(r"'([^']*)'", choice.group(2)) or [
            o.strip() for o in choice.group(2).split(",")]
    else:
        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if not unknown:
            return ""
        wanted = unknown.group(1).split("=")[0]
        from robusttext.options import Deprecated

        options = [o for action in parser._actions if not isinstance(action, Deprecated)
                   for o in action.option_strings]  # the current spellings only
    close = difflib.get_close_matches(wanted, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from robusttext import __version__

    parser = Parser(
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
    args = None
    try:
        parser = build_parser(argv)
        args, extras = parser.parse_known_args(argv)
        if extras:
            command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
        if args.command is None:
            parser.print_help()
            return 2
        args.command_line = shlex.join(["robusttext", *argv])
        module = importlib.import_module(COMMANDS[args.command][0])
        return module.run(args)
    except RobustTextError as error:
        print(f"{_name(args)}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        module = sys.modules.get(COMMANDS[args.command][0]) if args and args.command else None
        said = getattr(module, "interrupted", None)
        print(f"{_name(args)}: interrupted" + (f"; {said(args)}" if said else ""),
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of standard output left (``| head``): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def command_parser(parser: argparse.ArgumentParser,
                   args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub-)command ``args`` ran: ``robusttext vision certify``'s, say."""
    for dest in ("command", "vision_command"):
        chosen = getattr(args, dest, None)
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not chosen or not children or chosen not in children[0].choices:
            break
        parser = children[0].choices[chosen]
    return parser


def _name(args: argparse.Namespace | None) -> str:
    """``robusttext``, ``robusttext certify`` or ``robusttext vision certify``."""
    words = ["robusttext"]
    if args is not None and getattr(args, "command", None):
        words.append(args.command)
        if getattr(args, "vision_command", None):
            words.append(args.vision_command)
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
