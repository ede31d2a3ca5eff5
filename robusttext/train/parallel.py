"""Training on several processes: ``DistributedDataParallel`` around the robust loss, each
global batch split across the ranks (``DistributedBatchSampler``) with the losses scaled so that
the averaged gradient equals the single-process gradient of the whole batch (``local_weight``).
The process group is ``robusttext.distributed``'s."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from robusttext.distributed import Job
from robusttext.train import loss


class DistributedBatchSampler(torch.utils.data.Sampler):
    """This rank's part of each training batch; seeded, with ``set_epoch``.

    The global batches are those of one process (``order_fn(epoch)``, the same on every rank);
    batch ``indices`` is split as ``indices[rank::world]``. A rank left with nothing (a last
    batch smaller than the world) gets the batch's first example with weight 0 (see
    ``local_weight``), so that every rank takes part in every step.
    """

    def __init__(self, order_fn: Callable[[int], list[list[int]]], rank: int = 0,
                 world: int = 1):
        self.order_fn, self.rank, self.world = order_fn, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        return self.order_fn(self.epoch)

    def __iter__(self) -> Iterator[tuple[list[int], int]]:
        """``(local indices, global batch size)`` per step."""
        for indices in self.global_batches():
            local = indices[self.rank::self.world]
            yield (local or indices[:1]), len(indices) if local else 0

    def __len__(self) -> int:
        return len(self.global_batches())


def local_weight(local_size: int, global_size: int, world: int) -> float:
    """Factor on a rank's mean loss so that DDP's gradient average is the mean over the global
    batch: ``world * local / global`` (0 for a stand-in example)."""
    if global_size == 0:
        return 0.0
    return world * local_size / global_size


class RobustLossModule(torch.nn.Module):
    """The module DistributedDataParallel wraps: its forward computes the clean logits and the
    bounds of the robust loss, so the gradients of both are all-reduced.

    ``forward(batch, labels, weight, **loss_options)`` returns ``(weight * loss, parts)`` with
    ``robust_loss``'s parts (floats for logging).
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, labels, weight: float = 1.0, **loss_options):
        value, parts = loss.robust_loss(self.model, batch, labels, **loss_options)
        return (value * weight if weight != 1.0 else value), parts


def wrap_for_training(model: torch.nn.Module, job: Job) -> torch.nn.Module:
    """``RobustLossModule(model)``, inside ``DistributedDataParallel`` on several processes."""
    module = RobustLossModule(model)
    if not job.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [job.device.index] if job.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


__all__ = ["DistributedBatchSampler", "RobustLossModule", "local_weight", "wrap_for_training"]
