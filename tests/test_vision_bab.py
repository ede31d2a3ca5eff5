"""Branch and bound for image models (robusttext.vision.bab, robusttext.vision.split_bounds).

The exact answers come from another computation: on a network of two inputs the lowest margin
over a box lies at a vertex of a linear region, and every such vertex is where two lines cross,
each a box edge or the zero line of a neuron under some activation pattern; running the model on
every crossing inside the box gives the exact minimum."""

from __future__ import annotations

import functools
import itertools
import time

import pytest
import torch
from torch import nn

from robusttext.bounds import compute_bounds
from robusttext.bounds.engine import linear_bounds
from robusttext.bounds.specs import margin_matrix
from robusttext.errors import RobustTextError
from robusttext.vision.bab import COUNTEREXAMPLE, TIMEOUT, VERIFIED, bab_verify, relu_bounds, split
from robusttext.vision.models import build_model
from robusttext.vision.split_bounds import (
    backward_bound,
    cut_bounds,
    optimise_bound,
    read_network,
    root_domains,
)
from robusttext.vision.verify import image_ball


def tiny(seed: int, hidden=(5, 3), classes: int = 3) -> nn.Sequential:
    """A seeded ReLU network of two inputs, weights N(0, 1) and biases N(0, 0.5) (so that the
    boxes below have unstable neurons and decision boundaries)."""
    generator = torch.Generator().manual_seed(seed)
    sizes, layers = (2, *hidden), []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], classes)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * (1 if p.dim() == 2 else 0.5))
    return model


def _pattern_lines(model: nn.Sequential, pattern) -> torch.Tensor:
    """Every hidden neuron's pre-activation ``a . x + c`` as rows ``[a1, a2, c]`` when the
    ReLUs follow ``pattern`` (one 0/1 tensor per ReLU) instead of their inputs' signs."""
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    rows, x, k = [], points, 0
    for module in model:
        if isinstance(module, nn.ReLU):
            rows.append(torch.stack([x[1] - x[0], x[2] - x[0], x[0]], 1))
            x = x * pattern[k]
            k += 1
        else:
            x = module.double()(x)
    model.float()
    return torch.cat(rows)


def _crossings(lines: torch.Tensor) -> torch.Tensor:
    """Where every two of ``lines`` ``[L, 3]`` cross: ``[P, 2]`` (parallel pairs left out)."""
    i, j = torch.triu_indices(len(lines), len(lines), 1)
    matrix = torch.stack([lines[i, :2], lines[j, :2]], 1)
    keep = torch.linalg.det(matrix).abs() > 1e-12
    rhs = -torch.stack([lines[i, 2], lines[j, 2]], 1)[keep]
    return torch.linalg.solve(matrix[keep], rhs.unsqueeze(2)).squeeze(2)


def exact_lowest_margins(model, center, label, eps):
    """The exact lowest ``z_label - z_j`` over the box ``[center - eps, center + eps]`` clipped
    to [0, 1], per class ``j`` (``+inf`` at ``label``)."""
    low, high = (center - eps).clamp(min=0).double(), (center + eps).clamp(max=1).double()
    sizes = [m.out_features for m in model if isinstance(m, nn.Linear)][:-1]
    box = torch.tensor([[1.0, 0.0, -low[0]], [1.0, 0.0, -high[0]], [0.0, 1.0, -low[1]],
                        [0.0, 1.0, -high[1]]], dtype=torch.float64)
    points = []
    with torch.no_grad():
        for bits in itertools.product((0.0, 1.0), repeat=sum(sizes)):
            flat, pattern = torch.tensor(bits, dtype=torch.float64), []
            for size in sizes:
                pattern.append(flat[:size])
                flat = flat[size:]
            points.append(_crossings(torch.cat([box, _pattern_lines(model, pattern)])))
        points = torch.cat(points)
        inside = ((points >= low - 1e-9) & (points <= high + 1e-9)).all(1)
        points = torch.minimum(torch.maximum(points[inside], low), high).float()
        logits = model(points)
    margins = logits[:, label:label + 1] - logits
    margins[:, label] = float("inf")
    return margins.min(0).values


CASES = [(seed, eps) for seed in range(8) for eps in (0.2, 0.4, 0.6)]


@functools.cache
def case(seed: int, eps: float):
    """``(model, centre [2], label, exact lowest margins, bab's outcome)``; PGD off, so that the
    counterexamples are the search's own."""
    model = tiny(seed, hidden=(6, 4))
    center = torch.rand(2, generator=torch.Generator().manual_seed(100 + seed))
    with torch.no_grad():
        label = int(model(center[None]).argmax(1))
    truth = exact_lowest_margins(model, center, label, eps)
    (outcome,) = bab_verify(model, center[None], torch.tensor([label]), eps, time_limit=10,
                            pgd_steps=0)
    return model, center, label, truth, outcome


@pytest.mark.parametrize("seed,eps", CASES)
def test_bab_agrees_with_the_exact_lowest_margin(seed, eps):
    model, center, label, truth, outcome = case(seed, eps)
    if outcome.status == VERIFIED:
        assert float(truth.min()) > 0
        assert 0 < outcome.margin <= float(truth.min()) + 1e-5  # a lower bound, proven
    else:
        assert not outcome.margin > 0
    if outcome.status == COUNTEREXAMPLE:
        point = outcome.counterexample
        assert float((point - center).abs().max()) <= eps + 1e-6
        assert 0 <= float(point.min()) and float(point.max()) <= 1
        with torch.no_grad():
            assert int(model(point[None]).argmax(1)) != label
        assert float(truth.min()) < 0


def test_the_cases_exercise_the_search():
    outcomes = [case(seed, eps)[4] for seed, eps in CASES]
    assert {VERIFIED, COUNTEREXAMPLE} <= {o.status for o in outcomes}
    assert any(o.status == VERIFIED and o.domains > 2 for o in outcomes)  # split, then proven
    # complete-ish: the intermediate bounds stay those of the whole box, so a margin within a
    # few hundredths of 0 can outlast the limit; most cases are decided
    assert sum(o.status != TIMEOUT for o in outcomes) >= 0.8 * len(outcomes)


def test_bab_verifies_what_ibp_verifies(tmp_path):
    from robusttext.vision.cli import resolve_checkpoint
    from robusttext.vision.io import load_model
    from robusttext.vision.verify import verified

    model, _, _ = load_model(resolve_checkpoint("fmnist-dm-small"))
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        labels = model(images).argmax(1)
        ibp = verified(model, images, labels, 0.01, "ibp")
    outcomes = bab_verify(model, images, labels, 0.01, time_limit=5)
    assert ibp.any()
    for i in ibp.nonzero().squeeze(1).tolist():
        assert outcomes[i].status == VERIFIED and outcomes[i].domains == 1


def _cli_json(tmp_path, *extra):
    import json

    from robusttext.cli import main
    from tests.builders import write_idx_folder

    write_idx_folder(tmp_path / "idx", n_train=2, n_test=3)
    out = tmp_path / "m.json"
    code = main(["vision", "certify", "--model", "fmnist-dm-small", "--data",
                 str(tmp_path / "idx"), "--eps", "0.01", "--quiet", "--json", str(out), *extra])
    return code, (json.loads(out.read_text()) if out.exists() else None)


def test_cli_reports_bab_beside_the_other_methods(tmp_path):
    code, metrics = _cli_json(tmp_path, "--method", "ibp,bab", "--bab-time-limit", "3",
                              "--html", str(tmp_path / "page.html"))
    assert "bab" in (tmp_path / "page.html").read_text()
    for example in metrics["examples"]:
        margin = example["margin_lower"]["bab"]
        assert example["verified"]["bab"] == (margin is not None and margin > 0)
    assert code == 0 and metrics["n"] == 3
    assert metrics["bab_time_limit"] == 3
    decided = round(metrics["bab_verified_accuracy"] * 3) + metrics["bab_counterexamples"]
    assert decided + metrics["bab_timeouts"] == 3
    assert metrics["bab_verified_accuracy"] >= metrics["ibp_verified_accuracy"]
    assert metrics["bab_verified_accuracy"] <= metrics["pgd_accuracy"]


@pytest.mark.parametrize("extra,message", [
    (["--method", "ibp", "--bab-time-limit", "3"], "--bab-time-limit 3 goes with --method bab"),
    (["--method", "bab", "--bab-time-limit", "0"], "--bab-time-limit must be above 0 seconds"),
    (["--method", "ibp,babb"], "unknown method 'babb'"),
])
def test_cli_refuses_bad_bab_flags(tmp_path, capsys, extra, message):
    code, _ = _cli_json(tmp_path, *extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def _setting(model, center, eps, label):
    network = read_network(model, (2,))
    ball = image_ball(center[None], eps)
    lowers, uppers = relu_bounds(network, ball)
    x_lower, x_upper = ball.interval()
    spec = margin_matrix(torch.tensor([label]), 3)
    return network, x_lower, x_upper, lowers, uppers, spec


def _pattern_of(model, points):
    """The sign of every hidden pre-activation at ``points`` ``[P, 2]``: per ReLU ``[P, n]``."""
    signs, x = [], points
    for module in model:
        if isinstance(module, nn.ReLU):
            signs.append(x)
        x = module(x)
    return signs


def test_split_children_cover_the_parent_and_their_bounds_hold_on_them():
    model, eps = tiny(3, hidden=(6, 4)), 0.3
    center = torch.tensor([0.5, 0.5])
    network, x_lower, x_upper, lowers, uppers, spec = _setting(model, center, eps, 0)
    domains = root_domains(network, lowers, uppers, 1)
    spec = spec[:, :1]
    from robusttext.vision.bab import Search

    search = Search(network, x_lower, x_upper, lowers, uppers, 0, time.monotonic() + 60, 4, 5,
                    1000)
    points = x_lower + (x_upper - x_lower) * torch.rand(20000, 2,
                                                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pre = _pattern_of(model, points)
        margins = (model(points) @ spec[0, 0])
    for _ in range(4):  # four generations of splits
        with torch.no_grad():
            optimise_bound(network, x_lower, x_upper, lowers, uppers,
                           spec.expand(len(domains), -1, -1), domains, 5)
        children = split(search, domains)

        def inside(d, signs):
            ok = torch.ones(points.shape[0], dtype=torch.bool)
            for z, s in zip(pre, signs):
                s = s[d].float()
                ok &= ((s > 0) & (z < 0)).sum(1) == 0
                ok &= ((s < 0) & (z > 0)).sum(1) == 0
            return ok

        for d in range(len(domains)):
            covered = torch.zeros(points.shape[0], dtype=torch.bool)
            for c in range(len(children)):
                covered |= inside(c, children.signs)
            assert bool(covered[inside(d, domains.signs)].all())
        with torch.no_grad():
            bound, _ = optimise_bound(network, x_lower, x_upper, lowers, uppers,
                                      spec.expand(len(children), -1, -1), children, 10)
        for c in range(len(children)):
            chosen = inside(c, children.signs)
            if chosen.any():
                assert float(bound[c, 0]) <= float(margins[chosen].min()) + 1e-5
        domains = children
    assert len(domains) > 4  # the splits happened


def test_cut_bounds_follow_the_signs():
    lo, hi = torch.tensor([[-1.0, -2.0, 0.5]]), torch.tensor([[2.0, 1.0, 3.0]])
    signs = [torch.tensor([[1, -1, 0]], dtype=torch.int8)]
    (cut_l,), (cut_u,) = cut_bounds([lo], [hi], signs)
    assert cut_l.tolist() == [[0.0, -2.0, 0.5]]
    assert cut_u.tolist() == [[2.0, 0.0, 3.0]]


def test_bounds_without_splits_are_the_engines_crown():
    torch.manual_seed(0)
    model = build_model("dm-small", 1, 16, mean=[0.3], std=[0.4]).eval()
    images = torch.rand(2, 1, 16, 16)
    labels = torch.tensor([3, 7])
    ball = image_ball(images, 0.02)
    network = read_network(model, (1, 16, 16))
    lowers, uppers = relu_bounds(network, ball)
    prefix = nn.Sequential(*list(model)[:4])  # normalise, conv, ReLU, conv
    engine = compute_bounds(prefix, ball, "crown")
    ibp = compute_bounds(prefix, ball, "ibp")
    # the neurons IBP leaves unstable are CROWN's; the others keep IBP's bounds (stable either
    # way, so their relaxation is the same)
    unstable = (ibp[0] < 0) & (ibp[1] > 0)
    assert unstable.any()
    assert torch.allclose(lowers[1][unstable], engine[0][unstable], atol=1e-4)
    assert torch.allclose(uppers[1][unstable], engine[1][unstable], atol=1e-4)
    assert bool((lowers[1] <= engine[0] + 1e-5).all() and (uppers[1] >= engine[1] - 1e-5).all())
    assert bool(((lowers[1] >= 0) == (engine[0] >= 0)).all())
    C = margin_matrix(labels, 10)
    reference = linear_bounds(model, ball, "crown", C=C)[0]
    x_lower, x_upper = ball.interval()
    for b in range(2):
        domains = root_domains(network, [t[b:b + 1] for t in lowers],
                               [t[b:b + 1] for t in uppers], 9)
        mine, _ = backward_bound(network, x_lower[b:b + 1], x_upper[b:b + 1],
                                 [t[b:b + 1] for t in lowers], [t[b:b + 1] for t in uppers],
                                 C[b:b + 1], domains)
        assert torch.allclose(mine[0], reference[b], atol=1e-4)


def test_time_limit_is_honoured():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)).eval()
    center = torch.tensor([[0.5, 0.5]])
    with torch.no_grad():
        label = int(model(center).argmax(1))
    # nearly a tie everywhere: shift the output so the centre sits just above the boundary
    with torch.no_grad():
        margin = model(center)[0, label] - model(center)[0, 1 - label]
        model[-1].bias[label] -= margin - 1e-4
    bab_verify(model, center, torch.tensor([label]), 0.0005, time_limit=0.5, pgd_steps=0)
    started = time.monotonic()  # the second run: the engine's one-off tracing is done
    (outcome,) = bab_verify(model, center, torch.tensor([label]), 0.0005, time_limit=0.5,
                            pgd_steps=0)
    elapsed = time.monotonic() - started
    assert outcome.status in (TIMEOUT, VERIFIED, COUNTEREXAMPLE)
    assert elapsed < 0.5 + 2.0  # checked between rounds: at most one round over
    assert outcome.seconds <= elapsed


def test_time_limit_stops_a_hard_search():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(2, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                          nn.Linear(200, 2)).eval()
    center = torch.tensor([[0.5, 0.5]])
    with torch.no_grad():
        logits = model(center)[0]
        label = int(logits.argmax())
        model[-1].bias[label] -= float(logits[label] - logits[1 - label]) - 1e-6
    bab_verify(model, center, torch.tensor([label]), 0.5, time_limit=0.3, pgd_steps=0)
    started = time.monotonic()
    (outcome,) = bab_verify(model, center, torch.tensor([label]), 0.5, time_limit=0.3,
                            pgd_steps=0, round_size=4)
    assert time.monotonic() - started < 0.3 + 2.0
    assert outcome.status in (TIMEOUT, COUNTEREXAMPLE)


def test_refusals_are_one_line_errors():
    with pytest.raises(RobustTextError, match="bab does not bound Tanh"):
        read_network(nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2)), (2,))
    with pytest.raises(RobustTextError, match="time limit must be above 0"):
        bab_verify(tiny(0), torch.rand(1, 2), torch.tensor([0]), 0.1, time_limit=0)


@pytest.mark.parametrize("name,size,eps", [("dm-medium", 16, 0.01), ("dm-large", 4, 0.02)])
def test_dm_networks_bounds_and_answers(name, size, eps):
    torch.manual_seed(5)
    model = build_model(name, 1, size, mean=[0.3], std=[0.4]).eval()
    images = torch.rand(3, 1, size, size)
    with torch.no_grad():
        labels = model(images).argmax(1)
    ball = image_ball(images, eps)
    network = read_network(model, (1, size, size))
    lowers, uppers = relu_bounds(network, ball)
    C = margin_matrix(labels, 10)
    with torch.no_grad():
        reference = linear_bounds(model, ball, "crown", C=C)[0]
    x_lower, x_upper = ball.interval()
    for b in range(3):
        one = [t[b:b + 1] for t in lowers], [t[b:b + 1] for t in uppers]
        domains = root_domains(network, *one, 9)
        mine, _ = backward_bound(network, x_lower[b:b + 1], x_upper[b:b + 1], *one, C[b:b + 1],
                                 domains)
        scale = 1 + float(reference[b].abs().max())
        assert torch.allclose(mine[0], reference[b], atol=1e-3 * scale)
    outcomes = bab_verify(model, images, labels, eps, time_limit=2)
    generator = torch.Generator().manual_seed(0)
    for b, outcome in enumerate(outcomes):
        if outcome.status == VERIFIED:
            noise = torch.rand(500, 1, size, size, generator=generator)
            points = x_lower[b] + (x_upper[b] - x_lower[b]) * noise
            with torch.no_grad():
                assert bool((model(points).argmax(1) == labels[b]).all())
        elif outcome.status == COUNTEREXAMPLE:
            point = outcome.counterexample
            assert bool(((point >= x_lower[b] - 1e-6) & (point <= x_upper[b] + 1e-6)).all())
            with torch.no_grad():
                assert int(model(point[None]).argmax(1)) != int(labels[b])


def test_a_nan_bound_proves_nothing(monkeypatch):
    import robusttext.vision.bab as bab

    real = bab.optimise_bound

    def nan_bounds(*args, **kwargs):
        bound, lowest = real(*args, **kwargs)
        return torch.full_like(bound, float("nan")), lowest

    monkeypatch.setattr(bab, "optimise_bound", nan_bounds)
    monkeypatch.setattr(bab, "_interval_bound", lambda *a: torch.tensor(float("nan")))
    model = tiny(2)  # verified at the root with real bounds (case (2, 0.2) above)
    center = torch.rand(2, generator=torch.Generator().manual_seed(102))
    label = int(model(center[None]).argmax(1))
    (outcome,) = bab_verify(model, center[None], torch.tensor([label]), 0.05, time_limit=0.5,
                            pgd_steps=0)
    assert outcome.status == TIMEOUT


def test_a_domain_whose_coefficients_are_zero_is_still_split():
    from robusttext.vision.bab import Search

    model, eps = tiny(3, hidden=(6, 4)), 0.3
    network, x_lower, x_upper, lowers, uppers, _ = _setting(model, torch.tensor([0.5, 0.5]),
                                                            eps, 0)
    unstable = sum(int(((lo < 0) & (hi > 0)).sum()) for lo, hi in zip(lowers, uppers))
    assert unstable > 0
    domains = root_domains(network, lowers, uppers, 1)  # coefficients: zeros until bounded
    search = Search(network, x_lower, x_upper, lowers, uppers, 0, time.monotonic() + 60, 4, 5,
                    1000)
    children = split(search, domains)
    assert len(children) == 2
    flat = torch.cat([s.flatten(1) for s in children.signs], 1).long()  # [2, neurons]
    assert int((flat[0] != 0).sum()) == 1 and int(flat[0].sum()) == 1
    assert torch.equal(flat[1], -flat[0])
