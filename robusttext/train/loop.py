"""The epoch loop that text and vision training share: epochs from a resumed start, a time
limit, every process stopping after the same epoch.

A task brings two callables. ``train_epoch(epoch)`` runs one epoch (its optimiser steps, its
evaluation, its history and log line); ``end_epoch(epoch, final)`` saves the checkpoint, and on
the ``final`` epoch measures what a run reports at its end. The
loop decides when to stop: after ``epochs``, or earlier when another epoch would pass
``time_limit_minutes`` (projected from the mean time of the epochs run so far).

>>> run_epochs(EpochLoop(epochs=8, time_limit_minutes=30), start_epoch, train_epoch, end_epoch)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EpochLoop:
    """``epochs``: the epoch count of the run; ``time_limit_minutes``: None for none;
    ``agree``: how the processes agree to stop (``Job.any_true`` under torchrun: every rank
    stops once one would); ``say``: where the loop's own message goes."""

    epochs: int
    time_limit_minutes: float | None = None
    agree: Callable[[bool], bool] = bool
    say: Callable[..., None] = print


def run_epochs(loop: EpochLoop, start_epoch: int, train_epoch: Callable[[int], None],
               end_epoch: Callable[[int, bool], None]) -> None:
    """Run epochs ``start_epoch`` to ``loop.epochs - 1``, or fewer under the time limit."""
    began = time.time()
    for epoch in range(start_epoch, loop.epochs):
        train_epoch(epoch)
        final = epoch + 1 == loop.epochs or _out_of_time(loop, epoch, start_epoch, began)
        final = loop.agree(final)
        end_epoch(epoch, final)
        if final:
            break


def _out_of_time(loop: EpochLoop, epoch: int, start_epoch: int, began: float) -> bool:
    """True when another epoch would pass ``loop.time_limit_minutes`` (said so)."""
    if loop.time_limit_minutes is None:
        return False
    spent = time.time() - began
    if spent * (epoch + 2 - start_epoch) / (epoch + 1 - start_epoch) <= (
            60 * loop.time_limit_minutes):
        return False
    loop.say(f"stopping after epoch {epoch + 1}: another epoch would pass the "
             f"time limit of {loop.time_limit_minutes} minutes", flush=True)
    return True
