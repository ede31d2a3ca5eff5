"""Independent reference computations the tests share: what a bound must contain, found by
sampling (corners included) or by listing every rewrite, never by the code under test."""

from itertools import combinations, product

import torch

from robusttext.bounds import compute_bounds

TOL = 1e-5


def sample_box(lower, upper, n=400, generator=None):
    """``[n, batch, *dims]``: uniform points plus random corners of the box."""
    shape = (n, *lower.shape)
    u = torch.rand(shape, generator=generator, dtype=lower.dtype)
    corners = torch.randint(0, 2, shape, generator=generator).to(lower.dtype)
    u[n // 2 :] = corners[n // 2 :]
    return lower + u * (upper - lower)


def violations(model, box, method, C=None, extra=()):
    lower, upper = compute_bounds(model, box, method, C=C, extra_inputs=extra)
    points = sample_box(box.lower, box.upper, generator=torch.Generator().manual_seed(1))
    n, batch = points.shape[:2]
    with torch.no_grad():
        repeated = [e.repeat(n, *([1] * (e.dim() - 1))) for e in extra]
        outs = model(points.flatten(0, 1), *repeated).view(n, batch, -1)
        if C is not None:
            outs = torch.einsum("bso,nbo->nbs", C, outs.flatten(2))
    below = (outs < lower - TOL).sum().item()
    above = (outs > upper + TOL).sum().item()
    return below + above, lower, upper


def enumerate_rewrites(ids, cand_ids, cand_mask, budget):
    """Every token-id rewrite of one sentence with at most ``budget`` changed positions."""
    positions = [p for p in range(len(ids)) if any(cand_mask[p])]
    yield list(ids)
    for size in range(1, min(budget, len(positions)) + 1):
        for chosen in combinations(positions, size):
            options = [[c for c, m in zip(cand_ids[p], cand_mask[p]) if m] for p in chosen]
            for picks in product(*options):
                rewrite = list(ids)
                for p, c in zip(chosen, picks):
                    rewrite[p] = c
                yield rewrite


def word_rewrites(words, options, budget):
    """Every sentence (words joined by spaces) with at most ``budget`` of the positions that
    have options replaced, each by one of ``options[p]``; the original first."""
    changeable = [p for p, o in enumerate(options) if o]
    texts = []
    for size in range(min(budget, len(changeable)) + 1):
        for positions in combinations(changeable, size):
            for choice in product(*(options[p] for p in positions)):
                rewrite = list(words)
                for p, w in zip(positions, choice, strict=True):
                    rewrite[p] = w
                texts.append(" ".join(rewrite))
    return texts


def rewrite_margins(hf, tokenizer, words, options, budget, label):
    """``[n]``: the margin ``z_label - max other z`` of every rewrite of ``words``
    (``word_rewrites``, the original first), each read by ``tokenizer`` and run through the
    ``transformers`` model ``hf``: enumeration through the model's own tokenizer and forward."""
    rewrites = word_rewrites(words, options, budget)
    batch = tokenizer(rewrites, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = hf(**batch).logits
    others = logits.clone()
    others[:, label] = float("-inf")
    return logits[:, label] - others.amax(1)
