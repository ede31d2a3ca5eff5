"""Certified training of image classifiers: natural, IBP, CROWN-IBP (Zhang et al. 2020).

Loss per batch: ``kappa * CE(clean) + (1 - kappa) * CE(worst case)``, the worst case and the
CROWN-IBP/IBP mix from the task-neutral ``robusttext.train.certified`` (text's training uses the
same two functions). ``eps``, ``kappa`` and ``beta``
follow :class:`~robusttext.train.schedule.Schedule` (``kappa = 1 - robust``, the robust weight
going from ``robust_weight_start`` to ``robust_weight`` as in text's training). A checkpoint
(weights, Adam moments, RNG state, history) is written after every epoch; ``resume`` continues
from it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from robusttext.bounds.oracle import checking
from robusttext.checkpoint import optimizer_tensors, restore_optimizer
from robusttext.distributed import rank_device
from robusttext.errors import RobustTextError
from robusttext.train.certified import mixed_lower_bounds, worst_case_loss
from robusttext.train.loop import EpochLoop, run_epochs
from robusttext.train.schedule import Schedule
from robusttext.vision.config import TrainConfig
from robusttext.vision.data import ImageDataset, channel_stats, load_images
from robusttext.vision.evaluate import evaluate
from robusttext.vision.io import load_model, save_model
from robusttext.vision.models import build_model, model_config
from robusttext.vision.verify import image_margin_bound


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu (``robusttext.distributed.rank_device`` for
    one process)."""
    return rank_device(name, 0, distributed=False)


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, pad: int = 4
) -> torch.Tensor:
    """Random ``pad``-pixel translation (zero padding) and horizontal flip, ``[B, C, H, W]``."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).to(images.device)  # [B, H]
    cols = (dx[:, None] + torch.arange(w)[None]).to(images.device)  # [B, W]
    cols = torch.where(flip.to(images.device)[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def train(config: TrainConfig, resume: bool = False, progress: bool = True, log=print) -> dict:
    """Run ``config``; returns the final metrics (also stored in the checkpoint ``config.out``)."""
    config.validate()
    device = pick_device(config.device)
    out = Path(config.out)
    train_data = load_images(config.data, "train").subset(config.train_limit)
    test_data = load_images(config.data, "test").subset(config.eval_limit)
    channels, size = train_data.images.shape[1], train_data.images.shape[2]
    if config.mean is None or config.std is None:
        mean, std = channel_stats(train_data.images)
        config.mean, config.std = config.mean or mean, config.std or std
    model_cfg = model_config(config.model, channels, size, config.mean, config.std)

    torch.manual_seed(config.seed)
    model = build_model(**model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    # kappa, the weight of the clean loss, is 1 minus the schedule's robust weight
    schedule = Schedule.from_epochs(
        steps_per_epoch, config.warmup_epochs, config.ramp_epochs, eps_target=config.eps_train,
        robust_start=config.robust_weight_start, robust_final=config.robust_weight,
        beta_start=config.beta_start, beta_final=config.beta_final, kind=config.schedule)
    start_epoch, history = 0, []
    if resume and (out / "checkpoint.json").is_file():
        start_epoch, history = _resume(out, config, model, optimizer, device)
        log(f"resuming {out} after epoch {start_epoch}")

    def train_epoch(epoch: int) -> None:
        stats = _train_epoch(
            model, optimizer, train_data, schedule, config, epoch, device, progress
        )
        check = test_data.subset(config.epoch_eval_limit)
        quick = evaluate(
            model,
            check,
            config.eps_eval,
            pgd_steps=0,
            methods=tuple(config.epoch_eval_methods),
            batch_size=config.eval_batch_size,
            device=device,
            progress=False,
        ).metrics()
        stats.update({f"test_{k}": v for k, v in quick.items() if k.endswith("accuracy")})
        stats.pop("test_pgd_accuracy", None)
        history.append(stats)
        log(json.dumps(stats))

    def end_epoch(epoch: int, final: bool) -> None:
        _save(out, model, model_cfg, optimizer, config, epoch + 1, history)

    run_epochs(EpochLoop(config.epochs, say=log), start_epoch, train_epoch, end_epoch)
    final = evaluate(
        model,
        test_data,
        config.eps_eval,
        pgd_steps=config.pgd_steps,
        pgd_restarts=config.pgd_restarts,
        methods=tuple(config.eval_methods),
        batch_size=config.eval_batch_size,
        device=device,
        progress=progress,
    ).metrics()
    log(json.dumps({"final": final}))
    _save(out, model, model_cfg, optimizer, config, config.epochs, history, metrics=final)
    return final


def _train_epoch(model, optimizer, data: ImageDataset, schedule, config, epoch, device, progress):
    """One pass over ``data`` in a seeded random order; returns averaged statistics."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(len(data), generator=generator)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    lr = config.lr * config.lr_decay ** sum(1 for m in config.lr_decay_epochs if epoch >= m)
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.eval()  # the DM models have no dropout or batch norm; the bound engine wants eval mode
    totals = {"loss": 0.0, "clean_err": 0.0, "robust_err": 0.0, "n": 0, "n_robust": 0}
    started = time.time()
    bar = tqdm(
        range(steps_per_epoch),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=None if progress else True,
        leave=False,
    )
    eps = kappa = beta = 0.0
    for i in bar:
        step = epoch * steps_per_epoch + i
        index = order[i * config.batch_size : (i + 1) * config.batch_size]
        x, y = data.images[index], data.labels[index]
        if config.augment:
            x = random_crop_flip(x, generator)
        x, y = x.to(device), y.to(device)
        eps, kappa, beta = schedule.eps(step), 1.0 - schedule.robust(step), schedule.beta(step)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if config.method != "natural" and eps > 0:
            with checking(config.oracle_every > 0 and step % config.oracle_every == 0):
                lower = mixed_lower_bounds(image_margin_bound(model, x, y, eps), config.method,
                                           beta)
            loss = kappa * loss + (1.0 - kappa) * worst_case_loss(lower)
            totals["robust_err"] += float((lower <= 0).any(dim=1).float().sum())
            totals["n_robust"] += y.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        n = y.shape[0]
        totals["loss"] += float(loss.detach()) * n
        totals["clean_err"] += float((logits.argmax(1) != y).float().sum())
        totals["n"] += n
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", eps=f"{eps:.4f}")
    n = totals["n"]
    robust = config.method != "natural"
    return {
        "epoch": epoch + 1,
        "eps": eps if robust else None,
        "kappa": kappa if robust else None,
        "beta": beta if config.method == "crown-ibp" else None,
        "lr": lr,
        "train_loss": totals["loss"] / n,
        "train_clean_err": totals["clean_err"] / n,
        "train_robust_err": totals["robust_err"] / totals["n_robust"]
        if totals["n_robust"]
        else None,
        "seconds": round(time.time() - started, 1),
    }


def _save(out, model, model_cfg, optimizer, config, epochs_done, history, metrics=None):
    tensors = optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    sections = {
        "training": {"config": asdict(config), "epochs_done": epochs_done, "history": history}
    }
    if metrics is not None:
        sections["metrics"] = metrics
    save_model(out, model, model_cfg, tensors=tensors, **sections)


def _resume(out: Path, config: TrainConfig, model, optimizer, device) -> tuple[int, list]:
    saved, extra, meta = load_model(out, expected=config.model)
    if saved.state_dict()["0.mean"].shape != model.state_dict()["0.mean"].shape:
        raise RobustTextError(f"checkpoint {out} was trained on other input channels")
    model.load_state_dict(saved.state_dict())
    model.to(device)
    restore_optimizer(optimizer, extra)
    if "rng.torch" in extra:
        torch.set_rng_state(extra["rng.torch"].to(torch.uint8))
    training = meta.get("training", {})
    return int(training.get("epochs_done", 0)), list(training.get("history", []))
