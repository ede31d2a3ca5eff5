"""Branch and bound for image classifiers: a verified label, a counterexample, or a timeout.

For one image ``x`` with label ``y`` and the L-infinity ball of radius ``eps`` clipped to [0, 1]
(the box ``B``), the property is ``z_y - z_j > 0`` on all of ``B`` for every ``j != y``. Per
image:

1. the clean image is run through the model (misclassified: a counterexample);
2. the pre-activation bounds of every ReLU over ``B`` are CROWN's (as the engine's ``crown``)
   intersected with the engine's interval bounds, and are fixed from then on;
3. every margin is bounded with alpha optimised (``robusttext.vision.split_bounds``), or by
   the engine's IBP where that is higher; the margins whose bound is not positive are *open*;
   the box point where each linear bound is lowest is run through the model, and PGD
   (``robusttext.vision.pgd``) looks for a misclassified point of ``B``;
4. each open margin is searched by branch and bound over ReLU splits, the lowest-bounded
   domains first, up to ``round_size`` of them per round: each is split on the unstable neuron
   with the largest ``|coefficient| * (-l u / (u - l))`` (the area its triangle relaxation
   adds), both children are bounded together with alpha and beta optimised (warm-started from
   the parent), a child whose bound is positive is dropped, and the box point at which a child's
   linear bound is lowest is run through the model (misclassified: a counterexample).

Sound by construction: a domain is dropped only when its lower bound is positive; the two
children of a split cover their parent (every point has ``z >= 0`` or ``z <= 0``), so the
domains left open always cover the part of ``B`` not yet proven. A counterexample is a point of
``B`` that the model's own forward pass misclassifies. The answer is ``verified`` when no domain
of any margin is left, ``counterexample``, or ``timeout`` when ``time_limit`` seconds (counted
from the image's start, the engine's bounds and PGD included) pass first, or more than
``max_domains`` domains are open at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from robusttext.errors import RobustTextError
from robusttext.vision.split_bounds import (
    Domains,
    Network,
    crown_relu_bounds,
    cut_bounds,
    optimise_bound,
    read_network,
    root_domains,
)

VERIFIED, COUNTEREXAMPLE, TIMEOUT = "verified", "counterexample", "timeout"
DEFAULT_TIME_LIMIT = 10.0
DEFAULT_ROUND_SIZE = 64  # domains split per round (each gives two children)
DEFAULT_STEPS = 10  # alpha/beta steps per round (the root takes ROOT_STEPS)
ROOT_STEPS = 20
MAX_DOMAINS = 20000


@dataclass
class Outcome:
    """One image's answer: ``status`` (``verified``, ``counterexample`` or ``timeout``), the
    seconds it took, the domains bounded, the misclassified point ``[C, H, W]`` (or None), and
    ``margin``, a lower bound on the image's lowest margin over the ball: when verified the
    lowest bound the search proved (positive), else the root's lowest bound (not positive;
    ``-inf`` for a misclassified image)."""

    status: str
    seconds: float
    domains: int = 0
    counterexample: torch.Tensor | None = None
    margin: float = float("-inf")


@dataclass
class Search:
    """The settings and the fixed facts of one image's search."""

    network: Network
    x_lower: torch.Tensor  # [1, *image]
    x_upper: torch.Tensor
    lowers: list  # per ReLU [1, *shape]
    uppers: list
    label: int
    deadline: float
    round_size: int
    steps: int
    max_domains: int
    bounded: int = 0


def bab_verify(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *,
               time_limit: float = DEFAULT_TIME_LIMIT, round_size: int = DEFAULT_ROUND_SIZE,
               steps: int = DEFAULT_STEPS, pgd_steps: int = 50, pgd_restarts: int = 3,
               max_domains: int = MAX_DOMAINS, seed: int = 0) -> list[Outcome]:
    """One ``Outcome`` per image of ``images`` ``[N, C, H, W]`` (labels ``[N]``), each within
    ``time_limit`` seconds (checked between rounds)."""
    if not time_limit > 0:
        raise RobustTextError(f"the bab time limit must be above 0 seconds, got {time_limit}")
    if round_size < 1 or steps < 1 or max_domains < 2:
        raise RobustTextError("bab needs round_size >= 1, steps >= 1 and max_domains >= 2")
    network = read_network(model, tuple(images.shape[1:]))
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        return [_one_image(network, images[i:i + 1], int(labels[i]), eps, time_limit,
                           (round_size, steps, max_domains), (pgd_steps, pgd_restarts),
                           generator) for i in range(images.shape[0])]
    finally:
        model.train(was_training)


def _one_image(network, image, label, eps, time_limit, settings, pgd, generator) -> Outcome:
    from robusttext.vision.pgd import pgd_attack
    from robusttext.vision.verify import image_ball

    started = time.monotonic()
    model = network.model
    labels = torch.tensor([label], device=image.device)
    with torch.no_grad():
        if int(model(image).argmax(1)) != label:
            return Outcome(COUNTEREXAMPLE, time.monotonic() - started, 0, image[0].clone())
    ball = image_ball(image, eps)
    x_lower, x_upper = ball.interval()
    lowers, uppers = relu_bounds(network, ball)
    search = Search(network, x_lower, x_upper, lowers, uppers, label,
                    started + time_limit, *settings)
    with torch.no_grad():
        spec = _margin_spec(label, _classes(network), image)
        root = root_domains(network, lowers, uppers, spec.shape[1])
        bound, lowest = optimise_bound(network, x_lower, x_upper, lowers, uppers, spec, root,
                                       ROOT_STEPS)
        bound = torch.maximum(bound, _interval_bound(model, image, labels, eps))
        search.bounded += 1
    found = _misclassified(search, lowest[0])
    open_specs = (~(bound[0] > 0)).nonzero().squeeze(1).tolist()  # NaN stays open
    if found is None and open_specs and pgd[0] > 0:
        adversarial, flipped = pgd_attack(model, image, labels, eps, pgd[0], pgd[1],
                                          generator=generator)
        found = adversarial[0] if bool(flipped[0]) else None
    root_margin = min(float(bound.min()), 0.0)  # NaN stays NaN: not positive
    if found is not None:
        return Outcome(COUNTEREXAMPLE, time.monotonic() - started, search.bounded, found,
                       root_margin)
    status, found = VERIFIED, None
    proven = [float(bound[0, j]) for j in range(bound.shape[1]) if j not in open_specs]
    for j in sorted(open_specs, key=lambda j: float(bound[0, j])):  # the hardest first
        start = Domains(root.signs, *[[t[:, j:j + 1].clone() for t in getattr(root, f)]
                                      for f in Domains.FIELDS[1:]])
        status, found, lowest_proven = _search_margin(search, spec[:, j:j + 1], start,
                                                      bound[:, j])
        proven.append(lowest_proven)
        if status != VERIFIED:
            break
    margin = min(proven) if status == VERIFIED else root_margin
    return Outcome(status, time.monotonic() - started, search.bounded, found, margin)


def relu_bounds(network: Network, ball):
    """Bounds ``([B, *shape], [B, *shape])`` per ReLU on its input over ``ball`` (``B``
    images): CROWN's (``split_bounds.crown_relu_bounds``, the engine's ``crown`` arithmetic
    without its per-call tracing) intersected with the engine's interval bounds on the network's
    prefix up to that ReLU."""
    from robusttext.bounds import compute_bounds

    modules, ibp = [], []
    with torch.no_grad():
        for block in network.blocks[:-1]:
            modules += [m for m, _ in block]
            ibp.append(compute_bounds(nn.Sequential(*modules), ball, "ibp"))
            modules.append(nn.ReLU())
        x_lower, x_upper = ball.interval()
        return crown_relu_bounds(network, x_lower, x_upper, ibp)


def _interval_bound(model, image, labels, eps: float) -> torch.Tensor:
    """The engine's IBP lower bounds ``[1, classes - 1]`` on the margins (sound as well: the
    root takes the larger of the two per margin, so bab verifies whatever IBP does)."""
    from robusttext.vision.verify import image_margin_bound

    return image_margin_bound(model, image, labels, eps)("ibp")


def _classes(network: Network) -> int:
    last = network.blocks[-1][-1][0]
    if not isinstance(last, nn.Linear):
        raise RobustTextError("bab takes networks whose last layer is nn.Linear (the logits)")
    return last.out_features


def _margin_spec(label: int, classes: int, like: torch.Tensor) -> torch.Tensor:
    """``[1, classes - 1, classes]``: rows ``e_label - e_j`` for ``j != label``."""
    from robusttext.bounds.specs import margin_matrix

    labels = torch.tensor([label], device=like.device)
    return margin_matrix(labels, classes).to(like.dtype)


def _misclassified(search: Search, points: torch.Tensor) -> torch.Tensor | None:
    """The first of ``points`` ``[P, *image]`` (in the box) the model misclassifies, or None."""
    with torch.no_grad():
        points = torch.minimum(torch.maximum(points, search.x_lower), search.x_upper)
        wrong = (search.network.model(points).argmax(1) != search.label).nonzero()
    return points[int(wrong[0])].clone() if wrong.numel() else None


def _search_margin(search: Search, spec, root: Domains, root_bound):
    """Branch and bound on one margin (``spec`` ``[1, 1, classes]``): ``(status, point, the
    lowest bound of the domains it proved)``."""
    open_domains, bounds = root, root_bound.reshape(1)
    lowest_proven = math.inf
    while len(open_domains):
        if time.monotonic() > search.deadline or len(open_domains) > search.max_domains:
            return TIMEOUT, None, lowest_proven
        order = torch.argsort(bounds)
        chosen, rest = order[:search.round_size], order[search.round_size:]
        children = split(search, open_domains.take(chosen))
        with torch.no_grad():
            child_bounds, lowest = optimise_bound(
                search.network, search.x_lower, search.x_upper, search.lowers, search.uppers,
                spec.expand(len(children), -1, -1), children, search.steps,
                deadline=search.deadline)
        search.bounded += len(children)
        found = _misclassified(search, lowest[:, 0])
        if found is not None:
            return COUNTEREXAMPLE, found, lowest_proven
        proven = child_bounds[:, 0] > 0
        if proven.any():
            lowest_proven = min(lowest_proven, float(child_bounds[proven, 0].min()))
        still = (~proven).nonzero().squeeze(1)  # NaN stays open
        open_domains = Domains.cat([open_domains.take(rest), children.take(still)])
        bounds = torch.cat([bounds[rest], child_bounds[still, 0]])
    return VERIFIED, None, lowest_proven


def split(search: Search, domains: Domains) -> Domains:
    """The two children (``+1`` then ``-1``) of each domain, split on its unstable neuron of
    the largest score; a domain without unstable neurons is kept as one child (its bound is
    then a bound of a linear function over the box and its split constraints)."""
    with torch.no_grad():
        flat = torch.cat([s.flatten(1) for s in split_scores(search, domains)], 1)
    best = flat.argmax(1)
    splittable = flat.gather(1, best[:, None]).squeeze(1) > 0
    children = []
    for sign in (1, -1):
        child = domains.take(torch.arange(len(domains)))  # indexing copies
        offset = 0
        for s in child.signs:
            size = s[0].numel()
            inside = splittable & (best >= offset) & (best < offset + size)
            rows = inside.nonzero().squeeze(1)
            s.view(len(domains), -1)[rows, best[rows] - offset] = sign
            offset += size
        children.append(child if sign == 1 else child.take(splittable.nonzero().squeeze(1)))
    return Domains.cat(children)


def split_scores(search: Search, domains: Domains):
    """Per ReLU ``[D, *shape]``: ``(|coefficient| + 1e-6) * (-l u / (u - l))`` on unstable
    neurons (what the triangle relaxation costs the bound; the small term keeps a neuron whose
    coefficient is 0 splittable), 0 elsewhere. The coefficients are those
    of the domain's own bound (kept from its last pass)."""
    cut_l, cut_u = cut_bounds(search.lowers, search.uppers, domains.signs)
    scores = []
    for lo, hi, coefficient in zip(cut_l, cut_u, domains.coefficients):
        unstable = (lo < 0) & (hi > 0)
        gap = torch.where(unstable, -lo * hi / torch.where(unstable, hi - lo, 1), 0)
        scores.append((coefficient.abs().sum(1) + 1e-6) * gap)  # every unstable one > 0
    return scores
