"""Certification of text classifiers: bounds over substitution sets, attacks within the same
set, exhaustive enumeration of small sets, and the soundness invariant tying them together.

>>> from robusttext.certify import certify
>>> result = certify(model, vocab, space, examples, budgets=[1, 2], method="ibp")
>>> result.summary(1).verified_accuracy
>>> result.to_json()            # {"summary": [...], "examples": [...], "settings": {...}}

``model`` follows the text-model contract (``robusttext.text.contract``).
"""

from robusttext.certify.attack import AttackResult, beam_attack
from robusttext.certify.certifier import DEFAULT_ENUMERATE_LIMIT, certify, check_budgets
from robusttext.certify.exhaustive import exhaustive_check, rewrites, set_sizes
from robusttext.certify.margins import margins, predict
from robusttext.certify.results import BudgetSummary, Certification, ExampleResult
from robusttext.certify.soundness import SoundnessViolation
from robusttext.text.bounds import margin_lower_bounds

__all__ = [
    "DEFAULT_ENUMERATE_LIMIT",
    "AttackResult",
    "BudgetSummary",
    "Certification",
    "ExampleResult",
    "SoundnessViolation",
    "beam_attack",
    "certify",
    "check_budgets",
    "exhaustive_check",
    "margin_lower_bounds",
    "margins",
    "predict",
    "rewrites",
    "set_sizes",
]
