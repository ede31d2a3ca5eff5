"""``robusttext vision train|certify``: certified training and verification of image classifiers."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from robusttext.config import MAY_CHANGE
from robusttext.errors import RobustTextError
from robusttext.methods import ALPHA_STEPS, BAB_METHOD
from robusttext.methods import VISION_CERTIFY_METHODS as BOUND_METHODS
from robusttext.vision.config import ARCHITECTURES, TrainConfig

DEFAULT_MODEL = "fmnist-dm-small"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``train`` and ``certify`` sub-commands on ``parser``."""
    from robusttext.options import Deprecated, ListOf, add_list_flag, add_quiet_flag

    sub = parser.add_subparsers(dest="vision_command", metavar="{train,certify}")
    train = sub.add_parser("train", help="train a DM-small/medium/large classifier",
                           description="Train an image classifier (natural, IBP or CROWN-IBP); "
                                       "a run resumes when --out holds an unfinished run of "
                                       "the same settings. Every setting is a flag, as in "
                                       "robusttext train.")
    train.add_argument("--config", metavar="FILE",
                       help="JSON file of training settings (flags override it)")
    train.add_argument("--print-config", action="store_true",
                       help="print the resolved settings as JSON and exit")
    TrainConfig.add_flags(train)  # every setting (robusttext.vision.config), as text's train
    train.add_argument("--eps", type=float, metavar="X",
                       help="training and evaluation radius in pixel units, [0, 1] (sets "
                            "--eps-train and --eps-eval where they are not given)")
    train.add_argument("--model", dest="model", action=Deprecated, default=argparse.SUPPRESS,
                       metavar="ARCHITECTURE",
                       replacement="--architecture (--model names a checkpoint, as in certify)")
    train.add_argument("--resume", dest="resume_flag", action=Deprecated, nargs=0, const=True,
                       replacement="nothing: a run in --out resumes by itself, as in "
                                   "robusttext train")
    add_quiet_flag(train)

    certify = sub.add_parser("certify", help="clean, PGD and verified accuracy of a checkpoint",
                             description="Clean, PGD and verified (IBP, CROWN-IBP, CROWN) "
                                         "accuracy of a checkpoint under an L-infinity ball.")
    certify.add_argument("--model", metavar="PATH|NAME",
                         help=f"checkpoint folder or shipped model name (default "
                              f"{DEFAULT_MODEL})")
    certify.add_argument("--checkpoint", dest="old_checkpoint", action=Deprecated,
                         replacement="--model PATH|NAME (and --architecture for what --model "
                                     "meant)")
    certify.add_argument("--architecture", choices=ARCHITECTURES,
                         help="refuse a checkpoint of another architecture (default: any)")
    certify.add_argument("--data", default="fashion-mnist", metavar="FOLDER|NAME|HUB_ID",
                         help="IDX or CIFAR-10 folder, 'fashion-mnist', or a hub id (default "
                              "fashion-mnist)")
    certify.add_argument("--split", default="test", choices=["train", "test"],
                         help="which split to certify (default test)")
    certify.add_argument("--eps", type=float, metavar="X",
                         help="radius in pixel units, [0, 1] (default: the checkpoint's "
                              "eps_eval)")
    certify.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    certify.add_argument("--pgd-steps", type=int, default=20, metavar="N",
                         help="PGD steps (0: no attack; default 20)")
    certify.add_argument("--pgd-restarts", type=int, default=1, metavar="N",
                         help="PGD restarts (default 1)")
    add_list_flag(certify, "--method", ListOf(metavar="M"), old=("--methods",),
                  default=["ibp", "crown-ibp"],
                  help=f"bound methods: {', '.join(BOUND_METHODS)} (default ibp,crown-ibp)")
    certify.add_argument("--alpha-steps", type=int, metavar="N",
                         help="with alpha-crown in --method: gradient steps on the relaxation "
                              f"slopes (0: CROWN's bound; default {ALPHA_STEPS}), as in "
                              "robusttext certify")
    add_bab_flag(certify)
    certify.add_argument("--attack-verified-fraction", type=float, default=1.0, metavar="X",
                         help="attack only this fraction of certified examples, [0, 1] "
                              "(default 1: all)")
    certify.add_argument("--batch-size", type=int, default=500, metavar="N",
                         help="images per batch (default 500)")
    certify.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                         help="torch device (default auto: CUDA when present, else CPU)")
    certify.add_argument("--json", metavar="OUT.json|-",
                         help="write the metrics as JSON ('-': to standard output, the table "
                              "then goes to standard error)")
    add_report_flags(certify)
    add_quiet_flag(certify)


def add_bab_flag(certify: argparse.ArgumentParser) -> None:
    """``--bab-time-limit``: the branch and bound's seconds per image."""
    certify.add_argument("--bab-time-limit", type=float, metavar="SECONDS",
                         help="with --method bab (branch and bound over ReLU splits: verified, "
                              "counterexample or timeout per image): seconds per image "
                              "(default 10)")


def add_report_flags(certify: argparse.ArgumentParser) -> None:
    """``--html`` and ``--plot`` of ``vision certify`` (the report of text's certify)."""
    certify.add_argument("--html", metavar="OUT.html",
                         help="write a page with every image beside PGD's counterexample and "
                              "its outcome per method")
    certify.add_argument("--plot", metavar="OUT.png",
                         help="plot clean, under-attack and verified accuracy (needs "
                              "matplotlib; .png, .pdf, .svg or .jpg)")


def run(args: argparse.Namespace) -> int:
    """Dispatch to ``train`` or ``certify``; returns the exit status."""
    if getattr(args, "quiet", False):
        from robusttext.certify.cli import quiet_libraries

        quiet_libraries()  # a hub data set's download and preparation bars too
    if args.vision_command == "train":
        return _train(args)
    if args.vision_command == "certify":
        return _certify(args)
    raise RobustTextError("choose a sub-command: robusttext vision train|certify")


def interrupted(args: argparse.Namespace) -> str | None:
    """What Ctrl-C leaves behind (``robusttext.cli`` prints it): a training run resumes."""
    if args.vision_command != "train":
        return None
    out = getattr(args, "out", None)
    if out is None:
        try:
            out = (TrainConfig.from_file(args.config) if args.config else TrainConfig()).out
        except RobustTextError:
            out = "--out"
    return (f"the same command resumes the run in {out} from its last finished epoch (a "
            "checkpoint is written after every epoch)")


def _train(args) -> int:
    from robusttext.vision.train import train

    config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    given = TrainConfig.flag_values(args)  # the flags given ("none" clears the file's value)
    if args.eps is not None:  # both radii, where their own flags are not given
        given = {"eps_train": args.eps, "eps_eval": args.eps, **given}
    for key, value in given.items():
        setattr(config, key, value)
    config.validate()
    check_train_flags_act(args, config)
    if config.train_limit is not None and config.train_limit < 1:
        raise RobustTextError(f"--train-limit must be at least 1, got {config.train_limit}")
    if args.print_config:
        print(json.dumps(config.to_json(), indent=1))
        return 0
    from robusttext.options import check_out_folder

    check_out_folder(config.out)
    check_image_source(str(config.data), folders=False)
    warn_if_never_perturbed(config.method != "natural", config.epochs, config.warmup_epochs)
    done = check_resume(Path(config.out), config)
    if done is not None:
        print(format_metrics(done))
        return 0
    try:
        metrics = train(config, resume=True, progress=not args.quiet)
    except RobustTextError:
        check_image_source(str(config.data))  # the clearer reason, when the data is missing
        raise
    print(format_metrics(metrics))
    return 0


# Settings a resumed vision run must share with the checkpoint it continues: all but those
# declared ``MAY_CHANGE`` (how long, where, how evaluated), as text's command refuses them.
SAME_ON_RESUME = tuple(n for n in TrainConfig.names() if n not in TrainConfig.names(
    resume=MAY_CHANGE))


def check_resume(out: Path, config) -> dict | None:
    """Refuse to continue a run of other settings in ``out``; a finished run's metrics (after
    saying so) when it already trained ``config.epochs`` epochs, else None (train or resume)."""
    import sys

    from robusttext.checkpoint import META_FILE, read_json_file

    if not (out / META_FILE).is_file():
        return None
    meta = read_json_file(out / META_FILE, "checkpoint")
    training = meta.get("training", {}) if isinstance(meta, dict) else {}
    saved = TrainConfig.current_names(training.get("config", {}), str(out))  # old names too
    config.refuse_changes(saved, SAME_ON_RESUME, str(out))  # as text's train words it
    done = int(training.get("epochs_done", 0))
    if done >= config.epochs and "metrics" in meta:
        print(f"{out}: already trained for {done} epochs; nothing to do (raise --epochs to "
              "train longer, or use another --out)", file=sys.stderr)
        return meta["metrics"]
    return None


def check_attack_flags_act(pgd_steps: int, refining: dict) -> None:
    """Refuse a PGD setting (``flag: (value, default)``) given while ``--pgd-steps 0`` turns
    the attack off."""
    for name, (value, default) in refining.items():
        if pgd_steps == 0 and value != default:
            raise RobustTextError(f"{name} {value:g} changes nothing with --pgd-steps 0 (no "
                                  "attack); leave it out")


def check_train_flags_act(args, config) -> None:
    """Refuse a training flag that would change nothing: ``--eps`` beside both
    ``--eps-train`` and ``--eps-eval``; a training radius or its schedule under ``--method
    natural`` given as a flag; a PGD setting without the attack."""
    if args.eps is not None and getattr(args, "eps_train", None) is not None and \
            getattr(args, "eps_eval", None) is not None:  # flags not given are not in args
        raise RobustTextError("--eps changes nothing beside both --eps-train and --eps-eval; "
                              "leave it out")
    if config.method == "natural":  # flags only: a config file may share a robust schedule
        given = [f"--{name.replace('_', '-')}" for name in ("eps_train", "warmup_epochs",
                                                           "ramp_epochs")
                 if getattr(args, name, None) is not None]
        if given:
            raise RobustTextError(f"{', '.join(given)} changes nothing with --method natural "
                                  "(no perturbed training); leave it out")
    check_attack_flags_act(config.pgd_steps, {"--pgd-restarts": (config.pgd_restarts, 1)})


def warn_if_never_perturbed(robust: bool, epochs: float, warmup_epochs: float) -> None:
    """Say so when a robust schedule ends before its warm-up does: the run trains a normal
    model."""
    import sys

    if robust and warmup_epochs >= epochs:
        print(f"warning: --epochs {epochs} ends within the warm-up (--warmup-epochs "
              f"{warmup_epochs:g}), so no step perturbs the inputs and this trains a normal "
              "model; lower --warmup-epochs or raise --epochs", file=sys.stderr)


def bound_methods(names, alpha_steps: int | None) -> tuple:
    """``--method M[,M...]`` (the list, or its text) and ``--alpha-steps``: one
    ``BoundSettings`` per method, carried to the engine unchanged; an unknown method, or steps
    without alpha-crown, refused."""
    from robusttext.bounds.alpha import ALPHA_LR, check_alpha_settings
    from robusttext.methods import bound_settings
    from robusttext.options import ListOf

    methods = tuple(ListOf()(names))
    text = ",".join(methods)
    for method in methods:
        if method not in BOUND_METHODS:
            raise RobustTextError(f"--method: unknown method {method!r}; choose from "
                                  f"{', '.join(BOUND_METHODS)}")
    if alpha_steps is not None:
        if "alpha-crown" not in methods:
            raise RobustTextError(f"--alpha-steps {alpha_steps} goes with --method alpha-crown, "
                                  f"not --method {text}")
        check_alpha_settings(alpha_steps, ALPHA_LR)
    return tuple(bound_settings(m, alpha_steps=alpha_steps) for m in methods)


def resolve_checkpoint(name: str) -> Path:
    """A folder path, or the name of a shipped image model (``robusttext.shipped``)."""
    from robusttext.shipped import shipped_model_path, shipped_models

    path = Path(name)
    if path.is_dir():
        return path
    shipped = shipped_model_path(name) if name in shipped_models("vision") else None
    if shipped is not None and shipped.is_dir():
        return shipped
    raise RobustTextError(f"no checkpoint folder {name!r} (and no shipped model of that name)")


def _certify(args) -> int:
    directory_name, architecture = certify_names(args)
    check_report_paths(args)
    import torch

    from robusttext.vision.evaluate import evaluate
    from robusttext.vision.io import check_input_shape, load_model
    from robusttext.vision.train import pick_device
    from robusttext.vision.verify import check_eps

    directory = resolve_checkpoint(directory_name)
    methods = bound_methods(args.method, args.alpha_steps)
    bab_time_limit = check_bab_time_limit(args.bab_time_limit, [b.method for b in methods])
    if not 0.0 <= args.attack_verified_fraction <= 1.0:
        raise RobustTextError("--attack-verified-fraction must lie in [0, 1]")
    if args.limit is not None and args.limit < 1:
        raise RobustTextError(f"--limit must be at least 1, got {args.limit}")
    if args.pgd_steps < 0 or args.pgd_restarts < 1 or args.batch_size < 1:
        raise RobustTextError("--pgd-steps must be >= 0, --pgd-restarts and --batch-size >= 1")
    check_attack_flags_act(args.pgd_steps, {"--pgd-restarts": (args.pgd_restarts, 1),
                                            "--attack-verified-fraction":
                                                (args.attack_verified_fraction, 1.0)})
    model, _, meta = load_model(directory, expected=architecture)
    eps = args.eps
    if eps is None:
        eps = meta.get("training", {}).get("config", {}).get("eps_eval")
        if eps is None:
            raise RobustTextError("give --eps (the checkpoint does not record eps_eval)")
    eps = check_eps(eps, "--eps")
    data = load_data(args.data, args.split).subset(args.limit)
    check_input_shape(meta, data.images, directory)
    device = pick_device(args.device)
    torch.manual_seed(0)
    started = time.time()
    result = evaluate(
        model.to(device),
        data,
        eps,
        pgd_steps=args.pgd_steps,
        pgd_restarts=args.pgd_restarts,
        methods=methods,
        batch_size=args.batch_size,
        attack_verified_fraction=args.attack_verified_fraction,
        bab_time_limit=bab_time_limit,
        device=device,
        progress=not args.quiet,
        keep_counterexamples=bool(args.html),
    )
    write_reports(args, result, data, directory_name, round(time.time() - started, 1),
                  str(directory))
    return 1 if result.soundness_violations() else 0


def check_report_paths(args) -> None:
    """Before any work: --json, --html and --plot name files that can be written, different
    ones, and --plot has matplotlib (as text's certify checks them)."""
    from robusttext.certify.report import HTML_FORMATS, PLOT_FORMATS, check_matplotlib
    from robusttext.options import check_output

    if args.json:
        check_output(args.json, "--json")
    for flag, path, formats in (("--html", args.html, HTML_FORMATS),
                                ("--plot", args.plot, PLOT_FORMATS)):
        if path == "-":
            raise RobustTextError(f"{flag} -: it goes to a file; name one")
        if path:
            check_output(path, flag, formats)
    if args.plot:
        check_matplotlib()
    named = [p for p in (args.json, args.html, args.plot) if p and p != "-"]
    if len({Path(p).resolve() for p in named}) < len(named):
        raise RobustTextError("--json, --html and --plot must name different files")


def write_reports(args, result, data, model: str, seconds: float, checkpoint: str) -> None:
    """The table (to standard error with --json -), then --json, --html and --plot."""
    import sys

    from robusttext.certify.report import write_json
    from robusttext.vision.report import format_table, plot, report_json, write_html

    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    print(format_table(result, seconds), file=out)
    if args.json:
        where = write_json(args.json, report_json(result, {"seconds": seconds,
                                                           "checkpoint": checkpoint}))
        if not to_stdout:
            print(f"report: {where}", file=out)
    if args.html:
        page = write_html(args.html, result, data.images, args.data, model,
                          getattr(args, "command_line", None), seconds)
        print(f"page: {page}", file=out)
    if args.plot:
        print(f"plot: {plot(args.plot, result)}", file=out)


def check_bab_time_limit(limit: float | None, methods) -> float:
    """``--bab-time-limit``: above 0 seconds, and only with ``--method`` naming bab."""
    from robusttext.vision.bab import DEFAULT_TIME_LIMIT

    if limit is None:
        return DEFAULT_TIME_LIMIT
    if not limit > 0:
        raise RobustTextError(f"--bab-time-limit must be above 0 seconds, got {limit:g}")
    if BAB_METHOD not in methods:
        raise RobustTextError(f"--bab-time-limit {limit:g} goes with --method {BAB_METHOD}, "
                              f"not --method {','.join(methods)}")
    return limit


IMAGE_ALTERNATIVES = ("give a local folder instead: IDX files (MNIST, Fashion-MNIST) or CIFAR-10 "
                      "batches, or fashion-mnist (apt-get install dataset-fashion-mnist)")


def check_image_source(source: str, folders: bool = True) -> bool:
    """Before any work: a hub id without network and (with ``folders``) a known folder that
    is not installed fail in one line within seconds. Returns whether ``source`` is read from
    the hub."""
    from robusttext.data.hub import check_hub_reachable
    from robusttext.vision.data import HUB_COLUMNS, KNOWN_FOLDERS

    if folders and source in KNOWN_FOLDERS and not Path(KNOWN_FOLDERS[source]).is_dir():
        raise RobustTextError(
            f"--data {source} reads Debian's files in {KNOWN_FOLDERS[source]}, which are not "
            "installed (apt-get install dataset-fashion-mnist); or give --data FOLDER (IDX "
            "files) or the hub id zalando-datasets/fashion_mnist (needs the network)")
    hub = source in HUB_COLUMNS and not Path(KNOWN_FOLDERS.get(source, source)).is_dir()
    if hub:
        check_hub_reachable(source, alternatives=IMAGE_ALTERNATIVES)
    return hub


def load_data(source: str, split: str):
    """``vision.data.load_images``, failing within seconds in one line when ``source`` is a hub
    id and the hub cannot be reached, and in one line when the hub refuses it."""
    from robusttext.vision.data import load_images

    hub = check_image_source(source)
    try:
        return load_images(source, split)
    except RobustTextError:
        raise
    except Exception as error:  # datasets raises many types (network, cache, bad id)
        if not hub:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise RobustTextError(f"--data {source}: the Hugging Face hub did not give it "
                              f"({type(error).__name__}: {first}); {IMAGE_ALTERNATIVES}"
                              ) from None


def certify_names(args) -> tuple[str, str | None]:
    """``(checkpoint, architecture)`` from ``--model``/``--architecture``, reading the old
    spelling (``--checkpoint PATH --model ARCHITECTURE``, or ``--model ARCHITECTURE`` alone)
    for one more release."""
    import sys

    name, architecture = args.model, args.architecture
    if getattr(args, "old_checkpoint", None):
        if name is not None:  # the old vocabulary: --model was the architecture
            architecture = architecture or name
        return args.old_checkpoint, architecture
    if name in ARCHITECTURES and not Path(name).is_dir():
        print(f"robusttext vision certify: --model {name} names an architecture, which is "
              "deprecated; --model is the checkpoint, --architecture the architecture",
              file=sys.stderr)
        return DEFAULT_MODEL, architecture or name
    return name or DEFAULT_MODEL, architecture


def format_metrics(metrics: dict) -> str:
    """A few aligned lines: accuracies in percent, other figures rounded, then the rest."""
    lines = []
    for key, value in metrics.items():
        if key.endswith("accuracy") and isinstance(value, (int, float)):
            lines.append(f"{key:32s} {100 * value:6.2f}%")
        elif isinstance(value, float):
            lines.append(f"{key:32s} {value:.4g}")
        else:
            lines.append(f"{key:32s} {value}")
    return "\n".join(lines)
