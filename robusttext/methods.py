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

A method added to the engine appears in ``TEXT_METHODS`` (certify and its CLIs) by itself.
"""

from __future__ import annotations

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

__all__ = ["ALPHA_STEPS", "AUTO", "BAB_METHOD", "CERTIFY_METHODS", "ENGINE_METHODS",
           "EXACT_METHOD", "POOLED_METHOD", "RELAXATIONS", "TEXT_METHODS", "TEXT_TRAINING_METHODS",
           "TRAINING_METHODS", "VISION_CERTIFY_METHODS", "VISION_TRAINING_METHODS"]
