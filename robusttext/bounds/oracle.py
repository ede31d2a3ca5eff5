"""The containment oracle: no bound leaves the model's own output.

Every bound the engine returns is checked against what the model computes at a few cheap points
of the input set: its centre (the original sentence), vertices of a box, single rewrites of a
substitution set. A bound that one of them contradicts is a robusttext bug; it is never returned,
a ``RobustTextError`` names the method, the node and how to report it.

The check is on by default. ``checking(False)`` turns it off for a block (training runs it every
N steps, ``TrainConfig.oracle_every``).
"""

from __future__ import annotations

import contextlib
import threading

import torch

from robusttext.bounds.input_sets import Box, InputSet, SubstitutionSet
from robusttext.errors import RobustTextError

REPORT = ("This is a robusttext bug, and no bound was returned: please report it with the model, "
          "the input set and this message (python -m robusttext --version gives the version); "
          "meanwhile method 'ibp' may avoid it.")

_STATE = threading.local()
# Points checked per bound: a forward pass each. A box's two (the centre and an alternating
# corner) keep the check near 4% of a CROWN-IBP bound of DM-small/medium (bench/oracle_cost.py);
# a substitution set's forwards are cheap beside its bounds.
BOX_POINTS, SET_POINTS = 2, 3


def enabled() -> bool:
    """Whether bounds are checked now (the default: yes)."""
    return getattr(_STATE, "enabled", True)


@contextlib.contextmanager
def checking(on: bool):
    """Check bounds (``on``) or not inside the block."""
    before = enabled()
    _STATE.enabled = bool(on)
    try:
        yield
    finally:
        _STATE.enabled = before


def tolerance(values: torch.Tensor, scale: float = 0.0) -> torch.Tensor:
    """How far (per entry) a bound may pass the model's own output through rounding alone: the
    forward and the bound take different roads through floating point, and the forward's own
    rounding grows with the magnitude ``scale`` of what its last operation reads (a point box
    of entries near 300 through a convolution: the model's output and the exact interval
    differ by 1.3e-5 in float32). The same form as the fuzzer's tolerance
    (``tests/test_engine_fuzz.py``), with ``scale`` read off the last operation's inputs."""
    rel = {torch.float64: 1e-9, torch.float32: 1e-5}.get(values.dtype, 1e-2)
    return rel * (1 + values.abs() + 4 * scale)


def points(input_set: InputSet, count: int = 3) -> list[tuple[str, torch.Tensor]]:
    """Up to ``count`` cheap points of ``input_set``, each ``[batch, *dims]`` with what it is:
    the centre first; then vertices of a box (alternating, lower, upper) or single rewrites of
    a substitution set (a different position and candidate per point, where the set has one)."""
    with torch.no_grad():
        found = [("the centre of the input set", input_set.center.detach())]
        if isinstance(input_set, SubstitutionSet):
            found += _single_rewrites(input_set, count - 1)
        elif isinstance(input_set, Box):
            lower, upper = input_set.lower.detach(), input_set.upper.detach()
            flat = torch.arange(lower[0].numel(), device=lower.device).view(lower.shape[1:])
            mixed = torch.where(flat % 2 == 0, lower, upper)
            found += [("an alternating corner of the box", mixed),
                      ("the lower corner of the box", lower),
                      ("the upper corner of the box", upper)][: count - 1]
    return found[:count]


def _single_rewrites(input_set: SubstitutionSet, count: int) -> list:
    """Sentences with one position replaced by one of its candidates: the ``i``-th of ``count``
    spread over each example's (position, candidate) pairs (examples without one keep theirs)."""
    mask = input_set.mask  # [batch, length, candidates]
    if count <= 0 or not bool(mask.any()):
        return []
    batch, length, k = mask.shape
    flat = mask.flatten(1)
    valid = flat.sum(1)  # pairs per example
    rank = flat.long().cumsum(1) - 1  # the pair's index among the example's pairs
    rewrites = []
    for i in range(count):
        wanted = (valid * (i + 1)) // (count + 1)
        pick = flat & (rank == wanted[:, None])  # one pair per example (none when no pair)
        pick = pick.view(batch, length, k)
        chosen = (input_set.candidates * pick[..., None].to(input_set.candidates.dtype)).sum(2)
        changed = pick.any(2, keepdim=True)
        point = torch.where(changed, chosen, input_set.center)
        rewrites.append((f"a single rewrite ({i + 1}) of the original sentence", point.detach()))
    return rewrites


def check_containment(model, input_set: InputSet, extra_inputs, C, lower, upper,
                      method: str, node: str, scale: float = 0.0) -> None:
    """Raise a ``RobustTextError`` when the model's output at one of ``points(input_set)``
    lies outside ``[lower, upper]`` (bounds on ``model(x, *extra_inputs)``, or on ``C @`` it
    with ``C`` ``[batch, specs, outputs]``; either side may be None). ``node`` names the bounded
    node (its operation and model line); ``scale``: the magnitude of what the node reads
    (see ``tolerance``)."""
    if not enabled() or (lower is None and upper is None):
        return
    count = BOX_POINTS if isinstance(input_set, Box) else SET_POINTS
    with torch.no_grad():
        for what, point in points(input_set, count):
            out = model(point, *extra_inputs)
            if not isinstance(out, torch.Tensor):
                return
            value = out if C is None else torch.einsum(
                "bso,bo->bs", C.to(out.dtype), out.flatten(1))
            _compare(value, lower, upper, what, method, node, scale)


def _compare(value, lower, upper, what, method, node, scale):
    room = tolerance(value, scale)
    for bound, sign in ((lower, -1), (upper, 1)):
        if bound is None:
            continue
        bound = bound.detach().to(value.dtype).view_as(value)
        wrong = (bound - value) * sign < -room  # the value lies beyond the bound
        if bool(wrong.any()):
            index = tuple(int(i) for i in wrong.nonzero()[0])
            side = "lower" if sign < 0 else "upper"
            raise RobustTextError(
                f"robusttext computed an unsound {method} bound: at {what}, example {index[0]}, "
                f"entry {index[1:] or '()'}, the model's output is {float(value[index]):.9g} but "
                f"the {side} bound is {float(bound[index]):.9g} (bounding {node}). {REPORT}")


def check_pooled(body, input_set, mask, C, lower) -> None:
    """The oracle for ``budget-ibp``: lower bounds ``[batch, specs]`` on ``C @ body(x, mask)``."""
    check_containment(body, input_set, (mask,), C, lower, None, "budget-ibp",
                      f"the pooled body {type(body).__name__}")
