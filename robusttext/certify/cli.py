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
from robusttext.certify.defaults import DEFAULT_BUDGETS, DEFAULT_ENUMERATE_LIMIT
from robusttext.errors import RobustTextError
from robusttext.methods import ALPHA_STEPS, AUTO, EXACT_METHOD, RELAXATIONS
from robusttext.methods import TEXT_METHODS as METHODS
from robusttext.shipped import default_models, shipped_model_path, shipped_models

BATCH_SIZE = 32
"""Sentences per batch when --batch-size is not given (it is refused with one SENTENCE)."""

SHIPPED_MODELS = shipped_models("text")
METHOD_CHOICES = (AUTO, *METHODS, EXACT_METHOD)  # --method's items

DEMO_SENTENCES = Path(robusttext.__file__).parent / "assets" / "demo_sentences.tsv"
# The demo's enumeration budget per model, so that `robusttext certify` answers in seconds.
DEMO_ENUMERATE_SECONDS = 0.3


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
                             f"{', '.join(SHIPPED_MODELS)} (default: every shipped model but the "
                             "transformers folders)")
    parser.add_argument("--data", metavar="HUB_ID|PATH",
                        help="hub data set (stanfordnlp/sst2, imdb) or a .tsv/.csv/.jsonl file "
                             "(default: the demo sentences)")
    parser.add_argument("--split", metavar="NAME",
                        help="split of a hub data set (default: validation, else test)")
    parser.add_argument("--text-column", metavar="NAME",
                        help="column of the text (default: sentence or text)")
    parser.add_argument("--label-column", metavar="NAME",
                        help="column of the label (default: label)")
    from robusttext.options import ListOf, add_list_flag

    add_list_flag(parser, "--budget", ListOf(budget_item, metavar="N"), then="text",
                  help="changed positions allowed, e.g. 1,2,3 ('any': no limit; default: the "
                       "model's budget, else 1,2,3)")
    add_list_flag(parser, "--method", ListOf(choices=METHOD_CHOICES, metavar="M"),
                  default=[AUTO], then="text",
                  help=f"bound methods: {', '.join(METHOD_CHOICES)}, e.g. ibp,crown-ibp "
                       "(default auto: budget-ibp for the CNNs and bags of words, crown-ibp "
                       "for other models; exact: auto's bounds, then branch and bound decides "
                       "every sentence they leave open); with several, the attack and the "
                       "enumeration run once and each method's verified outcome is reported "
                       "(the first in the usual fields), as in robusttext vision certify")
    parser.add_argument("--exact-time-limit", type=float, metavar="SECONDS",
                        help="with exact in --method: seconds of search per sentence and budget "
                             "before it is reported as a timeout (default 10)")
    parser.add_argument("--alpha-steps", type=int, metavar="N",
                        help="with alpha-crown in --method: gradient steps on the relaxation "
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
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help=f"sentences per batch (default {BATCH_SIZE})")
    parser.add_argument("--enumerate-limit", type=int, default=DEFAULT_ENUMERATE_LIMIT,
                        metavar="N", help="enumerate sets of at most N sentences (default "
                                          f"{DEFAULT_ENUMERATE_LIMIT:,}; 0: never)")
    parser.add_argument("--enumerate-seconds", metavar="S|none",
                        help="time budget of the enumeration, per model: once spent, the "
                             "sentences left are not enumerated and the table says how many "
                             f"(default: {DEMO_ENUMERATE_SECONDS:g} on the demo sentences, "
                             "none with --data or a SENTENCE)")
    parser.add_argument("--beam-width", type=int, default=4, metavar="N",
                        help="attack beam width (1: greedy; default 4)")
    parser.add_argument("--proposals", type=int, default=16, metavar="N",
                        help="substitutions the attack evaluates per sentence and step, ranked "
                             "by gradient (default 16)")
    from robusttext.options import add_quiet_flag

    add_quiet_flag(parser)  # as in train and vision
    _add_space_flags(parser)


def _add_space_flags(parser: argparse.ArgumentParser) -> None:
    """The perturbation-space flags of ``robusttext perturb`` (--sources, --level,
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
    space = build_space(argparse.Namespace(**{**vars(args), "budget": budget}))
    space.from_flags = True  # not the model's own space (see report.describe_space)
    return space


def check_flags_act(args: argparse.Namespace) -> None:
    """Refuse, in one line, a flag that would change nothing: a space flag without the source
    it refines (the model's own space is used), ``--alpha-steps`` without ``alpha-crown``."""
    from robusttext.perturb.cli import check_space_flags

    check_space_flags(args, model_space="which replaces the model's own space")
    if args.alpha_steps is not None and args.alpha_steps < 0:
        raise RobustTextError(f"--alpha-steps must be at least 0, got {args.alpha_steps}")
    methods = method_names(args.method)
    if args.alpha_steps is not None and "alpha-crown" not in methods:
        raise RobustTextError(f"--alpha-steps {args.alpha_steps} goes with --method "
                              f"alpha-crown, not --method {','.join(methods)}")


def method_names(given) -> list[str]:
    """``--method``'s list (``["ibp", "crown"]``), or its text (``"ibp,crown"``, read by
    ``options.ListOf``), as its distinct names in order; RobustTextError on a bad item."""
    from robusttext.options import ListOf

    try:
        names = ListOf(choices=METHOD_CHOICES)(given)
    except argparse.ArgumentTypeError as error:
        raise RobustTextError(f"--method: {error}") from None
    if not names:
        raise RobustTextError("--method: name at least one bound method")
    return list(dict.fromkeys(names))


def parse_seconds(text: str | None, demo: bool) -> float | None:
    """``--enumerate-seconds``: ``"none"`` -> None (no budget), ``"2.5"`` -> 2.5; not given:
    the demo's budget on the demo sentences, else None."""
    if text is None:
        return DEMO_ENUMERATE_SECONDS if demo else None
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise RobustTextError(f"--enumerate-seconds: {text!r} is not a number of seconds > 0 "
                              "(or none)")
    return value


def budget_item(text: str) -> int | None:
    """One budget of ``--budget``: an integer >= 0, or ``any`` (no limit: None)."""
    if text.strip().lower() == "any":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not an integer or 'any' (e.g. --budget 1,2,3)") from None
    if value < 0:
        raise ValueError("a budget is an integer >= 0")
    return value


def parse_budgets(given) -> list[int | None] | None:
    """``--budget``'s list (``[1, 2, 3]``), or its text (``"1,2,3"``, ``"any"``, read by
    ``options.ListOf``); None when not given; RobustTextError on a bad item."""
    if given is None or (isinstance(given, list) and all(
            b is None or isinstance(b, int) for b in given)):
        return given
    from robusttext.options import ListOf

    try:
        return ListOf(budget_item)(given)
    except argparse.ArgumentTypeError as error:
        raise RobustTextError(f"--budget: {error}") from None


def check_model_name(name: str) -> str | None:
    """Before any loading: a shipped image model points to ``robusttext vision certify``; a
    name that is no folder and close to a shipped model's gets a "did you mean"; a hub id
    (``ORG/NAME``) on a machine without network switches the Hugging Face libraries offline,
    so that they read their cache at once instead of retrying for half a minute; returns why
    the hub cannot be reached then (else None)."""
    import difflib

    from robusttext.shipped import shipped_models

    if Path(name).exists() or name in SHIPPED_MODELS:
        return None
    if name in shipped_models("vision"):
        raise RobustTextError(f"--model {name} is an image model; certify it with robusttext "
                              f"vision certify --model {name}")
    close = difflib.get_close_matches(name, list(SHIPPED_MODELS), n=1, cutoff=0.6)
    if close:
        raise RobustTextError(f"--model {name}: no such folder or shipped model; did you mean "
                              f"{close[0]}?")
    if "/" in name.strip("/") and not name.startswith((".", "/")):
        from robusttext.data.hub import offline_unless_reachable

        return offline_unless_reachable()
    return None


def _models(name: str | None) -> list[str]:
    """``[name]``, or the shipped models a run with no ``--model`` certifies."""
    if name is not None:
        return [name]
    present = [n for n in default_models("text") if shipped_model_path(n).is_dir()]
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
                         label_column=args.label_column or "label", limit=args.limit), str(source)


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
    enumerate_seconds = parse_seconds(args.enumerate_seconds,
                                      demo=args.data is None and args.text is None)
    _check_args(args, budgets)
    # Output folders that do not exist yet: created when written, and said so.
    created = {p: f" (created the folder {Path(p).parent})" for p in (args.json, args.html,
               args.plot) if p and p != "-" and not Path(p).parent.exists()}
    if args.quiet:
        quiet_libraries()
    # With --json -, standard output holds the JSON only; everything else goes to stderr.
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json == "-" else print
    load = _loader(args.model)
    names = _models(args.model)
    if args.model is None:
        defaults = default_models("text")
        others = [n for n in SHIPPED_MODELS if n not in defaults
                  and shipped_model_path(n).is_dir()]
        if others:
            say(f"not in the default run (transformers folders; importing transformers takes "
                f"seconds): {', '.join(others)}; certify with --model {others[0]}")
    flag_space = _flag_space(args, budgets)
    options = certify_options(args, enumerate_seconds)
    if args.text is not None:
        return _run_sentence(args, names, flag_space, budgets, options, load, say, created)
    return _run_data(args, names, flag_space, budgets, options, load, say, created)


def certify_options(args: argparse.Namespace, enumerate_seconds: float | None) -> dict:
    """The keyword arguments of ``certify`` that the flags set, read once: the method choice
    as one ``BoundSettings`` per method (``--method``; one method: the value itself, several:
    their tuple), with ``--relaxation``, ``--alpha-steps``,
    ``--exact-time-limit``; a flag not given: its default), the batch size, the enumeration
    and the attack settings, and the progress bar."""
    from robusttext.methods import bound_settings

    bounds = tuple(bound_settings(name, relaxation=args.relaxation,
                                  alpha_steps=args.alpha_steps,
                                  exact_time_limit=args.exact_time_limit)
                   for name in method_names(args.method))
    return {"method": bounds[0] if len(bounds) == 1 else bounds, "batch_size": args.batch_size,
            "enumerate_limit": args.enumerate_limit, "enumerate_seconds": enumerate_seconds,
            "beam_width": args.beam_width, "proposals": args.proposals,
            "progress": False if args.quiet else None}


def _check_args(args: argparse.Namespace, budgets) -> None:
    """Refuse, before any work, flags that are out of range, that do not go together or that
    would change nothing, and output paths that cannot be written."""
    if args.exact_time_limit is not None:
        if not args.exact_time_limit > 0:
            raise RobustTextError(f"--exact-time-limit must be above 0 seconds, got "
                                  f"{args.exact_time_limit}")
        methods = method_names(args.method)
        if EXACT_METHOD not in methods:
            raise RobustTextError(f"--exact-time-limit {args.exact_time_limit:g} goes with "
                                  f"--method exact, not --method {','.join(methods)}")
    if args.limit is not None and args.limit < 1:
        raise RobustTextError(f"--limit must be at least 1, got {args.limit}")
    if args.text is not None and args.batch_size is not None:
        raise RobustTextError("--batch-size goes with --data (many sentences), not with one "
                              "SENTENCE")
    if args.batch_size is None:
        args.batch_size = BATCH_SIZE
    for flag, value, least in (("--batch-size", args.batch_size, 1),
                               ("--enumerate-limit", args.enumerate_limit, 0),
                               ("--beam-width", args.beam_width, 1),
                               ("--proposals", args.proposals, 1)):
        if value < least:
            raise RobustTextError(f"{flag} must be at least {least}, got {value}")
    if args.text is not None:
        if args.data is not None:
            raise RobustTextError("give one SENTENCE or --data, not both")
        for flag in ("split", "text_column", "label_column", "limit", "html", "plot",
                     "enumerate_seconds"):
            if getattr(args, flag) is not None:
                raise RobustTextError(f"--{flag.replace('_', '-')} goes with --data (many "
                                      "sentences), not with one SENTENCE")
    elif args.label is not None:
        raise RobustTextError("--label goes with one SENTENCE")
    check_flags_act(args)
    check_outputs(args)
    if args.plot and budgets == [None]:
        raise RobustTextError("--plot: --budget any has no axis to plot; give budgets such as "
                              "--budget 1,2,3")


def _loader(model: str | None):
    """``load(name, device)``: the bundle of a model; with a hub id robusttext could not reach,
    an error that says so."""
    from robusttext.text import load_text_model

    unreachable = check_model_name(model) if model is not None else None

    def load(name: str, device: str):
        try:
            return load_text_model(name, device)
        except RobustTextError as error:
            if unreachable is None:
                raise
            raise RobustTextError(f"{error} (robusttext set it: the hub cannot be reached, "
                                  f"{unreachable})") from None

    return load


def _run_sentence(args, names, flag_space, budgets, options, load, say, created) -> int:
    """One SENTENCE, shown whole for each model; 3 on a soundness violation."""
    from robusttext.certify.report import write_json
    from robusttext.certify.sentence import show_sentence
    from robusttext.certify.soundness import SoundnessViolation
    from robusttext.text.io import bundle_space

    bundles = [load(name, _device(args.device)) for name in names]
    bundles = [replace(b, space=bundle_space(b, flag_space)) for b in bundles]
    for bundle in bundles:
        unfinished = unfinished_training(bundle.meta)
        if unfinished:
            say(f"note: {bundle.name}: {unfinished}")
    report = {"summary": [], "examples": [], "models": {}, "data": "SENTENCE"}
    try:
        for bundle in bundles:
            result = show_sentence(bundle, args.text, args.label, budgets, options, say)
            _add_to_report(report, bundle, result)
    except SoundnessViolation as error:
        print(f"robusttext certify: SOUNDNESS VIOLATION: {error}", file=sys.stderr)
        return 3
    if args.json:
        say(f"report: {write_json(args.json, report)}{created.get(args.json, '')}")
    return 0


def _run_data(args, names, flag_space, budgets, options, load, say, created) -> int:
    """The sentences of --data (or the demo) for each model: a table per model, then the
    JSON, HTML and plot; 3 on a soundness violation."""
    from robusttext import distributed
    from robusttext.certify.report import (
        bounds_used,
        describe_space,
        format_table,
        plot_accuracy,
        write_json,
    )
    from robusttext.certify.sharded import certify_sharded
    from robusttext.certify.soundness import SoundnessViolation
    from robusttext.text.io import bundle_space

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
        bundle = load(name, args.device)
        bundle = replace(bundle, space=bundle_space(bundle, flag_space))  # the flags' or its own
        unfinished = unfinished_training(bundle.meta)
        if unfinished:
            say(f"note: {bundle.name}: {unfinished}")
        space = bundle.space
        model_budgets = budgets or ([space.budget] if space.budget is not None
                                    else list(DEFAULT_BUDGETS))
        try:
            result = certify_sharded(bundle.model, bundle.vocab, space, examples,
                                     budgets=model_budgets, device=args.device, **options)
        except SoundnessViolation as error:
            print(f"robusttext certify: SOUNDNESS VIOLATION ({bundle.name}): {error}",
                  file=sys.stderr)
            return 3
        results[bundle.name], bundles[bundle.name] = result, bundle
        aliases = getattr(bundle.vocab, "aliases", None)
        reading = (f"; {len(aliases)} variants read as the word they vary" if aliases else "")
        say(f"{bundle.name}: {len(examples)} sentence{'' if len(examples) == 1 else 's'} from "
            f"{source}; "
            f"{describe_space(bundle.space, model_budgets)}{reading}; "
            f"{bounds_used(result.settings)} bounds, {args.relaxation} relaxation")
        say(format_table(result))
        dropped = result.settings.get("dropped_candidates")
        if dropped is not None:
            reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items()
                                if k != "total" and v)
            say(f"sub-word candidates dropped: {dropped['total']}"
                + (f" ({reasons})" if reasons else ""))
        say()
        _add_to_report(report, bundle, result)
    if args.json and job.is_main:
        say(f"report: {write_json(args.json, report)}{created.get(args.json, '')}")
    if args.html and job.is_main:
        from robusttext.certify.html import write_html

        page = write_html(args.html, results, bundles, source,
                          getattr(args, "command_line", None))
        say(f"page: {page}{created.get(args.html, '')}")
    if args.plot and job.is_main:
        say(f"plot: {plot_accuracy(args.plot, results)}{created.get(args.plot, '')}")
    return 0


def quiet_libraries() -> None:
    """``--quiet``: no progress bars or advice from the Hugging Face libraries either (set
    before they are imported; the ones already imported are told directly)."""
    import os

    for variable in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                     "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        os.environ[variable] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.disable_progress_bar()
        sys.modules["transformers"].logging.set_verbosity_error()


def unfinished_training(meta: dict) -> str | None:
    """What to say of a checkpoint whose training stopped before its last epoch (None for a
    finished run or a checkpoint without a training record)."""
    config = meta.get("training_config") if isinstance(meta, dict) else None
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(config, dict) or not isinstance(state, dict) or meta.get("metrics"):
        return None  # a finished run has its final metrics (a time-limited one too)
    epochs, done = config.get("epochs"), state.get("epoch")
    if not isinstance(epochs, int) or not isinstance(done, int) or done >= epochs:
        return None
    return (f"its training was interrupted after epoch {done} of {epochs}; this certifies "
            "that checkpoint (robusttext train with the same settings resumes the run)")


def _add_to_report(report: dict, bundle, result) -> None:
    """Add one model's certification to the JSON report."""
    part = result.to_json(model=bundle.name)
    report["summary"] += part["summary"]
    report["examples"] += part["examples"]
    report["models"][bundle.name] = {"path": str(bundle.path), "kind": bundle.kind,
                                     "settings": part["settings"]}


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves behind (``robusttext.cli`` prints it)."""
    return "nothing was written" if args.json or args.html or args.plot else "stopped"


def _device(name: str) -> str:
    from robusttext.distributed import rank_device

    return str(rank_device(name, 0, distributed=False))
