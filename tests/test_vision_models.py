"""DM models, schedules and PGD; expectations computed by hand or analytically."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robusttext.errors import RobustTextError
from robusttext.train.schedule import Schedule
from robusttext.vision.models import MODEL_REGISTRY, Normalize, build_model
from robusttext.vision.pgd import pgd_attack


def test_dm_small_parameter_count_by_hand():
    # conv 1->16 4x4: 272; conv 16->32 4x4: 8224; 28 -> 13 -> 10, fc 3200->100: 320100; 100->10.
    model = build_model("dm-small", 1, 28)
    assert sum(p.numel() for p in model.parameters()) == 272 + 8224 + 320100 + 1010


@pytest.mark.parametrize("name", ["dm-small", "dm-medium", "dm-large"])
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)])
def test_shapes_and_allowed_modules(name, shape):
    channels, size = shape
    model = MODEL_REGISTRY[name](channels, size)
    assert model(torch.rand(2, channels, size, size)).shape == (2, 10)
    allowed = (nn.Sequential, Normalize, nn.Conv2d, nn.Linear, nn.ReLU, nn.Flatten)
    assert all(isinstance(m, allowed) for m in model.modules())
    torch.fx.symbolic_trace(model)  # the bound engine traces with torch.fx


def test_normalize_is_affine_per_channel():
    norm = Normalize([0.5, 0.25], [0.5, 2.0])
    x = torch.rand(3, 2, 4, 4)
    expected = torch.stack([(x[:, 0] - 0.5) / 0.5, (x[:, 1] - 0.25) / 2.0], dim=1)
    torch.testing.assert_close(norm(x), expected)
    assert {name for name, _ in norm.named_buffers()} == {"mean", "std"}


def test_build_model_errors():
    with pytest.raises(RobustTextError, match="unknown vision model"):
        build_model("resnet", 1, 28)
    with pytest.raises(RobustTextError, match="channels"):
        build_model("dm-small", 3, 32, mean=[0.5], std=[0.2])
    with pytest.raises(RobustTextError, match="std must be positive"):
        build_model("dm-small", 1, 28, mean=[0.5], std=[0.0])


def test_linear_schedule_values():
    # as the vision trainer builds it: kappa (the clean loss's weight) is 1 - robust
    s = Schedule(warmup_steps=10, ramp_steps=20, eps_target=0.4, robust_start=0.0,
                 robust_final=0.5)
    assert s.eps(0) == s.eps(9) == 0.0
    assert s.eps(20) == pytest.approx(0.2) and s.eps(30) == s.eps(999) == 0.4
    assert 1 - s.robust(0) == 1.0 and 1 - s.robust(20) == pytest.approx(0.75)
    assert 1 - s.robust(40) == 0.5
    assert s.beta(0) == 1.0 and s.beta(20) == pytest.approx(0.5) and s.beta(40) == 0.0


def test_smoothed_schedule_is_monotone_and_continuous():
    s = Schedule(warmup_steps=5, ramp_steps=100, eps_target=1.0, kind="smoothed")
    values = [s.eps(t) for t in range(0, 120)]
    assert values[:6] == [0.0] * 6 and values[105] == 1.0
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert max(b - a for a, b in zip(values, values[1:])) < 0.02  # no jump where pieces meet
    with pytest.raises(RobustTextError):
        Schedule(0, 1, eps_target=1.0, kind="cosine")


def _two_class_linear(weight_row: torch.Tensor) -> nn.Module:
    """Logits: class 0 gets ``w . x``, class 1 gets 0, the other 8 classes -100."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight_row.numel(), 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0] = weight_row
        model[1].bias.fill_(-100.0)
        model[1].bias[:2] = 0.0
    return model


def test_pgd_matches_the_exact_worst_case_of_a_linear_model():
    # For z0 - z1 = w . x over the box [x - eps, x + eps] inside [0, 1], the minimum is
    # w . x - eps * |w|_1 exactly; PGD must flip exactly when that is clearly negative.
    torch.manual_seed(0)
    w = torch.randn(16)
    model = _two_class_linear(w)
    x = 0.25 + 0.5 * torch.rand(64, 1, 4, 4)
    margin = x.flatten(1) @ w
    keep = margin > 0.05
    x, margin = x[keep], margin[keep]
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    eps = 0.2
    exact_min = margin - eps * w.abs().sum()
    clear = exact_min.abs() > 0.05
    adv, flipped = pgd_attack(model, x, labels, eps, steps=40)
    assert (flipped[clear] == (exact_min[clear] < 0)).all()
    assert ((adv - x).abs() <= eps + 1e-6).all() and adv.min() >= 0 and adv.max() <= 1


def test_pgd_with_zero_radius_and_restarts():
    model = build_model("dm-small", 1, 28)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    wrong = model(x).argmax(1) != y
    _, flipped = pgd_attack(model, x, y, 0.0, steps=5)
    assert torch.equal(flipped, wrong)
    _, flipped_r = pgd_attack(model, x, y, 0.05, steps=3, restarts=3)
    assert (flipped_r | ~wrong).all()  # every clean error stays an error


def test_shipped_model_loads_and_is_sound_on_a_few_test_images():
    from pathlib import Path

    from robusttext.shipped import shipped_model_path
    from robusttext.vision.data import load_images
    from robusttext.vision.evaluate import evaluate
    from robusttext.vision.io import load_model

    model, _, meta = load_model(shipped_model_path("fmnist-dm-small"), expected="dm-small")
    assert (
        meta["model_config"]["in_channels"] == 1 and meta["training"]["config"]["eps_eval"] == 0.1
    )
    assert 0 < meta["metrics"]["test_pgd20"]["crown_ibp_verified_accuracy"] < 1
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST (Debian dataset-fashion-mnist) is not installed")
    data = load_images("fashion-mnist", "test").subset(200)
    result = evaluate(model, data, 0.1, pgd_steps=5, methods=("ibp",), progress=False)
    metrics = result.metrics()
    assert metrics["soundness_violations"] == 0
    assert metrics["ibp_verified_accuracy"] <= metrics["pgd_accuracy"] <= metrics["clean_accuracy"]
    assert metrics["ibp_verified_accuracy"] > 0.5  # measured 71% on the whole test set
