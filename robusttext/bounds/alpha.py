"""alpha-CROWN: CROWN's last backward pass with the activations' lower slopes optimised.

CROWN bounds an unstable ReLU from below by a line through 0 whose slope it picks by a rule of
thumb (1 where ``hi > -lo``, else 0); every slope in ``[0, 1]`` gives a sound bound, and the best
one depends on the specification. alpha-CROWN (Xu et al. 2021, "Fast and Complete") makes those
slopes variables, one per neuron, specification and side, and maximises the bound over them by
projected gradient ascent (Adam), starting from CROWN's choice.

Here the intermediate bounds are CROWN's (computed once, with CROWN's slopes); only the pass
from the output to the input is optimised. Every iterate is projected onto the slopes each rule
declares valid (``Rule.slope_range``) before its bound is taken, so every bound seen is sound;
the result is, per specification, the best of them and of CROWN's own bound, so never looser
than CROWN. With gradients wanted it is recomputed once at the best slopes (held fixed), so it
stays differentiable in the model's parameters.
"""

from __future__ import annotations

import torch

from robusttext.errors import RobustTextError
from robusttext.methods import ALPHA_STEPS as DEFAULT_STEPS

# Bounds taken at optimised slopes: each is one backward pass with gradients, after which the
# slopes take one Adam step (not after the last); the first is at CROWN's slopes.
ALPHA_STEPS = DEFAULT_STEPS  # declared with the method names (robusttext.methods)
ALPHA_LR = 0.5  # Adam's step size on the slopes (the slopes lie in [0, 1])


def check_alpha_settings(steps, lr) -> None:
    """Refuse, by name, settings alpha-CROWN cannot use."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise RobustTextError(f"alpha_steps must be an integer >= 0, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise RobustTextError(f"alpha_lr must be a finite number > 0, got {lr!r}")


def optimised_backward(prop, start, spec, bound_lower: bool, bound_upper: bool,
                       steps: int = ALPHA_STEPS, lr: float = ALPHA_LR):
    """alpha-CROWN bounds ``(lower, upper)``, each ``[batch, specs]`` or None (a side not
    wanted), on ``sum(spec * start)`` for a propagation ``prop`` whose forward pass is done.

    spec: ``[batch, specs, *start_shape]``.
    """
    A_lower = spec if bound_lower else None
    A_upper = spec if bound_upper else None
    ranges = {}
    for node, record in prop.records.items():
        if record.rule is not None:
            found = record.rule.slope_range(record.ctx)
            if found is not None:
                ranges[node] = found
    if steps == 0 or not ranges:
        return prop.backward(start, A_lower, A_upper)
    # CROWN's bound is the starting point and the floor. Without gradients it is the first
    # step's bound (taken at CROWN's slopes: the same arithmetic), so it is not computed apart;
    # with gradients it is computed in the caller's graph, to be returned if nothing beats it.
    crown = prop.backward(start, A_lower, A_upper) if torch.is_grad_enabled() else None
    signs = [sign for sign, A in ((-1, A_lower), (1, A_upper)) if A is not None]
    specs = spec.shape[1]
    slopes = {sign: {node: crown_slope.detach().unsqueeze(1)
                     .expand(-1, specs, *crown_slope.shape[1:]).clone()
                     for node, (crown_slope, _, _) in ranges.items()}
              for sign in signs}
    best = {} if crown is None else {
        sign: crown[side].detach() for side, sign in enumerate((-1, 1)) if sign in signs}
    best_slopes = {sign: {n: s.clone() for n, s in slopes[sign].items()} for sign in signs}
    variables = [s.requires_grad_() for sign in signs for s in slopes[sign].values()]
    optimiser = torch.optim.Adam(variables, lr=lr)
    with torch.enable_grad():  # the slopes are optimised on fixed intermediate bounds
        for step in range(steps):
            bounds = prop.backward(start, A_lower, A_upper, slopes=slopes, fixed=True)
            objective = 0
            for side, sign in enumerate((-1, 1)):
                if sign not in signs:
                    continue
                bound = bounds[side]
                with torch.no_grad():
                    if sign not in best:  # the first step, at CROWN's slopes
                        best[sign] = bound.detach().clone()
                    better = bound > best[sign] if sign < 0 else bound < best[sign]
                    best[sign] = torch.where(better, bound, best[sign])
                    for node, s in slopes[sign].items():
                        keep = better.view(*better.shape, *([1] * (s.dim() - 2)))
                        best_slopes[sign][node] = torch.where(keep, s, best_slopes[sign][node])
                finite = torch.isfinite(bound)
                objective = objective + sign * torch.where(finite, bound, 0).sum()
            if step == steps - 1 or not isinstance(objective, torch.Tensor) or (
                    not objective.requires_grad):
                break
            # the gradient in the slopes alone: nothing reaches the model's parameters or
            # the graph behind the input set, which a later call may still need
            grads = torch.autograd.grad(objective, variables, allow_unused=True)
            for variable, grad in zip(variables, grads):
                variable.grad = grad
            optimiser.step()
            with torch.no_grad():  # project back onto the valid slopes
                for sign in signs:
                    for node, s in slopes[sign].items():
                        _, low, high = ranges[node]
                        s.copy_(torch.minimum(torch.maximum(s, low.unsqueeze(1)),
                                              high.unsqueeze(1)))
    wants_gradient = crown is not None and any(
        isinstance(c, torch.Tensor) and c.requires_grad for c in crown)
    if not wants_gradient:
        return tuple(best[sign] if sign in signs else None for sign in (-1, 1))
    fixed = {sign: {n: s.detach() for n, s in best_slopes[sign].items()} for sign in signs}
    final = prop.backward(start, A_lower, A_upper, slopes=fixed)
    return (torch.maximum(final[0], crown[0]) if bound_lower else None,
            torch.minimum(final[1], crown[1]) if bound_upper else None)
