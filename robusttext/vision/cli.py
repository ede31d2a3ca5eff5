"""``robusttext vision train|certify``: certified training and verification of image classifiers."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from robusttext.errors import RobustTextError

DEFAULT_MODEL = "fmnist-dm-small"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``train`` and ``certify`` sub-commands on ``parser``."""
    sub = parser.add_subparsers(dest="vision_command", metavar="{train,certify}")
    train = sub.add_parser("train", help="train a DM-small/medium/large classifier")
    train.add_argument("--config", help="JSON file of training options (CLI flags override it)")
    train.add_argument("--data", help="IDX or CIFAR-10 folder, 'fashion-mnist', or a hub id")
    train.add_argument("--model", choices=["dm-small", "dm-medium", "dm-large"])
    train.add_argument("--method", choices=["natural", "ibp", "crown-ibp"])
    train.add_argument("--eps", type=float, help="training and evaluation radius (pixel units)")
    train.add_argument("--eps-train", type=float)
    train.add_argument("--eps-eval", type=float)
    for name, kind in (
        ("epochs", int),
        ("warmup-epochs", float),
        ("ramp-epochs", float),
        ("batch-size", int),
        ("lr", float),
        ("seed", int),
        ("train-subset", int),
        ("test-subset", int),
        ("pgd-steps", int),
        ("pgd-restarts", int),
        ("grad-clip", float),
    ):
        train.add_argument(f"--{name}", type=kind)
    train.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    train.add_argument("--out", help="checkpoint folder (written every epoch)")
    train.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    certify = sub.add_parser("certify", help="clean, PGD and verified accuracy of a checkpoint")
    certify.add_argument(
        "--checkpoint",
        default=DEFAULT_MODEL,
        help=f"checkpoint folder or a shipped model name (default {DEFAULT_MODEL})",
    )
    certify.add_argument("--model", help="architecture the checkpoint must hold (optional)")
    certify.add_argument("--data", default="fashion-mnist")
    certify.add_argument("--split", default="test", choices=["train", "test"])
    certify.add_argument("--eps", type=float, help="radius (default: the checkpoint's eps_eval)")
    certify.add_argument("--limit", type=int, help="only the first N examples")
    certify.add_argument("--pgd-steps", type=int, default=20)
    certify.add_argument("--pgd-restarts", type=int, default=1)
    certify.add_argument(
        "--methods", default="ibp,crown-ibp", help="comma list of ibp,crown-ibp,crown"
    )
    certify.add_argument(
        "--attack-verified-fraction",
        type=float,
        default=1.0,
        help="attack only this fraction of certified examples (default 1: all)",
    )
    certify.add_argument("--batch-size", type=int, default=500)
    certify.add_argument("--device", default="auto")
    certify.add_argument("--json", help="write the metrics to this file")
    certify.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Dispatch to ``train`` or ``certify``; returns the exit status."""
    if args.vision_command == "train":
        return _train(args)
    if args.vision_command == "certify":
        return _certify(args)
    raise RobustTextError("choose a sub-command: robusttext vision train|certify")


def _train(args) -> int:
    from robusttext.vision.train import TrainConfig, train

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    overrides = {
        "data": args.data,
        "model": args.model,
        "method": args.method,
        "eps_train": args.eps_train if args.eps_train is not None else args.eps,
        "eps_eval": args.eps_eval if args.eps_eval is not None else args.eps,
        "epochs": args.epochs,
        "warmup_epochs": args.warmup_epochs,
        "ramp_epochs": args.ramp_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "train_subset": args.train_subset,
        "test_subset": args.test_subset,
        "pgd_steps": args.pgd_steps,
        "pgd_restarts": args.pgd_restarts,
        "grad_clip": args.grad_clip,
        "device": args.device,
        "out": args.out,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    metrics = train(config, resume=args.resume, progress=not args.no_progress)
    print(format_metrics(metrics))
    return 0


def resolve_checkpoint(name: str) -> Path:
    """A folder path, or the name of a model shipped under robusttext/assets/models/."""
    from robusttext.vision.io import SHIPPED_MODELS

    path = Path(name)
    if path.is_dir():
        return path
    shipped = SHIPPED_MODELS / name
    if shipped.is_dir():
        return shipped
    raise RobustTextError(f"no checkpoint folder {name!r} (and no shipped model of that name)")


def _certify(args) -> int:
    import torch

    from robusttext.vision.data import load_images
    from robusttext.vision.evaluate import evaluate
    from robusttext.vision.io import check_input_shape, load_model
    from robusttext.vision.train import pick_device
    from robusttext.vision.verify import BOUND_METHODS, check_eps

    directory = resolve_checkpoint(args.checkpoint)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    for method in methods:
        if method not in BOUND_METHODS:
            raise RobustTextError(f"unknown method {method!r}; choose from {BOUND_METHODS}")
    if not 0.0 <= args.attack_verified_fraction <= 1.0:
        raise RobustTextError("--attack-verified-fraction must lie in [0, 1]")
    if args.pgd_steps < 0 or args.pgd_restarts < 1 or args.batch_size < 1:
        raise RobustTextError("--pgd-steps must be >= 0, --pgd-restarts and --batch-size >= 1")
    model, _, meta = load_model(directory, expected=args.model)
    eps = args.eps
    if eps is None:
        eps = meta.get("training", {}).get("config", {}).get("eps_eval")
        if eps is None:
            raise RobustTextError("give --eps (the checkpoint does not record eps_eval)")
    eps = check_eps(eps)
    data = load_images(args.data, args.split).subset(args.limit)
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
        device=device,
        progress=not args.no_progress,
    )
    metrics = result.metrics()
    metrics["seconds"] = round(time.time() - started, 1)
    metrics["checkpoint"] = str(directory)
    print(format_metrics(metrics))
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return 1 if metrics["soundness_violations"] else 0


def format_metrics(metrics: dict) -> str:
    """A few aligned lines: accuracies in percent, then the rest."""
    lines = []
    for key, value in metrics.items():
        if key.endswith("accuracy"):
            lines.append(f"{key:32s} {100 * value:6.2f}%")
        else:
            lines.append(f"{key:32s} {value}")
    return "\n".join(lines)
