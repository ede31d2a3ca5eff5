"""The certified loss, task-neutral: the CROWN-IBP/IBP mix of margin lower bounds and the
cross-entropy of the worst case they prove. Text (``robusttext.train.loss``) and vision
(``robusttext.vision.train``) both build their losses from these two functions.

The worst case: cross-entropy on the logits ``[0, -m_1, ..., -m_{c-1}]`` (true class first),
for lower bounds ``m_j`` on the margins ``z_y - z_j``, bounds the cross-entropy of every point
of the input set from above (Wong & Kolter 2018; Gowal et al. 2018). The mix
``beta * CROWN-IBP + (1 - beta) * IBP`` is the schedule of Zhang et al. 2020.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from robusttext.methods import POOLED_METHOD


def mixed_lower_bounds(bound: Callable[[str], torch.Tensor], method: str,
                       beta: float) -> torch.Tensor:
    """Margin lower bounds ``[batch, classes - 1]`` as a training loss takes them.

    ``bound(name)`` returns the margin lower bounds of the batch by the engine method ``name``.
    ``method="crown-ibp"`` gives ``beta * bound("crown-ibp") + (1 - beta) * bound("ibp")``
    (``beta`` 1: CROWN-IBP alone, 0 or less: IBP alone); ``"ibp"`` and ``"budget-ibp"`` are
    bounded by themselves.
    """
    if method == POOLED_METHOD:
        return bound(method)
    if method == "ibp" or beta <= 0.0:
        return bound("ibp")
    if beta >= 1.0:
        return bound("crown-ibp")
    return beta * bound("crown-ibp") + (1.0 - beta) * bound("ibp")


def worst_case_loss(margin_lower: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy on the worst-case logits ``[0, -margin_lower]`` (true class 0);
    ``margin_lower`` ``[batch, classes - 1]``."""
    logits = torch.cat([torch.zeros_like(margin_lower[:, :1]), -margin_lower], dim=1)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)
