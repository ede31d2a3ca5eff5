"""``robusttext perturb "TEXT"``: show a sentence's substitution set.

Prints each token with its candidates and the exact number of sentences in the set. The
vocabulary is open (every candidate is its own token), so nothing collapses into the unknown
token as it would under a model's vocabulary.
"""

from __future__ import annotations

import argparse
import warnings
from itertools import islice
from typing import TYPE_CHECKING

from robusttext.errors import RobustTextError
from robusttext.perturb.flips import BUILTIN_KEYBOARDS, CharacterFlips
from robusttext.perturb.loading import load_source
from robusttext.perturb.vocabulary import Vocabulary

if TYPE_CHECKING:
    from robusttext.perturb.space import PerturbationSpace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the sentence")
    add_space_arguments(parser)
    parser.add_argument("--budget", type=_budget, default=None, metavar="N|any",
                        help="at most N positions change (default any: any number, as in "
                             "certify and train)")
    parser.add_argument("--show", type=int, default=0, metavar="N",
                        help="also print the first N sentences of the set")


def _budget(text: str) -> int | None:
    """``--budget``: an integer, or ``any`` (no limit; None)."""
    if text.strip().lower() == "any":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'any', got {text!r}") from None


def add_space_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a perturbation space (all but the budget), shared with
    ``robusttext certify``; ``--sources`` names the sources as ``robusttext train`` does."""
    from robusttext.options import Deprecated, ListOf, add_list_flag

    add_list_flag(parser, "--sources", ListOf(metavar="NAME"),
                  help="substitution sources, as in robusttext train: qwerty (keyboard "
                       "character flips; the default at --level char), wordnet, "
                       "counterfitted (the neighbours from the cache), or JSON files (a word -> "
                       "list table, or a keyboard map)")
    parser.add_argument("--synonyms", action=Deprecated, metavar="counterfitted|wordnet|PATH",
                        replacement="--sources counterfitted|wordnet|PATH")
    parser.add_argument("--neighbors", action=Deprecated, metavar="PATH",
                        replacement="--sources PATH")
    parser.add_argument("--typos", action=Deprecated, nargs=0, const=True, default=False,
                        replacement="--sources qwerty")
    parser.add_argument("--keyboard", action=Deprecated, metavar="PATH",
                        replacement="--sources PATH (a keyboard map)")
    parser.add_argument("--max-flips-per-word", type=int, metavar="N",
                        help="flipped characters per word at the word level (default 1)")
    parser.add_argument("--level", choices=("word", "char"),
                        help="substitute words or single characters (default word)")
    parser.add_argument("--tokenizer", choices=("glue", "raw"),
                        help="glue: split on whitespace (SST-2's GLUE format); raw: nltk's "
                             "word tokenizer (default glue)")
    parser.add_argument("--max-candidates", type=int, default=None, metavar="N",
                        help="keep at most N candidates per position (cuts are reported)")
    parser.add_argument("--wordnet-senses", type=int, metavar="N",
                        help="WordNet: use each word's N most frequent senses (default 1)")


def space_flags_given(args: argparse.Namespace) -> bool:
    """True when the flags choose substitutions (so they describe a space of their own)."""
    return bool(args.sources or args.synonyms or args.neighbors or args.typos
                or args.level == "char")


def _flip_names(args: argparse.Namespace) -> bool:
    """Whether ``--sources`` may name keyboard flips (a built-in keyboard or a JSON file, which
    may be a keyboard map)."""
    return any(n in ("typos", *BUILTIN_KEYBOARDS) or n.lower().endswith(".json")
               for n in args.sources or [])


# The space flags that refine a source, and what each needs to act. Their command-line default
# is None (so a flag given with its default value is seen); ``SPACE_DEFAULTS`` fills them in.
REFINING = (("level", "a source"), ("tokenizer", "a source"), ("max_candidates", "a source"),
            ("keyboard", "--typos or --level char"),
            ("max_flips_per_word", "keyboard flips (--sources qwerty) at the word level"),
            ("wordnet_senses", "--sources wordnet"))
SPACE_DEFAULTS = {"level": "word", "tokenizer": "glue", "keyboard": "qwerty",
                  "max_flips_per_word": 1, "wordnet_senses": 1}
AT_LEAST_ONE = ("max_candidates", "max_flips_per_word", "wordnet_senses")


def check_space_flags(args: argparse.Namespace, model_space: str = "") -> None:
    """Refuse, in one line, a space flag out of range or that would change nothing: one without
    the source it refines, ``--neighbors`` beside another synonym source. ``model_space``: what
    a source does where there is another space (certify: it replaces the model's own), said in
    the message. Then fills in the defaults of the flags not given (``SPACE_DEFAULTS``)."""
    level = args.level or SPACE_DEFAULTS["level"]
    default_flips = level == "char" and not args.sources  # the flips --level char adds
    acts = {"a source": space_flags_given(args),
            "--typos or --level char": args.typos or default_flips,
            "keyboard flips (--sources qwerty) at the word level": level == "word" and (
                args.typos or _flip_names(args)),
            "--sources wordnet": args.synonyms == "wordnet" or "wordnet" in (args.sources or [])}
    for name, needs in REFINING:
        value = getattr(args, name)
        if value is None or acts[needs]:
            continue
        shown = f"--{name.replace('_', '-')} {value}"
        if needs == "a source":
            raise RobustTextError(
                f"{shown} changes nothing without a source of substitutions (--sources or "
                f"--level char{', ' + model_space if model_space else ''}); give one, or leave "
                "the flag out")
        raise RobustTextError(f"{shown} changes nothing without {needs}; give it, or leave "
                              "the flag out")
    for name in AT_LEAST_ONE:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise RobustTextError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.neighbors and args.synonyms not in (None, "counterfitted"):
        raise RobustTextError(f"--neighbors goes with --synonyms counterfitted only, not with "
                              f"--synonyms {args.synonyms}")
    for name, default in SPACE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def build_space(args: argparse.Namespace) -> PerturbationSpace:
    """The PerturbationSpace that the command-line options describe: the ``--sources`` (each
    through ``load_source``, as ``robusttext train`` reads them), then those of the deprecated
    spellings, then keyboard flips at the character level when no source is named."""
    from robusttext.perturb.space import PerturbationSpace  # loads torch: not for --help

    sources = []
    for name in args.sources or []:
        options = ({"max_senses": args.wordnet_senses} if name == "wordnet" else {}
                   if name == "counterfitted" else {"max_flips_per_word": args.max_flips_per_word})
        sources.append(load_source(name, **options))
    synonyms = args.synonyms or ("counterfitted" if args.neighbors else None)
    if args.level == "char":
        if synonyms:
            raise RobustTextError("--synonyms and --neighbors work at the word level only")
    elif synonyms == "counterfitted":
        sources.append(load_source("counterfitted", path=args.neighbors))
    elif synonyms == "wordnet":
        sources.append(load_source("wordnet", max_senses=args.wordnet_senses))
    elif synonyms:
        if args.neighbors:
            raise RobustTextError("--neighbors goes with --synonyms counterfitted only")
        sources.append(load_source(synonyms))
    if args.typos or (args.level == "char" and not args.sources):
        sources.append(CharacterFlips(args.keyboard, max_flips_per_word=args.max_flips_per_word))
    if not sources:
        raise RobustTextError("no substitutions chosen: give --sources (qwerty, wordnet, "
                              "counterfitted or a JSON file)")
    return PerturbationSpace(sources, budget=args.budget, level=args.level,
                             tokenizer=args.tokenizer, max_candidates=args.max_candidates)


def _shown(token: str, level: str) -> str:
    return repr(token) if level == "char" else token


def run(args: argparse.Namespace) -> int:
    for flag, value in (("--budget", args.budget), ("--show", args.show)):
        if value is not None and value < 0:
            raise RobustTextError(f"{flag} must be >= 0, got {value}")
    check_space_flags(args)
    space = build_space(args)
    tokens, protected = space.split(args.text)
    strings = [space.token_candidates(t, p) for t, p in zip(tokens, protected, strict=True)]
    vocab = Vocabulary.build([tokens, *strings])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cuts are reported below
        _, entries = space.candidates(args.text, vocab)
    print(f"space: {space.describe()}")
    width = max(len(_shown(t, space.level)) for t in tokens)
    for position, (token, (_, candidates)) in enumerate(zip(tokens, entries, strict=True)):
        listed = ", ".join(_shown(vocab.token(c), space.level) for c in candidates)
        line = f"{position:4d}  {_shown(token, space.level):<{width}}"
        print(f"{line}  {len(candidates)}: {listed}" if candidates else line.rstrip())
    if space.truncations:
        cut = ", ".join(f"{t} ({n} -> {k})" for t, (n, k) in space.truncations.items())
        print(f"note: --max-candidates {space.max_candidates} cut the candidates of: {cut}")
    print(f"sentences in the set: {space.count(args.text, vocab)} (the original included)")
    if args.show > 0:
        joiner = "" if space.level == "char" else " "
        for ids in islice(space.enumerate(args.text, vocab), args.show):
            print("  " + joiner.join(vocab.token(i) for i in ids))
    return 0
