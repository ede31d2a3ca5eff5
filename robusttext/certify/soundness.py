"""The soundness invariant, checked on every run.

A certificate is a proof, so it must agree with everything the model is seen to do:
- certified implies the search found no misclassified rewrite,
- certified implies no enumerated rewrite is misclassified,
- the margin lower bound is at most every margin the model actually reaches on the set (the
  lowest one the search saw, and the lowest of the enumeration), up to float rounding.
A failure is a bug in the bound engine or in the model's tracing, never bad input: it raises
``SoundnessViolation`` naming the sentence.
"""

from __future__ import annotations

ATOL = 1e-4
RTOL = 1e-4


class SoundnessViolation(RuntimeError):
    """A certificate contradicted by a rewrite the model actually misclassifies."""


def check_example(
    *, text: str, origin: str, budget: int | None, certified: bool, margin_lower: float,
    attacked: bool, attack_margin: float, witness: str | None, exhaustive: bool | None,
    exhaustive_margin: float,
) -> None:
    """Raise SoundnessViolation if one sentence's results contradict each other."""
    where = f"{origin}: " if origin else ""
    name = f"{where}sentence {text!r} at budget {budget}"
    if certified and attacked:
        raise SoundnessViolation(
            f"{name} is certified (margin >= {margin_lower:.6g}) but the attack found a "
            f"misclassified rewrite: {witness!r}")
    if certified and exhaustive is False:
        raise SoundnessViolation(
            f"{name} is certified (margin >= {margin_lower:.6g}) but enumerating its set found a "
            "misclassified rewrite")
    for what, reached in (("the attack", attack_margin), ("enumeration", exhaustive_margin)):
        if margin_lower > reached + ATOL + RTOL * abs(reached):
            raise SoundnessViolation(
                f"{name}: the margin lower bound {margin_lower:.6g} exceeds the margin "
                f"{reached:.6g} that {what} reached on a rewrite in the set")


def check_exact(*, text: str, origin: str, budget: int | None, exact: str, certified: bool,
                attacked: bool, exhaustive: bool | None) -> None:
    """Raise SoundnessViolation if the complete search's answer (``certified``,
    ``counterexample`` or ``timeout``) contradicts the bound, the attack or the enumeration."""
    where = f"{origin}: " if origin else ""
    name = f"{where}sentence {text!r} at budget {budget}"
    if exact == "certified" and (attacked or exhaustive is False):
        found = "the attack" if attacked else "enumeration"
        raise SoundnessViolation(f"{name}: the exact search certified it but {found} found a "
                                 "misclassified rewrite")
    if exact == "counterexample" and (certified or exhaustive is True):
        proof = "the bound certified it" if certified else "enumeration found none"
        raise SoundnessViolation(f"{name}: the exact search found a misclassified rewrite but "
                                 f"{proof}")
