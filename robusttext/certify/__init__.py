"""Certification of text classifiers: bounds over substitution sets, attacks within the same
set, exhaustive enumeration of small sets, and the soundness invariant tying them together.

>>> from robusttext.certify import certify
>>> result = certify(model, vocab, space, examples, budgets=[1, 2], method="ibp")
>>> certify(model, vocab, space, examples, method=BoundSettings("alpha-crown", alpha_steps=5))
>>> result.summary(1).verified_accuracy
>>> both = certify(model, vocab, space, examples, method=["ibp", "crown-ibp"])  # one attack
>>> both.summary(1).verified_accuracy_by_method, both.examples[0].by_method["crown-ibp"]
>>> result.to_json()            # {"summary": [...], "examples": [...], "settings": {...}}

``model`` follows the text-model contract (``robusttext.text.contract``).
"""

from robusttext.certify.results import BudgetSummary, Certification, ExampleResult
from robusttext.lazy import lazy_exports
from robusttext.methods import BoundSettings

# Imported on first use: they load torch, which the command line's --help does without.
_LAZY = {
    "AttackResult": "robusttext.certify.attack",
    "beam_attack": "robusttext.certify.attack",
    "DEFAULT_ENUMERATE_LIMIT": "robusttext.certify.defaults",
    "certify": "robusttext.certify.certifier",
    "check_budgets": "robusttext.certify.certifier",
    "exhaustive_check": "robusttext.certify.exhaustive",
    "rewrites": "robusttext.certify.exhaustive",
    "set_sizes": "robusttext.certify.exhaustive",
    "margins": "robusttext.certify.margins",
    "predict": "robusttext.certify.margins",
    "SoundnessViolation": "robusttext.certify.soundness",
    "margin_lower_bounds": "robusttext.bounds.specs",
    "batch_problem": "robusttext.text.bounds",
}

lazy_exports(__name__, _LAZY)


__all__ = [
    "DEFAULT_ENUMERATE_LIMIT",
    "AttackResult",
    "BoundSettings",
    "BudgetSummary",
    "Certification",
    "ExampleResult",
    "SoundnessViolation",
    "batch_problem",
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
