"""Clean, PGD and verified accuracy of an image classifier at one L-infinity radius."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from robusttext.methods import BAB_METHOD, BoundSettings, bound_settings
from robusttext.vision.bab import DEFAULT_TIME_LIMIT
from robusttext.vision.data import ImageDataset
from robusttext.vision.pgd import pgd_attack
from robusttext.vision.verify import check_eps, image_margin_bound


@dataclass
class Evaluation:
    """Per-example outcomes, each ``[N]``, and the radius they hold for.

    ``correct``: clean prediction right; ``pgd_robust``: right and PGD found no flip (examples
    left unattacked, see :func:`evaluate`, count as robust); ``pgd_attacked``: how many PGD ran on;
    ``verified[method]``: every margin lower bound of ``method`` positive.
    ``prediction`` (int64): the clean prediction; ``margins[method]`` (float): the lowest
    margin lower bound ``min_j (z_y - z_j)`` of ``method`` over the ball (``verified`` is it
    being positive); ``counterexamples``: example index -> the misclassified point PGD found
    in its ball ``[C, H, W]`` (kept when :func:`evaluate` is asked to); ``labels``: the true
    labels. For ``bab`` the margin is the lowest bound its search proved (positive: verified)
    or its root's (not positive: a counterexample or a timeout); ``bab``: its counts
    (counterexamples, timeouts, seconds, time limit), when it ran.
    """

    eps: float
    correct: torch.Tensor
    pgd_robust: torch.Tensor
    verified: dict[str, torch.Tensor] = field(default_factory=dict)
    pgd_steps: int = 20
    pgd_restarts: int = 1
    pgd_attacked: int = -1
    prediction: torch.Tensor | None = None
    margins: dict[str, torch.Tensor] = field(default_factory=dict)
    counterexamples: dict[int, torch.Tensor] = field(default_factory=dict)
    labels: torch.Tensor | None = None
    bab: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """Accuracies in [0, 1] (counts over ``n``, as text's report gives them: no float32
        rounding) plus counts, JSON-serialisable."""
        n = int(self.correct.numel())
        out = {
            "n": n,
            "eps": self.eps,
            "pgd_steps": self.pgd_steps,
            "pgd_restarts": self.pgd_restarts,
            "pgd_attacked": self.pgd_attacked,
            "clean_accuracy": share(self.correct),
            "pgd_accuracy": share(self.pgd_robust),
        }
        for method, mask in self.verified.items():
            out[f"{method.replace('-', '_')}_verified_accuracy"] = share(mask)
        out.update({f"bab_{key}": value for key, value in self.bab.items()})
        out["soundness_violations"] = self.soundness_violations()
        return out

    def soundness_violations(self) -> int:
        """Examples certified by some method yet misclassified or flipped by PGD (must be 0)."""
        bad = torch.zeros_like(self.correct)
        for mask in self.verified.values():
            bad |= mask & ~self.pgd_robust
        return int(bad.sum())


def evaluate(
    model: nn.Module,
    data: ImageDataset,
    eps: float,
    *,
    pgd_steps: int = 20,
    pgd_restarts: int = 1,
    methods: tuple[str | BoundSettings, ...] = ("ibp", "crown-ibp"),
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    attack_verified_fraction: float = 1.0,
    keep_counterexamples: bool = False,
    bab_time_limit: float = DEFAULT_TIME_LIMIT,
) -> Evaluation:
    """Evaluate ``model`` on every example of ``data`` at radius ``eps`` (pixel units).

    PGD attacks every correctly classified example, except that examples certified by one of
    ``methods`` are attacked only with probability ``attack_verified_fraction`` (a seeded
    sample): a sound certificate already proves no attack can flip them, and the sample still
    cross-checks that claim. With the default 1.0 every correct example is attacked.
    ``keep_counterexamples``: keep PGD's misclassified point of every flipped example (for a
    report that shows them). ``methods``: names, or ``BoundSettings`` carried from the flags
    (alpha-CROWN's steps); the results are keyed by method name. ``bab`` (in ``methods``) runs
    the branch and bound with ``bab_time_limit`` seconds per image.
    """
    bounds = tuple(bound_settings(m) for m in methods)
    methods = tuple(b.method for b in bounds)
    eps = check_eps(eps)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list] = {"correct": [], "robust": [], "prediction": [],
                              **{m: [] for m in methods}}
    attacked, counterexamples = 0, {}
    bab = {"counterexamples": 0, "timeouts": 0, "seconds": 0.0,
           "time_limit": bab_time_limit} if BAB_METHOD in methods else None
    starts = range(0, len(data), batch_size)
    for start in tqdm(starts, desc=f"evaluate eps={eps:g}", disable=None if progress else True,
                      leave=False):
        x = data.images[start : start + batch_size].to(device)
        y = data.labels[start : start + batch_size].to(device)
        batch = _batch(model, x, y, eps, bounds, pgd_steps, pgd_restarts, generator,
                       attack_verified_fraction, bab)
        for key, value in batch.items():
            if key in parts:
                parts[key].append(value)
        attacked += batch["attacked"]
        if keep_counterexamples:
            counterexamples.update({start + int(i): image
                                    for i, image in batch["counterexamples"].items()})
    margins = {m: torch.cat(parts[m]) for m in methods}
    result = Evaluation(
        eps,
        torch.cat(parts["correct"]),
        torch.cat(parts["robust"]),
        {m: v > 0 for m, v in margins.items()},
        pgd_steps,
        pgd_restarts,
        attacked,
        torch.cat(parts["prediction"]),
        margins,
        counterexamples,
        data.labels[:len(data)].cpu(),
        bab or {},
    )
    violations = result.soundness_violations()
    if violations:
        print(
            f"WARNING: {violations} example(s) were certified yet PGD or the clean input "
            "misclassified them: the bound engine is unsound here. Report this.",
            file=sys.stderr,
        )
    return result


def _batch(model, x, y, eps, bounds, pgd_steps, pgd_restarts, generator,
           attack_verified_fraction, bab=None) -> dict:
    """One batch ``x`` ``[batch, C, H, W]``, ``y`` ``[batch]``: on the CPU, ``correct``,
    ``robust`` (bool), ``prediction`` and per method of ``bounds`` (``BoundSettings``) its
    lowest margin lower bound (``[batch]`` each, keyed by the method's name); ``attacked``
    (how many PGD ran on); ``counterexamples`` (row -> PGD's misclassified point
    ``[C, H, W]``). ``bab``: the branch and bound's settings and counts (``run_bab``), when
    it runs."""
    with torch.no_grad():
        prediction = model(x).argmax(1)
        right = prediction == y
    out = {"prediction": prediction.cpu()}
    any_certified = torch.zeros_like(right)
    bound = image_margin_bound(model, x, y, eps)
    for setting in bounds:
        if setting.method == BAB_METHOD:
            lowest = run_bab(model, x, y, eps, bab)
        else:
            with torch.no_grad():  # the lowest margin; verified: it is positive
                lowest = bound(setting).amin(1)
        out[setting.method] = lowest.cpu()
        any_certified |= lowest > 0
    attack = right.clone()
    if attack_verified_fraction < 1.0:
        sample = torch.rand(right.shape, generator=generator).to(x.device)
        attack &= ~any_certified | (sample < attack_verified_fraction)
    flipped = torch.zeros_like(right)
    index = attack.nonzero().squeeze(1)
    out["counterexamples"] = {}
    if index.numel():
        adversarial, flipped[index] = pgd_attack(
            model, x[index], y[index], eps, pgd_steps, pgd_restarts, generator=generator
        )
        out["counterexamples"] = {int(i): adversarial[k].cpu()
                                  for k, i in enumerate(index.tolist()) if flipped[i]}
    out.update(attacked=int(index.numel()), correct=right.cpu(), robust=(right & ~flipped).cpu())
    return out


def run_bab(model, images, labels, eps, counts: dict) -> torch.Tensor:
    """``[batch]``: the branch and bound's margin per image (positive: verified); ``counts``
    (its ``time_limit``) adds up its counterexamples, timeouts and seconds."""
    from robusttext.vision.bab import COUNTEREXAMPLE, TIMEOUT, bab_verify

    outcomes = bab_verify(model, images, labels, eps, time_limit=counts["time_limit"])
    counts["counterexamples"] += sum(o.status == COUNTEREXAMPLE for o in outcomes)
    counts["timeouts"] += sum(o.status == TIMEOUT for o in outcomes)
    counts["seconds"] = round(counts["seconds"] + sum(o.seconds for o in outcomes), 2)
    return torch.tensor([o.margin for o in outcomes], device=images.device)


def share(mask: torch.Tensor) -> float:
    """The share of true entries of ``mask`` ``[N]``, as the count over the total (a Python
    division: no float32 rounding); 0 for an empty mask."""
    return int(mask.sum()) / mask.numel() if mask.numel() else 0.0
