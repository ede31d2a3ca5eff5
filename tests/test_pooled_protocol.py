"""budget-ibp applies only through a declared protocol, checked on the batch (issue 31, class
3): a body needs to subclass ``PooledBody`` (members of the right names are not enough), and its
forward must be ``head(masked_mean(features(x), mask))`` with features that read only their
declared window. A body that pools by max, or whose windows are wider than it says, used to
get the masked-mean bound, which enumeration shows is wrong; it is refused by name now."""

import pytest
import torch
from torch import nn

import robusttext.bounds.pooling as pooling
from robusttext.bounds import TokenSubstitutionSet, margin_matrix
from robusttext.bounds.oracle import checking
from robusttext.bounds.pooling import PooledBody, is_pooled_body, pooled_margin_lower
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO, POOLED_METHOD
from robusttext.text.bounds import pick_method
from robusttext.text.models import masked_mean
from tests.builders import word_setup
from tests.oracles import enumerate_rewrites

SENTENCES = ["a good film , not dull , a good movie", "good film", "not a dull film"]


class Conv(nn.Module):
    def __init__(self, width=3, pool="mean", window=None):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(8, 6, width, padding=width // 2)
        self.out = nn.Linear(6, 2)
        self.pool = pool
        self.window = window or (width // 2, width - 1 - width // 2)
        self.linear_head = self.out

    def features(self, x):
        return torch.relu(self.conv(x.transpose(1, 2)))

    def head(self, pooled):
        return self.out(pooled)

    def forward(self, x, mask):
        h = self.features(x)
        if self.pool == "max":  # max over the real positions
            return self.head((h - 1e4 * (1 - mask.unsqueeze(1))).amax(2))
        return self.head(masked_mean(h, mask))


class DeclaredConv(Conv, PooledBody):
    pass


class Model(nn.Module):
    def __init__(self, vocab_size, body):
        super().__init__()
        torch.manual_seed(1)
        self.embedding = nn.Embedding(vocab_size, 8, padding_idx=0)
        self.body = body

    def forward(self, ids, mask):
        return self.body(self.embedding(ids), mask)


def _setup(body, budget=1):
    vocab, space = word_setup()
    model = Model(len(vocab), body).eval()
    batch = space.encode(SENTENCES, vocab)
    subs = TokenSubstitutionSet(model.embedding.weight, batch.token_ids, batch.candidate_ids,
                                batch.candidate_mask, budget)
    return model, batch, subs


def _violations(model, batch, lower, labels, budget):
    """Sentences whose enumerated rewrites reach a margin below ``lower``."""
    found = []
    for b in range(len(SENTENCES)):
        n = int(batch.mask[b].sum())
        ids = torch.tensor(list(enumerate_rewrites(
            batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
            batch.candidate_mask[b, :n].tolist(), budget)))
        with torch.no_grad():
            logits = model(ids, torch.ones(ids.shape))
        margin = (logits[:, labels[b]] - logits[:, 1 - labels[b]]).min()
        if lower[b, 0] > margin + 1e-5:
            found.append(b)
    return found


def test_members_alone_do_not_declare_the_protocol():
    assert not is_pooled_body(Conv())
    assert pick_method(AUTO, Conv()) == "crown-ibp"
    assert is_pooled_body(DeclaredConv())
    assert pick_method(AUTO, DeclaredConv()) == POOLED_METHOD
    model, batch, subs = _setup(Conv())
    with pytest.raises(RobustTextError, match="pools per-window features"):
        pooled_margin_lower(model.body, subs, margin_matrix(torch.tensor([0, 1, 0]), 2),
                            batch.mask)


@pytest.mark.parametrize("body, refusal", [
    (lambda: DeclaredConv(pool="max"), "not head\\(masked_mean"),
    (lambda: DeclaredConv(width=7, window=(0, 0)), "reads position"),
])
def test_a_body_that_is_not_what_it_declares_was_unsound_and_is_refused(body, refusal,
                                                                        monkeypatch):
    model, batch, subs = _setup(body())
    unsound = False
    for labels in (torch.tensor([0, 1, 0]), torch.tensor([1, 0, 1])):
        C = margin_matrix(labels, 2)
        with pytest.raises(RobustTextError, match=refusal):
            pooled_margin_lower(model.body, subs, C, batch.mask)
        with monkeypatch.context() as patch:  # the bound as it was, without the checks
            patch.setattr(pooling, "check_decomposition", lambda *args: None)
            with torch.no_grad(), checking(False):  # (the containment oracle catches it too)
                lower = pooled_margin_lower(model.body, subs, C, batch.mask)
        unsound |= bool(_violations(model, batch, lower, labels, 1))
    assert unsound, "enumeration should reach below the masked-mean bound of this body"


def test_a_declared_body_that_is_what_it_declares_is_bounded_soundly():
    model, batch, subs = _setup(DeclaredConv(width=5))
    for labels in (torch.tensor([0, 1, 0]), torch.tensor([1, 0, 1])):
        with torch.no_grad():
            lower = pooled_margin_lower(model.body, subs, margin_matrix(labels, 2), batch.mask)
        assert not _violations(model, batch, lower, labels, 1)
