"""The process group of ``robusttext train`` and ``robusttext certify`` on several processes.

Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``) ``start(device)`` joins the process group (NCCL on CUDA, gloo on CPU) and picks
the device of the local rank; outside it, ``start`` returns a one-process ``Job`` and nothing
else changes. What the commands do with it lives with them:

- training (``robusttext.train.parallel``) wraps the model in ``DistributedDataParallel``; each
  global batch is split across the ranks and the losses scaled so that the averaged gradient
  equals the single-process gradient of the whole batch (``DistributedBatchSampler``,
  ``local_weight``);
- certification (``robusttext.certify.sharded``) gives each rank whole batches of the
  single-process order (``certify_shard``), gathers the per-sentence results and merges them
  into the report a single process would have written (``merge_certifications``);
- only rank 0 prints, shows progress bars and writes files.

A rank that raises tells the others (when they reach the next exchange) or closes its
connections, so they stop with a message naming it instead of waiting; every collective also
has a timeout (``ROBUSTTEXT_DIST_TIMEOUT`` seconds, default 1800).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from robusttext.errors import RobustTextError

TIMEOUT_ENV = "ROBUSTTEXT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 1800.0


class RankFailed(RobustTextError):
    """Another rank of the job stopped with an error (its message is included)."""


def world_from_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's variables; ``(0, 1, 0)`` without."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise RobustTextError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by "
                              "torchrun)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise RobustTextError(f"bad process layout from the environment: RANK={rank}, "
                              f"WORLD_SIZE={world}, LOCAL_RANK={local}")
    return rank, world, local


def timeout_seconds() -> float:
    """The collective timeout: ``ROBUSTTEXT_DIST_TIMEOUT`` seconds, default 1800."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise RobustTextError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def rank_device(name: str, local_rank: int, distributed: bool) -> torch.device:
    """The device of this process: ``auto`` is CUDA when present, else CPU; under a distributed
    launch a CUDA device without an index becomes ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RobustTextError(f"device {name!r} asked for, but CUDA is not available")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobustTextError(f"unknown device {name!r}") from None
    if device.type == "cuda" and distributed and device.index is None:
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise RobustTextError(f"local rank {local_rank} has no GPU: this machine has "
                                  f"{count}; start at most {count} processes per node")
        device = torch.device("cuda", local_rank)
    return device


@dataclass
class Job:
    """This process's place in the job: ``rank`` of ``world`` processes, ``device``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes files."""
        return self.rank == 0

    def quiet_unless_main(self) -> None:
        """Send standard output to ``/dev/null`` on every rank but 0 (errors still show)."""
        if not self.is_main:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

    def say(self, *args, **kwargs) -> None:
        """``print`` on rank 0 only."""
        if self.is_main:
            print(*args, **kwargs)

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Turn a failure of this rank into a clear error and close the process group, so that
        ranks blocked in a collective see the connection close instead of waiting."""
        try:
            yield
        except BaseException as error:
            if not self.distributed:
                raise
            stop()
            if isinstance(error, (RankFailed, KeyboardInterrupt, SystemExit)):
                raise
            if _is_collective_error(error):
                raise RankFailed(f"rank {self.rank} of {self.world}: {what} stopped because "
                                 "another rank stopped or the connection to it was lost "
                                 f"({type(error).__name__}: {_first_line(error)}); the log of "
                                 "the failed rank says why") from error
            print(f"robusttext: rank {self.rank} of {self.world} failed during {what}: "
                  f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
            raise

    def all_gather(self, obj):
        """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` on one process."""
        if not self.distributed:
            return [obj]
        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def any_true(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on one."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def all_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Sum of the same-keyed floats over the ranks (keys: the union, in rank 0's order)."""
        if not self.distributed:
            return dict(values)
        totals: dict[str, float] = {}
        for part in self.all_gather(values):
            for key, value in part.items():
                totals[key] = totals.get(key, 0.0) + value
        return totals


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""


def _is_collective_error(error: BaseException) -> bool:
    """An error raised by a collective (closed connection, timeout), not by this rank's work."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        word in text for word in ("gloo", "nccl", "connection closed", "connection reset",
                                  "timed out", "broken pipe"))


_JOB: Job | None = None


def current() -> Job:
    """The job ``start`` set up (a one-process job before that)."""
    return _JOB if _JOB is not None else Job()


def start(device: str = "auto") -> Job:
    """Join the process group when launched by torchrun (or reuse one already initialised) and
    pick this rank's device; a one-process ``Job`` otherwise."""
    global _JOB
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
    else:
        rank, world, local = world_from_env()
    job = Job(rank, world, local, rank_device(device, local, world > 1))
    if world > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RobustTextError("this PyTorch build has no torch.distributed")
        backend = "nccl" if job.device.type == "cuda" else "gloo"
        if job.device.type == "cuda":
            torch.cuda.set_device(job.device)
        timeout = datetime.timedelta(seconds=timeout_seconds())
        try:
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
        except (RuntimeError, ValueError) as error:
            raise RobustTextError(f"rank {rank} of {world}: cannot join the process group "
                                  f"({backend}): {_first_line(error)}") from None
        atexit.register(stop)
    _JOB = job
    return job


def stop() -> None:
    """Leave the process group (a no-op when there is none)."""
    global _JOB
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    _JOB = None


# ---------------------------------------------------------------------------------------------
# Sharding


def check_world(n: int, world: int, what: str = "examples") -> None:
    """A job needs at least one example per rank."""
    if world > n:
        raise RobustTextError(f"{world} processes but only {n} {what}: every rank needs at "
                              f"least one; start at most {n} processes or give more data")


def shard(examples: Sequence, rank: int, world: int) -> list:
    """Every ``world``-th example from ``rank`` on (strided, deterministic)."""
    check_world(len(examples), world)
    return list(examples[rank::world])


__all__ = [
    "Job",
    "RankFailed",
    "check_world",
    "current",
    "rank_device",
    "shard",
    "start",
    "stop",
]
