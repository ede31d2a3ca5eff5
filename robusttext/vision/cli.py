"""``robusttext vision train|certify``: certified training and verification of image classifiers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from robusttext.errors import RobustTextError
from robusttext.methods import BAB_METHOD
from robusttext.methods import VISION_CERTIFY_METHODS as BOUND_METHODS
from robusttext.methods import VISION_TRAINING_METHODS as TRAIN_METHODS
from robusttext.vision.config import ARCHITECTURES, TrainConfig

DEFAULT_MODEL = "fmnist-dm-small"

# Training flags that set the TrainConfig field of the same name, generated from its HELP.
TRAIN_FIELDS = ("epochs", "warmup_epochs", "ramp_epochs", "batch_size", "lr", "seed",
                "train_subset", "test_subset", "pgd_steps", "pgd_restarts", "grad_clip")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``train`` and ``certify`` sub-commands on ``parser``."""
    from robusttext.options import Deprecated

    sub = parser.add_subparsers(dest="vision_command", metavar="{train,certify}")
    train = sub.add_parser("train", help="train a DM-small/medium/large classifier",
                           description="Train an image classifier (natural, IBP or CROWN-IBP); "
                                       "a run resumes when --out holds an unfinished run of "
                                       "the same settings.")
    train.add_argument("--config", metavar="FILE",
                       help="JSON file of training settings (flags override it)")
    train.add_argument("--data", metavar="FOLDER|NAME|HUB_ID",
                       help="IDX or CIFAR-10 folder, 'fashion-mnist', or a hub id (default "
                            "fashion-mnist)")
    train.add_argument("--architecture", choices=ARCHITECTURES,
                       help="network (Gowal et al. 2018; default dm-small)")
    train.add_argument("--model", dest="architecture", action=Deprecated,
                       replacement="--architecture (--model names a checkpoint, as in certify)")
    train.add_argument("--method", choices=TRAIN_METHODS,
                       help="training loss: natural, IBP or CROWN-IBP (default crown-ibp)")
    train.add_argument("--eps", type=float, metavar="X",
                       help="training and evaluation radius in pixel units, [0, 1] (default "
                            "0.1)")
    train.add_argument("--eps-train", type=float, metavar="X",
                       help="training radius (default: --eps)")
    train.add_argument("--eps-eval", type=float, metavar="X",
                       help="evaluation radius (default: --eps)")
    TrainConfig.add_flags(train, TRAIN_FIELDS)
    train.add_argument("--device", metavar="auto|cpu|cuda|cuda:N",
                       help="torch device (default auto: CUDA when present, else CPU)")
    train.add_argument("--out", metavar="FOLDER",
                       help="checkpoint folder, written every epoch (default runs/vision)")
    train.add_argument("--resume", dest="resume_flag", action=Deprecated, nargs=0, const=True,
                       replacement="nothing: a run in --out resumes by itself, as in "
                                   "robusttext train")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--no-progress", dest="quiet", action=Deprecated, nargs=0, const=True,
                       replacement="--quiet")

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
    add_method_flags(certify)
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
    certify.add_argument("--quiet", action="store_true", help="no progress bars")
    certify.add_argument("--no-progress", dest="quiet", action=Deprecated, nargs=0, const=True,
                         replacement="--quiet")


def add_method_flags(certify: argparse.ArgumentParser) -> None:
    """``--methods`` and ``--bab-time-limit`` (the branch and bound's seconds per image)."""
    certify.add_argument("--methods", default="ibp,crown-ibp", metavar="M[,M...]",
                         help=f"bound methods, a comma list of {', '.join(BOUND_METHODS)} "
                              "(default ibp,crown-ibp; bab: branch and bound)")
    certify.add_argument("--bab-time-limit", type=float, metavar="SECONDS",
                         help="with --methods bab (branch and bound over ReLU splits: verified, "
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
    if args.vision_command == "train":
        return _train(args)
    if args.vision_command == "certify":
        return _certify(args)
    raise RobustTextError("choose a sub-command: robusttext vision train|certify")


def interrupted(args: argparse.Namespace) -> str | None:
    """What Ctrl-C leaves behind (``robusttext.cli`` prints it): a training run resumes."""
    if args.vision_command != "train":
        return None
    out = args.out
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
    overrides = {  # the hand-written flags: None means not given
        "data": args.data,
        "model": args.architecture,
        "method": args.method,
        "eps_train": args.eps_train if args.eps_train is not None else args.eps,
        "eps_eval": args.eps_eval if args.eps_eval is not None else args.eps,
        "device": args.device,
        "out": args.out,
    }
    for key, value in TrainConfig.flag_values(args).items():
        if key not in overrides:  # a generated flag, given: "none" clears the file's value
            setattr(config, key, value)
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    config.validate()
    for name in ("train_subset", "test_subset"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise RobustTextError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
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


# Settings a resumed vision run must share with the checkpoint it continues.
SAME_ON_RESUME = ("data", "model", "method", "eps_train", "seed", "batch_size", "train_subset",
                  "warmup_epochs", "ramp_epochs", "schedule", "augment")


def check_resume(out: Path, config) -> dict | None:
    """Refuse to continue a run of other settings in ``out``; a finished run's metrics (after
    saying so) when it already trained ``config.epochs`` epochs, else None (train or resume)."""
    import sys

    from robusttext.checkpoint import META_FILE, read_json_file

    if not (out / META_FILE).is_file():
        return None
    meta = read_json_file(out / META_FILE, "checkpoint")
    training = meta.get("training", {}) if isinstance(meta, dict) else {}
    saved = training.get("config", {})
    differs = [k for k in SAME_ON_RESUME if k in saved and saved[k] != getattr(config, k)]
    if differs:
        raise RobustTextError(
            f"{out} holds a run with other settings ("
            + "; ".join(f"{k} was {saved[k]!r}, now {getattr(config, k)!r}" for k in differs)
            + "); use another --out")
    done = int(training.get("epochs_done", 0))
    if done >= config.epochs and "metrics" in meta:
        print(f"{out}: already trained for {done} epochs; nothing to do (raise --epochs to "
              "train longer, or use another --out)", file=sys.stderr)
        return meta["metrics"]
    return None


def warn_if_never_perturbed(robust: bool, epochs: float, warmup_epochs: float) -> None:
    """Say so when a robust schedule ends before its warm-up does: the run trains a normal
    model."""
    import sys

    if robust and warmup_epochs >= epochs:
        print(f"warning: --epochs {epochs} ends within the warm-up (--warmup-epochs "
              f"{warmup_epochs:g}), so no step perturbs the inputs and this trains a normal "
              "model; lower --warmup-epochs or raise --epochs", file=sys.stderr)


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
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    for method in methods:
        if method not in BOUND_METHODS:
            raise RobustTextError(f"--methods: unknown method {method!r}; choose from "
                                  f"{', '.join(BOUND_METHODS)}")
    bab_time_limit = check_bab_time_limit(args.bab_time_limit, methods)
    if not 0.0 <= args.attack_verified_fraction <= 1.0:
        raise RobustTextError("--attack-verified-fraction must lie in [0, 1]")
    if args.limit is not None and args.limit < 1:
        raise RobustTextError(f"--limit must be at least 1, got {args.limit}")
    if args.pgd_steps < 0 or args.pgd_restarts < 1 or args.batch_size < 1:
        raise RobustTextError("--pgd-steps must be >= 0, --pgd-restarts and --batch-size >= 1")
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
    """``--bab-time-limit``: above 0 seconds, and only with ``--methods`` naming bab."""
    from robusttext.vision.bab import DEFAULT_TIME_LIMIT

    if limit is None:
        return DEFAULT_TIME_LIMIT
    if not limit > 0:
        raise RobustTextError(f"--bab-time-limit must be above 0 seconds, got {limit:g}")
    if BAB_METHOD not in methods:
        raise RobustTextError(f"--bab-time-limit {limit:g} goes with --methods {BAB_METHOD}, "
                              f"not --methods {','.join(methods)}")
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
