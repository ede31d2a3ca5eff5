"""Certified training, evaluation, checkpoints and `robusttext vision`, on tiny files."""

from __future__ import annotations

import json

import pytest
import torch

from robusttext.checkpoint import save_checkpoint
from robusttext.cli import main
from robusttext.errors import RobustTextError
from robusttext.train.certified import worst_case_loss
from robusttext.vision.data import load_images
from robusttext.vision.evaluate import evaluate
from robusttext.vision.io import load_model
from robusttext.vision.models import build_model
from robusttext.vision.pgd import margin_loss, pgd_attack
from robusttext.vision.train import TrainConfig, train
from robusttext.vision.verify import check_eps, image_margin_bound
from tests.builders import write_cifar_folder, write_idx_folder


@pytest.fixture(scope="module")
def idx_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx")
    write_idx_folder(folder)
    return folder


def _config(folder, out, **changes) -> TrainConfig:
    values = dict(
        data=str(folder),
        model="dm-small",
        method="natural",
        eps_train=0.05,
        eps_eval=0.02,
        epochs=2,
        warmup_epochs=0.3,
        ramp_epochs=1,
        batch_size=16,
        eval_batch_size=24,
        pgd_steps=3,
        eval_methods=[],
        epoch_eval_methods=[],
        device="cpu",
        out=str(out),
    )
    values.update(changes)
    return TrainConfig(**values)


def _margins(model, x, y):
    """Exact margins ``z_y - z_j`` for ``j != y``, ``[batch, 9]``."""
    z = model(x)
    keep = torch.ones_like(z, dtype=torch.bool).scatter(1, y[:, None], False)
    return (z.gather(1, y[:, None]) - z)[keep].view(z.shape[0], -1)


@pytest.mark.parametrize("method,size", [("ibp", 28), ("crown-ibp", 28), ("crown", 12)])
def test_margin_bounds_below_sampled_and_attacked_margins(method, size):
    torch.manual_seed(1)
    model = build_model("dm-small", 1, size, mean=[0.3], std=[0.4]).eval()
    x, y, eps = torch.rand(3, 1, size, size), torch.tensor([0, 4, 9]), 0.02
    lower = image_margin_bound(model, x, y, eps)(method)
    assert lower.shape == (3, 9)
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    with torch.no_grad():
        for _ in range(30):
            sample = lo + (hi - lo) * torch.rand_like(x)
            assert (lower <= _margins(model, sample, y) + 1e-4).all()
            corner = torch.where(torch.rand_like(x) < 0.5, lo, hi)
            assert (lower <= _margins(model, corner, y) + 1e-4).all()
    adv, _ = pgd_attack(model, x, y, eps, steps=10)
    with torch.no_grad():
        assert (lower.min(1).values <= -margin_loss(model(adv), y) + 1e-4).all()


def test_robust_cross_entropy_by_hand():
    lower = torch.tensor([[1.0, 2.0], [-1.0, 0.0]])
    expected = torch.log(1 + torch.exp(-lower).sum(1)).mean()
    torch.testing.assert_close(worst_case_loss(lower), expected)


def test_eps_outside_unit_interval():
    for bad in (-0.1, 1.5, "x", float("nan")):
        with pytest.raises(RobustTextError, match="eps"):
            check_eps(bad)
    with pytest.raises(RobustTextError, match="eps.train"):
        TrainConfig(eps_train=2.0).validate()


def test_resume_gives_the_same_weights(idx_folder, tmp_path):
    straight = _config(idx_folder, tmp_path / "a")
    train(straight, progress=False, log=lambda *_: None)
    first = _config(idx_folder, tmp_path / "b", epochs=1)
    train(first, progress=False, log=lambda *_: None)
    resumed = _config(idx_folder, tmp_path / "b")
    train(resumed, resume=True, progress=False, log=lambda *_: None)
    a, _, meta_a = load_model(tmp_path / "a")
    b, _, meta_b = load_model(tmp_path / "b")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    assert meta_b["training"]["epochs_done"] == 2 and len(meta_b["training"]["history"]) == 2


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_certified_training_and_metric_order(idx_folder, tmp_path, method):
    config = _config(
        idx_folder,
        tmp_path,
        method=method,
        eval_methods=["ibp", "crown-ibp"],
        epoch_eval_methods=["ibp"],
    )
    metrics = train(config, progress=False, log=lambda *_: None)
    history = load_model(tmp_path)[2]["training"]["history"]
    assert history[0]["kappa"] < 1.0 and history[-1]["kappa"] == 0.5
    if method == "crown-ibp":
        assert history[-1]["beta"] == 0.0
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
    assert metrics["soundness_violations"] == 0
    for key in ("ibp_verified_accuracy", "crown_ibp_verified_accuracy"):
        assert metrics[key] <= metrics["pgd_accuracy"] <= metrics["clean_accuracy"]


def test_evaluate_per_example_implications(idx_folder):
    torch.manual_seed(0)
    model = build_model("dm-small", 1, 28)
    data = load_images(idx_folder, "test")
    # A model that is right on half the examples: shift the logit of the true label.
    with torch.no_grad():
        model[-1].weight.mul_(0.01)
    result = evaluate(model, data, 0.001, pgd_steps=5, methods=("ibp", "crown-ibp"), progress=False)
    assert not (result.pgd_robust & ~result.correct).any()
    for mask in result.verified.values():
        assert not (mask & ~result.pgd_robust).any()
    # Skipping PGD on certified examples changes nothing when the bounds are sound.
    partial = evaluate(
        model,
        data,
        0.001,
        pgd_steps=5,
        methods=("ibp", "crown-ibp"),
        progress=False,
        attack_verified_fraction=0.0,
    )
    assert torch.equal(partial.pgd_robust, result.pgd_robust)
    assert partial.pgd_attacked <= result.pgd_attacked == int(result.correct.sum())
    zero = evaluate(model, data, 0.0, pgd_steps=5, methods=("ibp",), progress=False)
    assert torch.equal(zero.pgd_robust, zero.correct)
    assert torch.equal(zero.verified["ibp"], zero.correct)  # eps 0: bounds are exact margins


def test_checkpoint_for_another_architecture(idx_folder, tmp_path):
    train(_config(idx_folder, tmp_path / "small", epochs=1), progress=False, log=lambda *_: None)
    with pytest.raises(RobustTextError, match="holds a 'dm-small' model, expected 'dm-medium'"):
        load_model(tmp_path / "small", expected="dm-medium")
    text_model = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "text", text_model, kind="char-cnn", model_config={})
    with pytest.raises(RobustTextError, match="holds a 'char-cnn' model"):
        load_model(tmp_path / "text")
    # Weights of a 1-channel model under a config that claims 3 channels.
    meta_path = tmp_path / "small" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["model_config"].update(in_channels=3, mean=[0, 0, 0], std=[1, 1, 1])
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(RobustTextError, match="weights do not fit"):
        load_model(tmp_path / "small")


def test_cli_train_and_certify(idx_folder, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(
        [
            "vision",
            "train",
            "--data",
            str(idx_folder),
            "--method",
            "ibp",
            "--eps",
            "0.02",
            "--epochs",
            "1",
            "--batch-size",
            "24",
            "--pgd-steps",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert status == 0
    report = tmp_path / "m.json"
    status = main(
        [
            "vision",
            "certify",
            "--checkpoint",
            str(out),
            "--data",
            str(idx_folder),
            "--limit",
            "10",
            "--pgd-steps",
            "2",
            "--json",
            str(report),
            "--quiet",
        ]
    )
    assert status == 0
    metrics = json.loads(report.read_text())
    assert metrics["n"] == 10 and metrics["eps"] == 0.02
    assert metrics["ibp_verified_accuracy"] <= metrics["pgd_accuracy"]
    capsys.readouterr()

    assert (
        main(
            [
                "vision",
                "certify",
                "--checkpoint",
                str(out),
                "--data",
                str(idx_folder),
                "--eps",
                "1.5",
            ]
        )
        == 2
    )
    assert "eps must lie in [0, 1]" in capsys.readouterr().err
    assert (
        main(
            [
                "vision",
                "train",
                "--data",
                str(idx_folder),
                "--eps",
                "-0.1",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "must lie in [0, 1]" in capsys.readouterr().err
    assert (
        main(
            [
                "vision",
                "certify",
                "--checkpoint",
                str(out),
                "--model",
                "dm-large",
                "--data",
                str(idx_folder),
            ]
        )
        == 2
    )
    assert "expected 'dm-large'" in capsys.readouterr().err
    cifar = tmp_path / "cifar"
    write_cifar_folder(cifar, per_batch=2)
    assert main(["vision", "certify", "--checkpoint", str(out), "--data", str(cifar)]) == 2
    assert "takes images of shape [1, 28, 28]" in capsys.readouterr().err
    assert (
        main(["vision", "certify", "--checkpoint", str(out), "--data", str(tmp_path / "missing")])
        == 2
    )
    assert "neither a folder" in capsys.readouterr().err


def test_a_kappa_configuration_trains_the_same_weights_as_its_robust_weight(idx_folder,
                                                                            tmp_path, capsys):
    """vision's robust weight is text's (robust_weight_start -> robust_weight); a file that
    still says kappa (the clean loss's weight, 1 - k) trains the same model bit for bit."""
    common = {k: v for k, v in _config(idx_folder, tmp_path, method="ibp").to_json().items()
              if k not in ("out", "robust_weight_start", "robust_weight")}
    old = TrainConfig.from_dict({**common, "kappa_start": 0.75, "kappa_final": 0.3,
                                 "out": str(tmp_path / "old")})
    assert "(= 1 - kappa_final)" in capsys.readouterr().err
    new = TrainConfig.from_dict({**common, "robust_weight_start": 0.25, "robust_weight": 0.7,
                                 "out": str(tmp_path / "new")})
    train(old, progress=False, log=lambda *_: None)
    train(new, progress=False, log=lambda *_: None)
    a, _, meta_a = load_model(tmp_path / "old")
    b, _, _ = load_model(tmp_path / "new")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert meta_a["training"]["history"][-1]["kappa"] == pytest.approx(0.3)
