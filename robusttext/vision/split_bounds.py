"""Lower bounds on a ReLU network's margins over a box with some ReLUs split (beta-CROWN style).

The networks are the vision models (``robusttext.vision.models``): an ``nn.Sequential`` of
affine modules (``Normalize``, ``Conv2d``, ``Linear``, ``Flatten``) and ``ReLU``. A *domain* is
the input box together with, per ReLU, a sign per neuron: ``+1`` keeps the inputs whose
pre-activation ``z >= 0``, ``-1`` those with ``z <= 0``, ``0`` no constraint. The two children of
a split (``+1`` and ``-1`` at one neuron) cover their parent.

Bound of ``spec . f(x)`` over a domain (one backward pass, as CROWN, on fixed pre-activation
bounds ``[l, u]`` that hold on the whole box, here the engine's CROWN bounds):

- a split neuron's bounds are cut to ``[max(l, 0), u]`` (``+1``) or ``[l, min(u, 0)]`` (``-1``),
  sound on the domain since every point of it satisfies the split;
- an unstable ReLU (``l < 0 < u``) is bounded below by ``alpha z`` (any ``alpha`` in
  ``[0, 1]``) and above by the chord ``u (z - l) / (u - l)``; a stable one is exact;
- every split constraint ``s z >= 0`` enters with a multiplier ``beta >= 0``: ``spec . f(x) >=
  spec . f(x) - beta s z`` on the domain, so the bound of the right-hand side over the relaxed
  set is a lower bound on the domain (Wang et al. 2021, "Beta-CROWN").

Every ``alpha`` in ``[0, 1]`` and ``beta >= 0`` gives a sound bound; both are optimised by
projected gradient ascent, and the best bound seen is kept (each one is sound).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from robusttext.errors import RobustTextError
from robusttext.vision.models import Normalize

AFFINE = (Normalize, nn.Conv2d, nn.Linear, nn.Flatten)


@dataclass
class Network:
    """A sequential ReLU network cut into affine blocks: ``blocks[k]`` (a list of modules with
    their input shapes, without the batch) maps ReLU ``k - 1``'s output (the image for ``k = 0``)
    to ReLU ``k``'s input; the last block gives the logits. ``shapes[k]``: ReLU ``k``'s shape."""

    model: nn.Module
    blocks: list
    shapes: list
    cache: dict = field(default_factory=dict)  # (ReLU, first row) -> its identity rows' pass


def read_network(model: nn.Module, image_shape) -> Network:
    """The blocks of ``model`` (an ``nn.Sequential`` of ``Normalize``, ``Conv2d``, ``Linear``,
    ``Flatten`` and ``ReLU``, ending in an affine module) for images ``image_shape`` ``[C, H,
    W]``."""
    if not isinstance(model, nn.Sequential):
        names = ", ".join(m.__name__ for m in AFFINE)
        raise RobustTextError(f"bab takes an nn.Sequential of {names} and ReLU, got "
                              f"{type(model).__name__}")
    blocks, shapes, current = [], [], []
    x = torch.zeros(1, *image_shape, dtype=_dtype(model), device=_device(model))
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.ReLU):
                if not current:
                    raise RobustTextError("bab takes networks with an affine layer before every "
                                          "ReLU")
                blocks.append(current)
                shapes.append(tuple(x.shape[1:]))
                current = []
            elif isinstance(module, AFFINE):
                _check_affine(module)
                current.append((module, tuple(x.shape[1:])))
            else:
                raise RobustTextError(f"bab does not bound {type(module).__name__}; it takes "
                                      f"{', '.join(m.__name__ for m in AFFINE)} and ReLU")
            x = module(x)
    if not current:
        raise RobustTextError("bab takes networks that end in an affine layer (the logits)")
    blocks.append(current)
    return Network(model, blocks, shapes)


def _check_affine(module) -> None:
    if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.dilation != (1, 1)
                                          or module.padding_mode != "zeros"
                                          or isinstance(module.padding, str)):
        raise RobustTextError("bab takes Conv2d with groups 1, dilation 1 and numeric zero "
                              "padding")


def _dtype(model):
    return next((p.dtype for p in model.parameters()), torch.float32)


def _device(model):
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def block_backward(block, A: torch.Tensor):
    """``(A', bias)`` with ``A . block(x) = A' . x + bias`` for every ``x``.

    A: ``[D, S, *out]`` -> A' ``[D, S, *in]``, bias ``[D, S]``."""
    bias = A.new_zeros(A.shape[:2])
    for module, in_shape in reversed(block):
        D, S = A.shape[:2]
        if isinstance(module, nn.Flatten):
            A = A.reshape(D, S, *in_shape)
        elif isinstance(module, Normalize):
            scale = (1 / module.std).view(1, 1, -1, 1, 1)
            bias = bias + (A * (-module.mean.view(1, 1, -1, 1, 1) * scale)).flatten(2).sum(2)
            A = A * scale
        elif isinstance(module, nn.Linear):
            if module.bias is not None:
                bias = bias + A @ module.bias
            A = A @ module.weight
        else:  # Conv2d
            if module.bias is not None:
                bias = bias + (A.sum((3, 4)) * module.bias).sum(2)
            A = _conv_backward(module, A, in_shape)
    return A, bias


def _conv_backward(conv: nn.Conv2d, A: torch.Tensor, in_shape) -> torch.Tensor:
    """``A`` ``[D, S, C_out, H', W']`` times the convolution's matrix: ``[D, S, *in_shape]``."""
    D, S = A.shape[:2]
    flat = A.reshape(D * S, *A.shape[2:])
    made = [(flat.shape[2 + i] - 1) * conv.stride[i] - 2 * conv.padding[i]
            + conv.kernel_size[i] for i in range(2)]
    extra = tuple(in_shape[1 + i] - made[i] for i in range(2))
    out = F.conv_transpose2d(flat, conv.weight, stride=conv.stride, padding=conv.padding,
                             output_padding=extra)
    return out.reshape(D, S, *in_shape)


def run_block(block, x: torch.Tensor) -> torch.Tensor:
    """The block's output for ``x`` ``[batch, *in]``."""
    for module, _ in block:
        x = module(x)
    return x


@dataclass
class Domains:
    """A batch of ``D`` domains of one image and ``S`` specifications.

    signs: per ReLU ``[D, *shape]`` int8 in ``{-1, 0, 1}``; alphas, betas: per ReLU ``[D, S,
    *shape]`` (the lower slopes and the split multipliers, carried from parent to child)."""

    signs: list
    alphas: list
    betas: list
    coefficients: list  # per ReLU [D, S, *shape]: its output's coefficients in the last bound

    FIELDS = ("signs", "alphas", "betas", "coefficients")

    def __len__(self) -> int:
        return self.signs[0].shape[0]

    def take(self, index: torch.Tensor) -> Domains:
        """The domains at ``index`` ``[K]`` (copies)."""
        return Domains(*[[t[index] for t in getattr(self, f)] for f in self.FIELDS])

    @staticmethod
    def cat(parts) -> Domains:
        parts = list(parts)
        return Domains(*[[torch.cat(ts) for ts in zip(*(getattr(p, f) for p in parts))]
                         for f in Domains.FIELDS])


def root_domains(network: Network, lowers, uppers, specs: int) -> Domains:
    """One domain without splits, CROWN's slopes (1 where ``u > -l``, else 0), zero
    multipliers. ``lowers``/``uppers``: per ReLU ``[1, *shape]``."""
    signs = [torch.zeros(lo.shape, dtype=torch.int8, device=lo.device) for lo in lowers]
    alphas = [(hi > -lo).to(lo.dtype).unsqueeze(1).expand(-1, specs, *lo.shape[1:]).clone()
              for lo, hi in zip(lowers, uppers)]
    betas = [torch.zeros_like(a) for a in alphas]
    return Domains(signs, alphas, betas, [torch.zeros_like(a) for a in alphas])


def cut_bounds(lowers, uppers, signs):
    """The pre-activation bounds of each domain, ``[D, *shape]`` per ReLU: the box's bounds
    cut by the splits (``+1``: ``l >= 0``; ``-1``: ``u <= 0``)."""
    cut_l = [torch.where(s > 0, lo.clamp(min=0), lo) for lo, s in zip(lowers, signs)]
    cut_u = [torch.where(s < 0, hi.clamp(max=0), hi) for hi, s in zip(uppers, signs)]
    return cut_l, cut_u


def backward_bound(network: Network, x_lower, x_upper, lowers, uppers, spec, domains: Domains,
                   keep_coefficients: bool = False):
    """Lower bounds ``[D, S]`` on ``spec . f(x)`` over each domain, and the box point where the
    linear bound is lowest ``[D, S, *image]``; with ``keep_coefficients`` also each ReLU's output
    coefficients ``[D, S, *shape]`` (for choosing a split).

    x_lower, x_upper: ``[1, *image]``; lowers, uppers: per ReLU ``[1, *shape]`` (bounds on the
    whole box); spec: ``[D, S, classes]``."""
    cut_l, cut_u = cut_bounds(lowers, uppers, domains.signs)
    A, bias = block_backward(network.blocks[-1], spec)
    kept = []
    for k in range(len(network.shapes) - 1, -1, -1):
        if keep_coefficients:
            kept.append(A.detach())
        A, shift = _relu_backward(A, cut_l[k].unsqueeze(1), cut_u[k].unsqueeze(1),
                                  domains.alphas[k], domains.betas[k], domains.signs[k])
        A, block_bias = block_backward(network.blocks[k], A)
        bias = bias + shift + block_bias
    positive = A >= 0
    lowest = torch.where(positive, x_lower.unsqueeze(1), x_upper.unsqueeze(1))
    bound = bias + (A * lowest).flatten(2).sum(2)
    return (bound, lowest.detach(), kept[::-1]) if keep_coefficients else (bound, lowest.detach())


def _relu_backward(A, lo, hi, alpha, beta=None, sign=None):
    """Coefficients on a ReLU's input from those on its output, for a lower bound, and the
    bias the upper lines add ``[D, S]``. lo, hi: ``[D, 1, *shape]``; alpha, beta: ``[D, S or 1,
    *shape]``; sign: ``[D, *shape]`` (no split terms when beta is None)."""
    unstable = (lo < 0) & (hi > 0)
    active = (lo >= 0).to(A.dtype)
    width = torch.where(unstable, hi - lo, torch.ones_like(hi))
    upper_slope = torch.where(unstable, hi / width, active)
    upper_icpt = torch.where(unstable, -upper_slope * lo, torch.zeros_like(lo))
    lower_slope = torch.where(unstable, alpha, active)
    negative = A.clamp(max=0)
    positive = A - negative
    shift = (negative * upper_icpt).flatten(2).sum(2)
    A = positive * lower_slope + negative * upper_slope
    if beta is None:
        return A, shift
    return A - beta * sign.unsqueeze(1).to(A.dtype), shift


def crown_slope(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """CROWN's lower slope of an unstable ReLU: 1 where ``u > -l``, else 0 (as the engine)."""
    return (hi > -lo).to(lo.dtype)


CACHE_ENTRIES = 2**25  # the largest block matrix kept between images


def _block_rows(network: Network, k: int, rows: torch.Tensor, like: torch.Tensor):
    """``block_backward`` of the unit rows ``rows`` ``[R]`` (neurons of ReLU ``k``, flat) through
    block ``k``: ``([1, R, *in], [1, R])``. The same for every image: the whole matrix is kept
    in ``network.cache`` when small enough."""
    shape = network.shapes[k]
    n = math.prod(shape)
    key = (k, like.dtype, like.device)
    if key not in network.cache:
        whole = None
        if n * math.prod(network.blocks[k][0][1]) <= CACHE_ENTRIES:
            eye = torch.eye(n, dtype=like.dtype, device=like.device)
            whole = block_backward(network.blocks[k], eye.view(1, n, *shape))
        network.cache[key] = whole
    whole = network.cache[key]
    if whole is not None:
        return whole[0][:, rows], whole[1][:, rows]
    eye = torch.zeros(len(rows), n, dtype=like.dtype, device=like.device)
    eye[torch.arange(len(rows)), rows] = 1
    return block_backward(network.blocks[k], eye.view(1, -1, *shape))


def crown_relu_bounds(network: Network, x_lower, x_upper, ibp, rows: int = 1024):
    """CROWN's bounds ``([B, *shape], [B, *shape])`` on every ReLU's input over the boxes
    ``[x_lower, x_upper]`` ``[B, *image]``, each ReLU's from the bounds of the ones before it (as
    the engine's ``crown``), intersected with ``ibp`` (per ReLU ``(lower, upper)``, the
    engine's interval bounds). Only the neurons unstable under ``ibp`` are bounded again
    (CROWN cannot make the others' relaxations tighter), ``rows`` of them per backward pass."""
    found = [_image_relu_bounds(network, x_lower[b:b + 1], x_upper[b:b + 1],
                                [(lo[b:b + 1], hi[b:b + 1]) for lo, hi in ibp], rows)
             for b in range(x_lower.shape[0])]
    return ([torch.cat([f[0][k] for f in found]) for k in range(len(ibp))],
            [torch.cat([f[1][k] for f in found]) for k in range(len(ibp))])


def _image_relu_bounds(network: Network, x_lower, x_upper, ibp, rows: int):
    """``crown_relu_bounds`` for one box ``[1, *image]``."""
    lowers, uppers = [], []
    for k, shape in enumerate(network.shapes):
        lower, upper = (t.flatten(1).clone() for t in ibp[k])
        unstable = ((lower < 0) & (upper > 0))[0].nonzero().squeeze(1)
        for start in range(0, len(unstable), rows):
            chosen = unstable[start:start + rows]
            A, bias = _block_rows(network, k, chosen, x_lower)
            A, bias = torch.cat([A, -A], 1), torch.cat([bias, -bias], 1)
            for j in range(k - 1, -1, -1):
                lo, hi = lowers[j].unsqueeze(1), uppers[j].unsqueeze(1)
                A, shift = _relu_backward(A, lo, hi, crown_slope(lo, hi))
                A, block_bias = block_backward(network.blocks[j], A)
                bias = bias + shift + block_bias
            lowest = torch.where(A >= 0, x_lower.unsqueeze(1), x_upper.unsqueeze(1))
            both = (bias + (A * lowest).flatten(2).sum(2)).view(2, -1)
            low = torch.maximum(both[0], lower[0, chosen])
            high = torch.minimum(-both[1], upper[0, chosen])
            bad = low > high  # float rounding against the interval bound: keep the interval's
            lower[0, chosen] = torch.where(bad, lower[0, chosen], low)
            upper[0, chosen] = torch.where(bad, upper[0, chosen], high)
        lowers.append(lower.view(1, *shape))
        uppers.append(upper.view(1, *shape))
    return lowers, uppers


def optimise_bound(network: Network, x_lower, x_upper, lowers, uppers, spec, domains: Domains,
                   steps: int, lr_alpha: float = 0.1, lr_beta: float = 0.05,
                   deadline: float = math.inf):
    """The best lower bounds ``[D, S]`` over ``steps`` projected Adam steps on the domains'
    alphas and betas (updated in place to the best ones seen, and the domains' coefficients
    to those of the pass at them), and the lowest box points of that pass ``[D, S, *image]``.
    The steps stop early once ``time.monotonic()`` passes ``deadline`` (every bound is sound)."""
    alphas = [a.clone().requires_grad_() for a in domains.alphas]
    betas = [b.clone().requires_grad_() for b in domains.betas]
    trial = Domains(domains.signs, alphas, betas, domains.coefficients)
    optimiser = torch.optim.Adam([{"params": alphas, "lr": lr_alpha},
                                  {"params": betas, "lr": lr_beta}])
    best = None
    for step in range(max(steps, 1)):
        with torch.enable_grad():
            bound = backward_bound(network, x_lower, x_upper, lowers, uppers, spec, trial)[0]
            if step < steps - 1:
                optimiser.zero_grad()
                (-bound.sum()).backward()
        with torch.no_grad():
            better = torch.ones_like(bound, dtype=torch.bool) if best is None else bound > best
            best = bound.detach() if best is None else torch.where(better, bound, best)
            for mine, tried in zip(domains.alphas + domains.betas, alphas + betas):
                keep = better.view(*better.shape, *([1] * (mine.dim() - 2)))
                mine.copy_(torch.where(keep, tried, mine))
            if time.monotonic() > deadline:
                break
            if step < steps - 1:
                optimiser.step()
                for a in alphas:
                    a.clamp_(0, 1)
                for b in betas:
                    b.clamp_(min=0)
    with torch.no_grad():  # the pass at the best multipliers, for its points and coefficients
        bound, lowest, kept = backward_bound(network, x_lower, x_upper, lowers, uppers, spec,
                                             domains, keep_coefficients=True)
    domains.coefficients = kept
    return torch.maximum(bound, best), lowest
