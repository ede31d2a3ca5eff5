"""The planes of an elementwise product ``x * y`` (``products.mccormick``) and what their choice
does to a recurrent model's backward bound."""

import itertools

import torch

from robusttext.bounds import SubstitutionSet, compute_bounds, margin_matrix
from robusttext.bounds.engine import linear_bounds
from robusttext.bounds.rules.products import mccormick
from robusttext.text import BiLSTM

# operand intervals of every sign pattern: below 0, across 0, above 0, a point, touching 0
INTERVALS = [(-3.0, -0.5), (-2.0, 1.5), (-0.2, 4.0), (0.5, 2.0), (1.25, 1.25), (0.0, 3.0),
             (-1.0, 0.0)]


def _boxes():
    pairs = list(itertools.product(INTERVALS, INTERVALS))
    lx, ux = (torch.tensor([p[0][k] for p in pairs], dtype=torch.float64) for k in (0, 1))
    ly, uy = (torch.tensor([p[1][k] for p in pairs], dtype=torch.float64) for k in (0, 1))
    return lx, ux, ly, uy


def test_planes_hold_on_the_corners_and_inside_every_box():
    lx, ux, ly, uy = _boxes()
    (la, lb, lc), (ua, ub, uc) = mccormick(lx, ux, ly, uy)
    generator = torch.Generator().manual_seed(0)
    t = torch.rand(500, lx.numel(), generator=generator, dtype=torch.float64)
    s = torch.rand(500, lx.numel(), generator=generator, dtype=torch.float64)
    t[:4], s[:4] = torch.tensor([0.0, 0, 1, 1])[:, None], torch.tensor([0.0, 1, 0, 1])[:, None]
    x, y = lx + t * (ux - lx), ly + s * (uy - ly)
    z = x * y
    assert (la * x + lb * y + lc <= z + 1e-12).all()
    assert (ua * x + ub * y + uc >= z - 1e-12).all()


def test_each_plane_touches_the_product_on_a_corner_and_the_pair_shares_the_end_nearest_zero():
    lx, ux, ly, uy = _boxes()
    (la, lb, lc), (ua, ub, uc) = mccormick(lx, ux, ly, uy)
    corners = [(lx, ly), (lx, uy), (ux, ly), (ux, uy)]
    for a, b, c in ((la, lb, lc), (ua, ub, uc)):
        gaps = torch.stack([(a * x + b * y + c - x * y).abs() for x, y in corners])
        assert (gaps.amin(0) < 1e-12).all()
    # the coefficient the two planes share is the operand end of least magnitude
    nearest = torch.stack([lx.abs(), ux.abs(), ly.abs(), uy.abs()]).amin(0)
    shared_y = (lb == ub) & (torch.minimum(lb.abs(), ub.abs()) == nearest)
    shared_x = (la == ua) & (torch.minimum(la.abs(), ua.abs()) == nearest)
    assert (shared_y | shared_x).all()


def _gate_set(length=16, batch=32, candidates=8):
    torch.manual_seed(0)
    model = BiLSTM(500, embed_dim=64, hidden=64, max_length=length).eval()
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 500, (batch, length), generator=generator)
    cand = torch.randint(1, 500, (batch, length, candidates), generator=generator)
    cand_mask = torch.rand(batch, length, candidates, generator=generator) < 0.25
    with torch.no_grad():
        e = model.embedding(ids)
        moved = e[:, :, None] + 0.05 * (model.embedding(cand) - e[:, :, None])
    labels = torch.randint(0, 2, (batch,), generator=generator)
    return model.body, SubstitutionSet(e, moved, cand_mask, 3), torch.ones(batch, length), \
        margin_matrix(labels, 2)


def test_the_lstm_backward_bound_beats_its_interval_bound():
    """Through many time steps of ``f * c + i * g`` the backward bound, on its own (not the
    tighter-of-two that ``compute_bounds`` returns), is tighter than the interval bound on most
    sentences and on average (with the planes chosen by the box centre, looser on average)."""
    body, subs, mask, C = _gate_set()
    ibp = compute_bounds(body, subs, "ibp", C=C, extra_inputs=(mask,), bound_upper=False)[0]
    backward = linear_bounds(body, subs, "crown-ibp", C=C, extra_inputs=(mask,))[0]
    assert backward.mean() > ibp.mean()
    assert (backward > ibp).float().mean() > 0.75
