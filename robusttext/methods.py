"""The bound methods by name, declared once for the engine and every floor above it.

Torch-free, so that the command line can list them without loading torch.

- ``ENGINE_METHODS``: what ``compute_bounds`` runs (``robusttext.bounds.METHODS``).
- ``POOLED_METHOD``: ``budget-ibp``, the budget-aware IBP of ``robusttext.bounds.pooling`` for
  bodies that pool per-window features (a bound of its own, not an engine method).
- ``TEXT_METHODS``: every method a text model can be bounded with; ``AUTO`` picks one per
  model (``robusttext.text.bounds.pick_method``).
- ``EXACT_METHOD``: ``exact``, certify's complete verification (``robusttext.certify.exact``:
  branch and bound over the set with the tightest of ``TEXT_METHODS`` inside); certify alone
  offers it (``CERTIFY_METHODS``).
- ``BAB_METHOD``: ``bab``, vision certify's branch and bound over ReLU splits
  (``robusttext.vision.bab``); ``VISION_CERTIFY_METHODS`` are the engine's and it.
- ``TRAINING_METHODS``: the engine methods a certified-training loss differentiates (IBP and
  CROWN-IBP); text training adds ``POOLED_METHOD``, vision training adds natural training.
- ``RELAXATIONS`` of a substitution set and ``ALPHA_STEPS``, alpha-CROWN's default steps.
- ``BoundSettings``: the method choice as one frozen value (method, relaxation, alpha steps,
  the exact search's time limit), built once from the flags (``robusttext certify``) and
  carried unchanged to the engine; ``bound_settings`` reads a method name and the loose
  keywords of the Python API into one.

A method added to the engine appears in ``TEXT_METHODS`` (certify and its CLIs) by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from robusttext.errors import RobustTextError

ENGINE_METHODS = ("ibp", "crown", "crown-ibp", "alpha-crown")
POOLED_METHOD = "budget-ibp"
AUTO = "auto"
TEXT_METHODS = (*ENGINE_METHODS, POOLED_METHOD)
EXACT_METHOD = "exact"
CERTIFY_METHODS = (*TEXT_METHODS, EXACT_METHOD)
BAB_METHOD = "bab"
VISION_CERTIFY_METHODS = (*ENGINE_METHODS, BAB_METHOD)
TRAINING_METHODS = ("ibp", "crown-ibp")
TEXT_TRAINING_METHODS = (*TRAINING_METHODS, POOLED_METHOD)
VISION_TRAINING_METHODS = ("natural", *TRAINING_METHODS)  # natural: clean training alone
# How a substitution set is relaxed (``robusttext.bounds.input_sets.SubstitutionSet``).
RELAXATIONS = ("exact", "box", "simplex")
# alpha-CROWN's default number of optimisation steps (``robusttext.bounds.alpha``).
ALPHA_STEPS = 20

# The exact search's default seconds per sentence and budget (``robusttext.certify.exact``).
EXACT_TIME_LIMIT = 10.0


@dataclass(frozen=True)
class BoundSettings:
    """How margins are bounded: ``method`` (one of ``CERTIFY_METHODS``, or ``AUTO``),
    ``relaxation`` of a substitution set (one of ``RELAXATIONS``), ``alpha_steps``
    (alpha-CROWN's optimisation steps; 0: CROWN's bound) and ``exact_time_limit`` (seconds of
    the exact search per sentence and budget, with ``method="exact"``). Frozen: a step that
    settles a choice (``auto`` resolved per model) makes a new value with ``resolved``. Checked
    where it is used, with the messages of the flags it came from."""

    method: str = AUTO
    relaxation: str = "exact"
    alpha_steps: int = ALPHA_STEPS
    exact_time_limit: float = EXACT_TIME_LIMIT

    def resolved(self, method: str) -> BoundSettings:
        """The same settings with ``method`` (e.g. ``auto`` resolved for a model)."""
        return replace(self, method=method)


def bound_settings(method: str | BoundSettings, **given) -> BoundSettings:
    """One ``BoundSettings`` from a method name and the keywords given (``relaxation``,
    ``alpha_steps``, ``exact_time_limit``; None: the default), or ``method`` itself when it
    is one (then no keyword may be given: the value carries the whole choice)."""
    given = {k: v for k, v in given.items() if v is not None}
    if isinstance(method, BoundSettings):
        if given:
            raise RobustTextError(f"give {', '.join(sorted(given))} inside the BoundSettings, "
                                  "not beside it")
        return method
    return BoundSettings(method, **given)


__all__ = ["ALPHA_STEPS", "AUTO", "BAB_METHOD", "BoundSettings", "CERTIFY_METHODS",
           "ENGINE_METHODS", "EXACT_METHOD", "EXACT_TIME_LIMIT",
           "POOLED_METHOD", "RELAXATIONS", "TEXT_METHODS", "TEXT_TRAINING_METHODS",
           "TRAINING_METHODS", "VISION_CERTIFY_METHODS", "VISION_TRAINING_METHODS"]
