"""``robusttext certify``: what is proven robust, per sentence and in total.

With no options, every shipped model is certified on the project's demo sentences at the budget
of the space it was trained for. Prints a table per model and budget; ``--json`` writes the full
report, ``--plot`` a figure of verified accuracy against the budget.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import robusttext
from robusttext.bounds import RELAXATIONS
from robusttext.bounds.pooling import TEXT_METHODS as METHODS
from robusttext.certify.certifier import DEFAULT_BUDGETS, DEFAULT_ENUMERATE_LIMIT, certify
from robusttext.certify.report import check_matplotlib, format_table, plot_accuracy, write_json
from robusttext.certify.soundness import SoundnessViolation
from robusttext.errors import RobustTextError

DEMO_SENTENCES = Path(robusttext.__file__).parent / "assets" / "demo_sentences.tsv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH|NAME",
                        help="checkpoint folder or shipped model name (default: every shipped "
                             "model)")
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
    parser.add_argument("--method", choices=("auto", *METHODS), default="auto",
                        help="bound method (default auto: budget-ibp for the CNNs and bags of "
                             "words, crown-ibp for other models)")
    parser.add_argument("--relaxation", choices=RELAXATIONS, default="exact",
                        help="substitution-set relaxation (default exact)")
    parser.add_argument("--limit", type=int, metavar="N", help="certify the first N sentences")
    parser.add_argument("--json", metavar="OUT", help="write the report as JSON")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="plot verified accuracy against the budget (needs matplotlib)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
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


def run(args: argparse.Namespace) -> int:
    budgets = parse_budgets(args.budget)
    if args.limit is not None and args.limit < 1:
        raise RobustTextError(f"--limit must be at least 1, got {args.limit}")
    if args.plot:
        check_matplotlib()
    from robusttext.text import load_text_model
    from robusttext.text.io import bundle_space

    names = _models(args.model)
    examples, source = _examples(args)
    flag_space = _flag_space(args, budgets)
    # Under torchrun (robusttext.distributed): join the group, this rank's device, rank 0 prints;
    # certify_sharded certifies this rank's batches and returns the merged single-process result.
    from robusttext import distributed

    job = distributed.start(args.device)
    if job.distributed:
        args.device = str(job.device)
        job.quiet_unless_main()
    report: dict = {"summary": [], "examples": [], "models": {}, "data": source}
    results = {}
    for name in names:
        bundle = load_text_model(name, args.device)
        space = bundle_space(bundle, flag_space)
        model_budgets = budgets or ([space.budget] if space.budget is not None
                                    else list(DEFAULT_BUDGETS))
        try:
            result = distributed.certify_sharded(
                certify, bundle.model, bundle.vocab, space, examples, budgets=model_budgets,
                method=args.method, relaxation=args.relaxation, batch_size=args.batch_size,
                enumerate_limit=args.enumerate_limit, beam_width=args.beam_width,
                proposals=args.proposals, device=args.device, progress=None)
        except SoundnessViolation as error:
            print(f"robusttext certify: SOUNDNESS VIOLATION ({bundle.name}): {error}",
                  file=sys.stderr)
            return 3
        results[bundle.name] = result
        print(f"{bundle.name}: {len(examples)} sentences from {source}; "
              f"{space.describe()}; {result.settings['method']} bounds, "
              f"{args.relaxation} relaxation")
        print(format_table(result))
        dropped = result.settings.get("dropped_candidates")
        if dropped is not None:
            reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items()
                                if k != "total" and v)
            print(f"sub-word candidates dropped: {dropped['total']}"
                  + (f" ({reasons})" if reasons else ""))
        print()
        part = result.to_json(model=bundle.name)
        report["summary"] += part["summary"]
        report["examples"] += part["examples"]
        report["models"][bundle.name] = {"path": str(bundle.path), "kind": bundle.kind,
                                         "settings": part["settings"]}
    if args.json and job.is_main:
        print(f"report: {write_json(args.json, report)}")
    if args.plot and job.is_main:
        print(f"plot: {plot_accuracy(args.plot, results)}")
    return 0
