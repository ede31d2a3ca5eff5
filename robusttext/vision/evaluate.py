"""Clean, PGD and verified accuracy of an image classifier at one L-infinity radius."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from robusttext.methods import BAB_METHOD
from robusttext.vision.bab import DEFAULT_TIME_LIMIT
from robusttext.vision.data import ImageDataset
from robusttext.vision.pgd import pgd_attack
from robusttext.vision.verify import check_eps, verified


@dataclass
class Evaluation:
    """Per-example outcomes, each ``[N]`` bool, and the radius they hold for.

    ``correct``: clean prediction right; ``pgd_robust``: right and PGD found no flip (examples
    left unattacked, see :func:`evaluate`, count as robust); ``pgd_attacked``: how many PGD ran on;
    ``verified[method]``: every margin lower bound of ``method`` positive (for ``bab``: the
    branch and bound's answer is ``verified``); ``bab``: the branch and bound's counts
    (counterexamples, timeouts, seconds, time limit), when it ran.
    """

    eps: float
    correct: torch.Tensor
    pgd_robust: torch.Tensor
    verified: dict[str, torch.Tensor] = field(default_factory=dict)
    pgd_steps: int = 20
    pgd_restarts: int = 1
    pgd_attacked: int = -1
    bab: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """Accuracies in [0, 1] plus counts, JSON-serialisable."""
        n = int(self.correct.numel())
        out = {
            "n": n,
            "eps": self.eps,
            "pgd_steps": self.pgd_steps,
            "pgd_restarts": self.pgd_restarts,
            "pgd_attacked": self.pgd_attacked,
            "clean_accuracy": _mean(self.correct),
            "pgd_accuracy": _mean(self.pgd_robust),
        }
        for method, mask in self.verified.items():
            out[f"{method.replace('-', '_')}_verified_accuracy"] = _mean(mask)
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
    methods: tuple[str, ...] = ("ibp", "crown-ibp"),
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    attack_verified_fraction: float = 1.0,
    bab_time_limit: float = DEFAULT_TIME_LIMIT,
) -> Evaluation:
    """Evaluate ``model`` on every example of ``data`` at radius ``eps`` (pixel units).

    PGD attacks every correctly classified example, except that examples certified by one of
    ``methods`` are attacked only with probability ``attack_verified_fraction`` (a seeded
    sample): a sound certificate already proves no attack can flip them, and the sample still
    cross-checks that claim. With the default 1.0 every correct example is attacked.
    """
    eps = check_eps(eps)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    correct, robust, attacked = [], [], 0
    bab_counts = {"counterexamples": 0, "timeouts": 0, "seconds": 0.0,
                  "time_limit": bab_time_limit} if BAB_METHOD in methods else {}
    certified: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    starts = range(0, len(data), batch_size)
    for start in tqdm(starts, desc=f"evaluate eps={eps:g}", disable=None if progress else True,
                      leave=False):
        x = data.images[start : start + batch_size].to(device)
        y = data.labels[start : start + batch_size].to(device)
        with torch.no_grad():
            right = model(x).argmax(1) == y
        any_certified = torch.zeros_like(right)
        for method in methods:
            mask = (run_bab(model, x, y, eps, bab_time_limit, bab_counts) if method == BAB_METHOD
                    else verified(model, x, y, eps, method))
            certified[method].append(mask.cpu())
            any_certified |= mask
        attack = right.clone()
        if attack_verified_fraction < 1.0:
            sample = torch.rand(right.shape, generator=generator).to(device)
            attack &= ~any_certified | (sample < attack_verified_fraction)
        flipped = torch.zeros_like(right)
        index = attack.nonzero().squeeze(1)
        if index.numel():
            _, flipped[index] = pgd_attack(
                model, x[index], y[index], eps, pgd_steps, pgd_restarts, generator=generator
            )
        attacked += int(index.numel())
        correct.append(right.cpu())
        robust.append((right & ~flipped).cpu())
    result = Evaluation(
        eps,
        torch.cat(correct),
        torch.cat(robust),
        {m: torch.cat(v) for m, v in certified.items()},
        pgd_steps,
        pgd_restarts,
        attacked,
        bab_counts,
    )
    violations = result.soundness_violations()
    if violations:
        print(
            f"WARNING: {violations} example(s) were certified yet PGD or the clean input "
            "misclassified them: the bound engine is unsound here. Report this.",
            file=sys.stderr,
        )
    return result


def run_bab(model, images, labels, eps, time_limit, counts) -> torch.Tensor:
    """``[batch]`` bool: the branch and bound verified the image; ``counts`` adds up its
    counterexamples, timeouts and seconds."""
    from robusttext.vision.bab import COUNTEREXAMPLE, TIMEOUT, VERIFIED, bab_verify

    outcomes = bab_verify(model, images, labels, eps, time_limit=time_limit)
    counts["counterexamples"] += sum(o.status == COUNTEREXAMPLE for o in outcomes)
    counts["timeouts"] += sum(o.status == TIMEOUT for o in outcomes)
    counts["seconds"] = round(counts["seconds"] + sum(o.seconds for o in outcomes), 2)
    return torch.tensor([o.status == VERIFIED for o in outcomes], device=images.device)


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else 0.0
