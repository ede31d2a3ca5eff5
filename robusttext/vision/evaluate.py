"""Clean, PGD and verified accuracy of an image classifier at one L-infinity radius."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from robusttext.vision.data import ImageDataset
from robusttext.vision.pgd import pgd_attack
from robusttext.vision.verify import check_eps, verified


@dataclass
class Evaluation:
    """Per-example outcomes, each ``[N]`` bool, and the radius they hold for.

    ``correct``: clean prediction right; ``pgd_robust``: right and PGD found no flip;
    ``verified[method]``: every margin lower bound of ``method`` positive.
    """

    eps: float
    correct: torch.Tensor
    pgd_robust: torch.Tensor
    verified: dict[str, torch.Tensor] = field(default_factory=dict)
    pgd_steps: int = 20
    pgd_restarts: int = 1

    def metrics(self) -> dict:
        """Accuracies in [0, 1] plus counts, JSON-serialisable."""
        n = int(self.correct.numel())
        out = {
            "n": n,
            "eps": self.eps,
            "pgd_steps": self.pgd_steps,
            "pgd_restarts": self.pgd_restarts,
            "clean_accuracy": _mean(self.correct),
            "pgd_accuracy": _mean(self.pgd_robust),
        }
        for method, mask in self.verified.items():
            out[f"{method.replace('-', '_')}_verified_accuracy"] = _mean(mask)
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
) -> Evaluation:
    """Evaluate ``model`` on every example of ``data`` at radius ``eps`` (pixel units)."""
    eps = check_eps(eps)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    correct, robust = [], []
    certified: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    starts = range(0, len(data), batch_size)
    for start in tqdm(starts, desc=f"evaluate eps={eps:g}", disable=not progress, leave=False):
        x = data.images[start : start + batch_size].to(device)
        y = data.labels[start : start + batch_size].to(device)
        with torch.no_grad():
            right = model(x).argmax(1) == y
        _, flipped = pgd_attack(model, x, y, eps, pgd_steps, pgd_restarts, generator=generator)
        correct.append(right.cpu())
        robust.append((right & ~flipped).cpu())
        for method in methods:
            certified[method].append(verified(model, x, y, eps, method).cpu())
    result = Evaluation(
        eps,
        torch.cat(correct),
        torch.cat(robust),
        {m: torch.cat(v) for m, v in certified.items()},
        pgd_steps,
        pgd_restarts,
    )
    violations = result.soundness_violations()
    if violations:
        print(
            f"WARNING: {violations} example(s) were certified yet PGD or the clean input "
            "misclassified them: the bound engine is unsound here. Report this.",
            file=sys.stderr,
        )
    return result


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else 0.0
