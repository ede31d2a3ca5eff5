"""The one text-bounds entry point: the class count from the logits (any contract model), the
set built once per batch and reused at every budget, the method names declared once."""

import pytest
import torch
from torch import nn

from robusttext.bounds.specs import margin_lower_bounds
from robusttext.errors import RobustTextError
from robusttext.methods import AUTO, ENGINE_METHODS, POOLED_METHOD, TEXT_METHODS
from robusttext.text import CharCNN, wrap_text_model
from robusttext.text.bounds import batch_problem, pick_method, substitution_set
from tests.builders import char_setup, word_setup
from tests.oracles import enumerate_rewrites

SENTENCES = ["a good film", "not a dull film , good", "good"]


class ThreeClasses(nn.Module):
    """An ordinary model (embeds inside its forward), three classes, no ``body.out``."""

    def __init__(self, vocab_size):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, 6, padding_idx=0)
        self.mix = nn.Linear(6, 5)
        self.last = nn.Linear(5, 3)

    def forward(self, ids, mask):
        h = torch.tanh(self.mix(self.emb(ids))) * mask.unsqueeze(-1)
        return self.last(h.sum(1) / mask.sum(1, keepdim=True))


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "crown"])
def test_class_count_is_read_from_the_logits_of_a_wrapped_model(method):
    vocab, space = word_setup()
    torch.manual_seed(0)
    model = wrap_text_model(ThreeClasses(len(vocab)), embedding="emb").eval()
    batch = space.encode(SENTENCES, vocab)
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        lower = margin_lower_bounds(batch_problem(model, batch, labels, 2), method)
    assert lower.shape == (3, 2)
    for b in range(len(SENTENCES)):  # below every enumerated rewrite's margins
        n = int(batch.mask[b].sum())
        rows = torch.tensor(list(enumerate_rewrites(
            batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
            batch.candidate_mask[b, :n].tolist(), 2)))
        with torch.no_grad():
            logits = model(rows, torch.ones(rows.shape))
        y = int(labels[b])
        margins = logits[:, y:y + 1] - logits[:, [j for j in range(3) if j != y]]
        assert (lower[b] <= margins.min(0).values + 1e-5).all()


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", POOLED_METHOD])
def test_a_set_built_once_gives_the_bounds_of_a_fresh_set_at_every_budget(method):
    vocab, space = char_setup()
    torch.manual_seed(1)
    model = CharCNN(len(vocab), embed_dim=6, filters=5, width=3).eval()
    batch = space.encode(SENTENCES, vocab)
    labels = torch.tensor([1, 0, 1])
    with torch.no_grad():
        for first in (2, 0, None):
            subs = substitution_set(model, batch, first)
            for budget in (0, 1, 2, None):
                fresh = margin_lower_bounds(batch_problem(model, batch, labels, budget,
                                                          classes=2), method)
                reused = margin_lower_bounds(batch_problem(model, batch, labels, budget,
                                                           classes=2, subs=subs), method)
                assert torch.equal(fresh, reused), (first, budget)


def test_method_names_are_declared_once():
    from robusttext.bounds import METHODS
    from robusttext.certify.cli import METHODS as CERTIFY_METHODS
    from robusttext.methods import BAB_METHOD, VISION_CERTIFY_METHODS
    from robusttext.train.config import EVAL_METHODS
    from robusttext.train.config import METHODS as TRAIN_METHODS
    from robusttext.vision.cli import BOUND_METHODS
    from robusttext.vision.config import METHODS as VISION_TRAIN

    assert METHODS is ENGINE_METHODS and BOUND_METHODS is VISION_CERTIFY_METHODS
    assert set(VISION_CERTIFY_METHODS) == {*ENGINE_METHODS, BAB_METHOD}
    assert CERTIFY_METHODS is TEXT_METHODS and set(TEXT_METHODS) == {*ENGINE_METHODS,
                                                                     POOLED_METHOD}
    assert set(TRAIN_METHODS) <= set(TEXT_METHODS) and EVAL_METHODS == (AUTO, *TRAIN_METHODS)
    assert set(VISION_TRAIN) - {"natural"} <= set(ENGINE_METHODS)
    vocab, _ = char_setup()
    assert pick_method(AUTO, CharCNN(len(vocab)).body) == POOLED_METHOD
    assert pick_method(AUTO, nn.Linear(2, 2)) == "crown-ibp"
    with pytest.raises(RobustTextError, match="unknown method 'exact'"):
        vocab, space = char_setup()
        batch = space.encode(SENTENCES[:1], vocab)
        margin_lower_bounds(batch_problem(CharCNN(len(vocab)), batch, torch.tensor([0]), 1),
                            "exact")
