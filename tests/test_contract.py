"""The text-model contract: checking models and wrapping a user's own module."""

import pytest
import torch
import torch.nn as nn

from robusttext import RobustTextError
from robusttext.bounds import SubstitutionSet, compute_bounds
from robusttext.text.contract import ContractTextModel, check_text_model, wrap_text_model


class Classifier(nn.Module):
    """An ordinary classifier: forward(ids, mask) with the embedding inside a submodule."""

    def __init__(self, vocab=30, dim=6):
        super().__init__()
        self.encoder = nn.ModuleDict({"tokens": nn.Embedding(vocab, dim)})
        self.conv = nn.Conv1d(dim, 8, 3, padding=1)
        self.out = nn.Linear(8, 2)

    def forward(self, ids, mask):
        h = torch.relu(self.conv(self.encoder["tokens"](ids).transpose(1, 2)))
        return self.out((h * mask.unsqueeze(1)).sum(2) / mask.sum(1, keepdim=True))


def test_wrapped_model_computes_the_same_and_shares_weights():
    module = Classifier().eval()
    model = wrap_text_model(module, embedding="encoder.tokens")
    check_text_model(model)
    assert isinstance(model, ContractTextModel)
    assert model.embedding is module.encoder["tokens"]
    ids, mask = torch.randint(0, 30, (4, 7)), torch.ones(4, 7)
    mask[0, 5:] = 0
    torch.testing.assert_close(model(ids, mask), module(ids, mask))
    with torch.no_grad():
        module.out.bias += 1.0  # the body shares the module's parameters
    torch.testing.assert_close(model(ids, mask), module(ids, mask))


def test_wrapped_body_is_bounded_like_the_module():
    """The engine bounds the cut body; every sampled rewrite lies inside the bounds."""
    torch.manual_seed(0)
    module = Classifier().eval()
    model = wrap_text_model(module, embedding="encoder.tokens")
    ids, cand = torch.randint(0, 30, (2, 5)), torch.randint(0, 30, (2, 5, 3))
    cand_mask, mask = torch.ones(2, 5, 3, dtype=torch.bool), torch.ones(2, 5)
    table = model.embedding.weight.detach()
    subs = SubstitutionSet(table[ids], table[cand], cand_mask, 2)
    lower, upper = compute_bounds(model.body, subs, "crown", extra_inputs=(mask,))
    for _ in range(50):
        rewritten = ids.clone()
        for p in torch.randperm(5)[:2]:
            rewritten[:, p] = cand[torch.arange(2), p, torch.randint(0, 3, (2,))]
        with torch.no_grad():
            out = module(rewritten, mask)
        assert (out >= lower - 1e-5).all() and (out <= upper + 1e-5).all()


def test_check_names_what_is_missing():
    with pytest.raises(RobustTextError, match="no `embedding`.*no `body`.*wrap_text_model"):
        check_text_model(Classifier())
    model = wrap_text_model(Classifier(), "encoder.tokens")
    model.embedding = nn.Linear(2, 2)
    with pytest.raises(RobustTextError, match="`embedding` is a Linear, not an nn.Embedding"):
        check_text_model(model)
    with pytest.raises(RobustTextError, match="torch.nn.Module"):
        check_text_model("model")


def test_wrap_errors():
    with pytest.raises(RobustTextError, match="no submodule 'emb'.*'encoder.tokens'"):
        wrap_text_model(Classifier(), "emb")
    with pytest.raises(RobustTextError, match="'conv'.*not an nn.Embedding"):
        wrap_text_model(Classifier(), "conv")

    class UsesIds(Classifier):
        def forward(self, ids, mask):
            return super().forward(ids, (ids > 0).float())

    with pytest.raises(RobustTextError, match="uses the token ids .* outside the embedding"):
        wrap_text_model(UsesIds(), "encoder.tokens")

    class Twice(Classifier):
        def forward(self, ids, mask):
            return super().forward(ids, mask) + self.encoder["tokens"](ids).sum()

    with pytest.raises(RobustTextError, match="2 times"):
        wrap_text_model(Twice(), "encoder.tokens")

    class Branches(Classifier):
        def forward(self, ids, mask):
            if mask.sum() > 3:
                return super().forward(ids, mask)
            return super().forward(ids, mask) * 2

    with pytest.raises(RobustTextError, match="cannot trace Branches"):
        wrap_text_model(Branches(), "encoder.tokens")


def test_example_script_runs():
    """examples/certify_own_model.py runs offline and certifies something."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "certify_own_model.py"
    if not script.is_file():
        pytest.skip("example script missing")
    namespace = runpy.run_path(str(script), run_name="not_main")
    result = namespace["main"](steps=5)
    assert result.summaries[0].n > 0
