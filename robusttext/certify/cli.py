"""``robusttext certify``: what is proven robust, per sentence and in total.

With no options, every shipped model is certified on the project's demo sentences at the budget
of the space it was trained for. Prints a table per model and budget; ``--json`` writes the full
report (``-``: to standard output), ``--html`` a page with a row per sentence, ``--plot`` a
figure of verified accuracy against the budget. ``robusttext certify "a sentence"`` shows one
sentence whole: its prediction, what may change, and what is proven at each budget.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import robusttext
from robusttext.bounds import RELAXATIONS
from robusttext.bounds.alpha import ALPHA_STEPS
from robusttext.certify.certifier import DEFAULT_BUDGETS, DEFAULT_ENUMERATE_LIMIT
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO, EXACT_METHOD
from robusttext.methods import TEXT_METHODS as METHODS
from robusttext.text.io import SHIPPED_MODELS

DEMO_SENTENCES = Path(robusttext.__file__).parent / "assets" / "demo_sentences.tsv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", metavar="SENTENCE",
                        help="certify this one sentence and show it whole (prediction, the "
                             "positions that may change, the result per budget, a flipping "
                             "rewrite when one is found); default: certify --data")
    parser.add_argument("--label", type=int, metavar="N",
                        help="with SENTENCE: its true label (default: the model's prediction, "
                             "so the question is whether the prediction can change)")
    parser.add_argument("--model", metavar="PATH|NAME",
                        help="checkpoint folder or shipped model name: "
                             f"{', '.join(SHIPPED_MODELS)} (default: every shipped model)")
    parser.add_argument("--data", metavar="HUB_ID|PATH",
                        help="hub data set (stanfordnlp/sst2, imdb) or a .tsv/.csv/.jsonl file "
                             "(default: the demo sentences)")
    parser.add_argument("--split", metavar="NAME",
                        help="split of a hub data set (default: validation, else test)")
    parser.add_argument("--text-column", metavar="NAME",
                        help="column of the text (default: sentence or text)")
    parser.add_argument("--label-column", metavar="NAME", default="label",
                        help="column of the label (default: label)")
    parser.add_argument("--budget", metavar="N[,N...]",
                        help="changed positions allowed, e.g. 1,2,3 ('any': no limit; default: "
                             "the model's budget, else 1,2,3)")
    parser.add_argument("--method", choices=(AUTO, *METHODS, EXACT_METHOD), default=AUTO,
                        help="bound method (default auto: budget-ibp for the CNNs and bags of "
                             "words, crown-ibp for other models; exact: auto's bounds, then "
                             "branch and bound decides every sentence they leave open)")
    parser.add_argument("--exact-time-limit", type=float, default=10.0, metavar="SECONDS",
                        help="with --method exact: seconds of search per sentence and budget "
                             "before it is reported as a timeout (default 10)")
    parser.add_argument("--alpha-steps", type=int, default=ALPHA_STEPS, metavar="N",
                        help="with --method alpha-crown: gradient steps on the relaxation "
                             f"slopes (0: CROWN's bound; default {ALPHA_STEPS})")
    parser.add_argument("--relaxation", choices=RELAXATIONS, default="exact",
                        help="substitution-set relaxation (default exact)")
    parser.add_argument("--limit", type=int, metavar="N", help="certify the first N sentences")
    parser.add_argument("--json", metavar="OUT.json|-",
                        help="write the report as JSON ('-': to standard output, the table "
                             "then goes to standard error)")
    parser.add_argument("--html", metavar="OUT.html",
                        help="write a self-contained HTML page: a row per sentence, its "
                             "changeable tokens marked, filters by outcome, the summary")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="plot verified accuracy against the budget (needs matplotlib; "
                             ".png, .pdf, .svg or .jpg)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                        help="torch device (default auto: CUDA when present, else CPU)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="sentences per batch (default 32)")
    parser.add_argument("--enumerate-limit", type=int, default=DEFAULT_ENUMERATE_LIMIT,
                        metavar="N", help="enumerate sets of at most N sentences (default "
                                          f"{DEFAULT_ENUMERATE_LIMIT:,}; 0: never)")
    parser.add_argument("--beam-width", type=int, default=4, metavar="N",
                        help="attack beam width (1: greedy; default 4)")
    parser.add_argument("--proposals", type=int, default=16, metavar="N",
                        help="substitutions the attack evaluates per sentence and step, ranked "
                             "by gradient (default 16)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (it is also off when standard error is not a "
                             "terminal)")
    _add_space_flags(parser)


def _add_space_flags(parser: argparse.ArgumentParser) -> None:
    """The perturbation-space flags of ``robusttext perturb`` (--synonyms, --typos, --level,
    ...): they replace the space a model carries, and give one to a model that has none."""
    from robusttext.perturb.cli import add_space_arguments

    add_space_arguments(parser.add_argument_group(
        "perturbation space (as in robusttext perturb; overrides the model's own)"))


def _flag_space(args: argparse.Namespace, budgets: list[int | None] | None):
    """The space the flags describe (its budget: the largest of --budget), or None."""
    from robusttext.perturb.cli import build_space, space_flags_given

    if not space_flags_given(args):
        return None
    limited = [b for b in budgets or [] if b is not None]
    budget = None if not limited or None in (budgets or []) else max(limited)
    return build_space(argparse.Namespace(**{**vars(args), "budget": budget}))


def parse_budgets(text: str | None) -> list[int | None] | None:
    """``"1,2,3"`` -> ``[1, 2, 3]``; ``"any"`` -> ``[None]``; RobustTextError on anything else."""
    if text is None:
        return None
    budgets: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part.lower() == "any":
            budgets.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise RobustTextError(f"--budget: {part!r} is not an integer (e.g. --budget 1,2,3)"
                                  ) from None
        if value < 0:
            raise RobustTextError(f"--budget: a budget is an integer >= 0, got {value}")
        budgets.append(value)
    return budgets


def _models(name: str | None) -> list[str]:
    from robusttext.text import SHIPPED_MODELS, shipped_model_path

    if name is not None:
        return [name]
    present = [n for n in SHIPPED_MODELS if shipped_model_path(n).is_dir()]
    if not present:
        raise RobustTextError("no shipped models are installed (looked for "
                              f"{', '.join(SHIPPED_MODELS)}); pass --model PATH")
    return present


def _examples(args: argparse.Namespace):
    from robusttext.data import load_examples

    source = args.data
    if source is None:
        if not DEMO_SENTENCES.is_file():
            raise RobustTextError(f"the demo sentences are missing ({DEMO_SENTENCES}); pass "
                                  "--data")
        source = DEMO_SENTENCES
    return load_examples(source, split=args.split, text_column=args.text_column,
                         label_column=args.label_column, limit=args.limit), str(source)


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path and format, checked before any work starts."""
    from robusttext.certify.report import HTML_FORMATS, PLOT_FORMATS, check_matplotlib
    from robusttext.options import check_output

    if args.json:
        check_output(args.json, "--json")
    if args.html:
        check_output(args.html, "--html", HTML_FORMATS)
    if args.plot:
        if args.plot == "-":
            raise RobustTextError("--plot -: a plot goes to a file; name one")
        check_output(args.plot, "--plot", PLOT_FORMATS)
        check_matplotlib()
    if args.html == "-":
        raise RobustTextError("--html -: the page goes to a file; name one")
    named = [p for p in (args.json, args.html, args.plot) if p and p != "-"]
    same = {Path(p).resolve() for p in named}
    if len(same) < len(named):
        raise RobustTextError("--json, --html and --plot must name different files")


def run(args: argparse.Namespace) -> int:
    budgets = parse_budgets(args.budget)
    if not args.exact_time_limit > 0:
        raise RobustTextError(f"--exact-time-limit must be above 0 seconds, got "
                              f"{args.exact_time_limit}")
    if args.limit is not None and args.limit < 1:
        raise RobustTextError(f"--limit must be at least 1, got {args.limit}")
    for flag, value, least in (("--batch-size", args.batch_size, 1),
                               ("--enumerate-limit", args.enumerate_limit, 0),
                               ("--beam-width", args.beam_width, 1),
                               ("--proposals", args.proposals, 1)):
        if value < least:
            raise RobustTextError(f"{flag} must be at least {least}, got {value}")
    if args.text is not None:
        for flag in ("data", "split", "text_column", "limit", "json", "html", "plot"):
            if getattr(args, flag) is not None:
                raise RobustTextError(f"--{flag.replace('_', '-')} goes with --data, not with "
                                      "one SENTENCE")
    elif args.label is not None:
        raise RobustTextError("--label goes with one SENTENCE")
    check_outputs(args)
    # With --json -, standard output holds the JSON only; everything else goes to stderr.
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json == "-" else print
    from robusttext import distributed
    from robusttext.certify.report import (
        describe_space,
        format_table,
        plot_accuracy,
        write_json,
    )
    from robusttext.certify.sharded import certify_sharded
    from robusttext.certify.soundness import SoundnessViolation
    from robusttext.text import load_text_model
    from robusttext.text.io import bundle_space

    names = _models(args.model)
    flag_space = _flag_space(args, budgets)
    if args.text is not None:
        from robusttext.certify.sentence import show_sentence

        bundles = [load_text_model(name, _device(args.device)) for name in names]
        bundles = [replace(b, space=bundle_space(b, flag_space)) for b in bundles]
        try:
            for bundle in bundles:
                show_sentence(bundle, args.text, args.label, budgets, args, say)
        except SoundnessViolation as error:
            print(f"robusttext certify: SOUNDNESS VIOLATION: {error}", file=sys.stderr)
            return 3
        return 0
    examples, source = _examples(args)
    # Under torchrun (robusttext.distributed): join the group, this rank's device, rank 0 prints;
    # certify_sharded certifies this rank's batches and returns the merged single-process result.
    job = distributed.start(args.device)
    args.device = str(job.device)
    if job.distributed:
        job.quiet_unless_main()
    report: dict = {"summary": [], "examples": [], "models": {}, "data": source}
    results, bundles = {}, {}
    for name in names:
        bundle = load_text_model(name, args.device)
        bundle = replace(bundle, space=bundle_space(bundle, flag_space))  # the flags' or its own
        space = bundle.space
        model_budgets = budgets or ([space.budget] if space.budget is not None
                                    else list(DEFAULT_BUDGETS))
        try:
            result = certify_sharded(
                bundle.model, bundle.vocab, space, examples, budgets=model_budgets,
                method=args.method, relaxation=args.relaxation, batch_size=args.batch_size,
                enumerate_limit=args.enumerate_limit, beam_width=args.beam_width,
                proposals=args.proposals, device=args.device,
                progress=False if args.quiet else None, alpha_steps=args.alpha_steps,
                exact_time_limit=args.exact_time_limit)
        except SoundnessViolation as error:
            print(f"robusttext certify: SOUNDNESS VIOLATION ({bundle.name}): {error}",
                  file=sys.stderr)
            return 3
        results[bundle.name], bundles[bundle.name] = result, bundle
        aliases = getattr(bundle.vocab, "aliases", None)
        reading = (f"; {len(aliases)} variants read as the word they vary" if aliases else "")
        say(f"{bundle.name}: {len(examples)} sentences from {source}; "
            f"{describe_space(bundle.space, model_budgets)}{reading}; "
            f"{result.settings['method']} bounds, {args.relaxation} relaxation")
        say(format_table(result))
        dropped = result.settings.get("dropped_candidates")
        if dropped is not None:
            reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items()
                                if k != "total" and v)
            say(f"sub-word candidates dropped: {dropped['total']}"
                + (f" ({reasons})" if reasons else ""))
        say()
        part = result.to_json(model=bundle.name)
        report["summary"] += part["summary"]
        report["examples"] += part["examples"]
        report["models"][bundle.name] = {"path": str(bundle.path), "kind": bundle.kind,
                                         "settings": part["settings"]}
    if args.json and job.is_main:
        say(f"report: {write_json(args.json, report)}")
    if args.html and job.is_main:
        from robusttext.certify.html import write_html

        say(f"page: {write_html(args.html, results, bundles, source)}")
    if args.plot and job.is_main:
        say(f"plot: {plot_accuracy(args.plot, results)}")
    return 0


def _device(name: str) -> str:
    from robusttext.distributed import rank_device

    return str(rank_device(name, 0, distributed=False))
