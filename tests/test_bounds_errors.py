"""Bad input to the bound engine gives messages that name the problem."""

import pytest
import torch
import torch.nn as nn

from robusttext import RobustTextError
from robusttext.bounds import Box, LinfBall, compute_bounds, margin_matrix


def test_negative_eps():
    with pytest.raises(RobustTextError, match="eps must be finite and >= 0"):
        LinfBall(torch.zeros(2, 3), -0.1)


def test_lower_above_upper():
    with pytest.raises(RobustTextError, match="lower > upper"):
        Box(torch.ones(2, 3), torch.zeros(2, 3))
    with pytest.raises(RobustTextError, match="lower > upper"):
        LinfBall(torch.zeros(2, 3), 0.1, lower=1.0, upper=0.0)


def test_shape_mismatch():
    with pytest.raises(RobustTextError, match="shape"):
        Box(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(RobustTextError, match="does not broadcast"):
        LinfBall(torch.zeros(2, 3), torch.full((4,), 0.1))
    model = nn.Linear(3, 2)
    with pytest.raises(RobustTextError, match=r"C must have shape \[batch=2, specs, outputs=2\]"):
        compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1), C=torch.zeros(2, 1, 5))
    with pytest.raises(RobustTextError, match="Linear"):
        compute_bounds(model, LinfBall(torch.zeros(2, 4), 0.1))


class UsesLogSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return torch.log_softmax(self.lin(x), dim=-1)


def test_unsupported_operation_names_it_and_the_line():
    with pytest.raises(RobustTextError,
                       match=r"no bound rule for .*log_softmax.*torch.log_softmax"):
        compute_bounds(UsesLogSoftmax(), LinfBall(torch.zeros(1, 3), 0.1))


class Quotient(nn.Module):
    def forward(self, x):
        return x / (x + 2)


def test_division_by_a_bounded_tensor_is_refused():
    with pytest.raises(RobustTextError, match="division by a bounded tensor"):
        compute_bounds(Quotient(), LinfBall(torch.zeros(1, 3), 0.1))


def test_batchnorm_in_training_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(RobustTextError, match="training mode.*model.eval"):
        compute_bounds(model, LinfBall(torch.zeros(2, 3), 0.1))


def test_unknown_method_and_bad_labels():
    with pytest.raises(RobustTextError, match="unknown method 'alpha'"):
        compute_bounds(nn.Linear(3, 2), LinfBall(torch.zeros(1, 3), 0.1), method="alpha")
    with pytest.raises(RobustTextError, match=r"labels must lie in \[0, 2\]"):
        margin_matrix(torch.tensor([0, 3]), 3)


def test_margin_matrix_rows():
    C = margin_matrix(torch.tensor([1, 0]), 3)
    expected = torch.tensor([[[-1.0, 1, 0], [0, 1, -1]], [[1.0, -1, 0], [1, 0, -1]]])
    torch.testing.assert_close(C, expected)


class _Clamp(nn.Module):
    def __init__(self, **limits):
        super().__init__()
        self.limits = limits

    def forward(self, x):
        limits = {k: (x[:, :1] if v == "input" else v) for k, v in self.limits.items()}
        return torch.clamp(x, **limits)


@pytest.mark.parametrize(("limits", "message"), [
    ({"min": torch.zeros(3)},
     r"torch.clamp: min=<tensor \(3,\)>: robusttext bounds only a constant number or None"),
    ({"min": "input"}, "a min that depends on the perturbed input is not supported"),
    ({"min": 1.0, "max": 0.0}, "clamp's min 1.0 is above its max 0.0"),
])
def test_clamp_limits_it_does_not_bound_are_refused_by_name(limits, message):
    with pytest.raises(RobustTextError, match=message):
        compute_bounds(_Clamp(**limits), LinfBall(torch.zeros(2, 3), 0.1))
