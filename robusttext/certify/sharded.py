"""Certification on several processes: each rank certifies whole batches of the
single-process order (``certify_shard``), the per-sentence results are gathered and merged into
the report one process would have written (``merge_certifications``). The process group is
``robusttext.distributed``'s."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from robusttext.certify import certifier
from robusttext.certify.results import Certification, summarize
from robusttext.data import Example
from robusttext.distributed import Job, RankFailed, check_world, current


def certify_shard(lengths: Sequence[int], batch_size: int, rank: int, world: int) -> list[int]:
    """Indices this rank certifies: whole batches of the single-process order.

    ``certify`` sorts the sentences by their number of positions (``lengths``, of the rows of
    ``space.rows``; ties in input order) and cuts batches of
    ``batch_size``; batch ``b`` goes to rank ``b % world``. The indices come back in that sorted
    order, so the rank's own ``certify`` forms exactly the same batches, and its results are
    those of the single-process run bit for bit.
    """
    check_world(len(lengths), world, "sentences")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    return [i for b in range(rank, len(batches), world) for i in batches[b]]


def certify_sharded(model, vocab, space, examples: Sequence, *, batch_size: int = 32,
                    progress: bool | None = False, job: Job | None = None,
                    certify_fn: Callable | None = None, **options) -> Certification:
    """``certify_fn(model, vocab, space, examples, batch_size=..., **options)`` (by default
    ``certify``, looked up when called) on this rank's shard, then the merged
    ``Certification`` of all ranks (on every rank).

    One process: ``certify_fn`` on everything. A rank that raises makes every rank raise: it
    re-raises its own error, the others ``RankFailed`` naming it.
    """
    job = job or current()
    certify_fn = certify_fn or certifier.certify
    if not job.distributed:
        return certify_fn(model, vocab, space, examples, batch_size=batch_size,
                          progress=progress, **options)
    examples = [e if isinstance(e, Example) else Example(*e) for e in examples]
    with job.guard("certification"):
        lengths = [len(row) for row in space.rows([e.text for e in examples], vocab)[0]]
        mine = certify_shard(lengths, batch_size, job.rank, job.world)
        outcome, error = None, None
        if mine:
            try:
                outcome = certify_fn(model, vocab, space, [examples[i] for i in mine],
                                     batch_size=batch_size,
                                     progress=progress if job.is_main else False, **options)
            except Exception as caught:  # shared with the other ranks, then re-raised
                error = caught
        parts = job.all_gather((mine, outcome, None if error is None else (
            type(error).__name__, str(error))))
        if error is not None:
            raise error
        failed = [(r, p[2]) for r, p in enumerate(parts) if p[2] is not None]
        if failed:
            rank, (kind, message) = failed[0]
            raise RankFailed(f"rank {rank} of {job.world} failed during certification, so "
                             f"rank {job.rank} stops: {kind}: {message}")
    return merge_certifications([(p[0], p[1]) for p in parts if p[1] is not None])


def merge_certifications(parts: Sequence[tuple[list[int], Certification]]) -> Certification:
    """One ``Certification`` from ``(global indices, shard result)`` pairs: per-sentence
    results re-indexed and put back in single-process order (budget-major, then input order),
    summaries recomputed from them; timings are the sums over the ranks."""
    first = parts[0][1]
    budgets = [s.budget for s in first.summaries]
    results = []
    seconds = {b: {"bounds": 0.0, "attack": 0.0, "exhaustive": 0.0} for b in budgets}
    for indices, result in parts:
        for r in result.examples:
            r.index = indices[r.index]
            results.append(r)
        for s in result.summaries:
            seconds[s.budget]["bounds"] += s.bounds_seconds
            seconds[s.budget]["attack"] += s.attack_seconds
            seconds[s.budget]["exhaustive"] += s.exhaustive_seconds
    results.sort(key=lambda r: (budgets.index(r.budget), r.index))
    summaries = [summarize([r for r in results if r.budget == b], b, seconds[b])
                 for b in budgets]
    settings = dict(first.settings)
    settings["world_size"] = len(parts)
    for counted in ("dropped_candidates", "unknown_tokens",
                    "enumeration_timed_out"):  # counts per part, summed
        if counted in settings:
            settings[counted] = {k: sum(r.settings[counted][k] for _, r in parts)
                                 for k in first.settings[counted]}
    return Certification(summaries, results, settings)


__all__ = ["certify_shard", "certify_sharded", "merge_certifications"]
