"""The bound engine: interval bound propagation, CROWN and CROWN-IBP on traced PyTorch models.

>>> lower, upper = compute_bounds(model, LinfBall(x, eps=0.1, lower=0, upper=1),
...                               method="crown-ibp", C=margin_matrix(labels, 10))
"""

from robusttext.bounds.engine import METHODS, compute_bounds
from robusttext.bounds.input_sets import RELAXATIONS, Box, InputSet, LinfBall, SubstitutionSet
from robusttext.bounds.specs import margin_matrix
from robusttext.bounds.token_set import TokenSubstitutionSet

__all__ = [
    "METHODS",
    "RELAXATIONS",
    "Box",
    "InputSet",
    "LinfBall",
    "SubstitutionSet",
    "TokenSubstitutionSet",
    "compute_bounds",
    "margin_matrix",
]
