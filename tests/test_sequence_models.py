"""BiLSTM and Transformer classifiers: the contract, padding, bounds checked by enumeration,
CROWN against IBP, configuration and checkpoints, training, too-long input."""


import pytest
import torch

from robusttext.bounds import SubstitutionSet, compute_bounds, margin_matrix
from robusttext.cli import main
from robusttext.errors import RobustTextError
from robusttext.perturb import PerturbationSpace, SynonymTable, Vocabulary
from robusttext.text import (
    MODEL_KINDS,
    BiLSTM,
    TransformerClassifier,
    build_model,
    load_text_model,
    save_text_model,
)
from tests.oracles import enumerate_rewrites

# Small sizes keep CROWN (one backward pass per intermediate node) fast.
MODELS = {
    "lstm": lambda n: BiLSTM(n, embed_dim=6, hidden=3, max_length=4),
    "lstm-projected": lambda n: BiLSTM(n, embed_dim=6, hidden=3, max_length=4, projection=4,
                                       dropout=0.2),
    "transformer": lambda n: TransformerClassifier(n, embed_dim=8, hidden=8, heads=2, ffn=8,
                                                   max_length=6),
    "transformer-layernorm": lambda n: TransformerClassifier(
        n, embed_dim=6, hidden=8, heads=2, ffn=8, max_length=6, norm="layernorm"),
}
METHODS = ("ibp", "crown-ibp", "crown")

SYNONYMS = SynonymTable({"good": ["fine", "great"], "film": ["movie"], "dull": ["boring"]})
VOCAB = Vocabulary("a good film , not dull fine great movie boring".split())
SPACE = PerturbationSpace([SYNONYMS], budget=2, stop_words=[])
# Sentences for each model (the LSTM's max_length is 4) and their labels.
SENTENCES = {"lstm": ["good dull film", "a good film"],
             "lstm-projected": ["dull good film", "a good movie"],
             "transformer": ["a good film , not dull", "good film"],
             "transformer-layernorm": ["not a good film", "dull"]}
LABELS = torch.tensor([1, 0])


def small_model(name: str) -> torch.nn.Module:
    torch.manual_seed(3)
    model = MODELS[name](len(VOCAB)).eval()
    with torch.no_grad():
        model.embedding.weight.normal_()
        model.embedding.weight[0] = 0
    return model


def padded(ids: torch.Tensor, mask: torch.Tensor, extra: int):
    """``ids`` and ``mask`` with ``extra`` more padding columns."""
    return (torch.nn.functional.pad(ids, (0, extra)),
            torch.nn.functional.pad(mask, (0, extra)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract_padding_invariance_and_tracing(name):
    model = small_model(name)
    batch = SPACE.encode(SENTENCES[name], VOCAB)
    ids, mask = batch.token_ids, batch.mask
    assert isinstance(model.embedding, torch.nn.Embedding)
    assert model.embedding.padding_idx == 0
    logits = model(ids, mask)
    assert logits.shape == (2, 2)
    torch.testing.assert_close(logits, model.body(model.embedding(ids), mask))
    # the same sentences padded more, and each sentence alone, give the same logits
    more_ids, more_mask = padded(ids, mask, model.body.max_length - ids.shape[1])
    torch.testing.assert_close(model(more_ids, more_mask), logits, atol=1e-6, rtol=1e-5)
    for b in range(2):
        n = int(mask[b].sum())
        torch.testing.assert_close(model(ids[b:b + 1, :n], mask[b:b + 1, :n]),
                                   logits[b:b + 1], atol=1e-6, rtol=1e-5)
    # the traced graph (the LSTM's runs max_length steps) computes the eager logits
    traced = torch.fx.symbolic_trace(model.body)
    torch.testing.assert_close(traced(model.embedding(ids), mask), logits, atol=1e-6, rtol=1e-5)


_BOUNDS: dict = {}


def margin_bounds(name: str, method: str):
    """``(model, batch, lower, upper)``: margin bounds ``[2, 1]`` over SPACE (cached: CROWN
    on the unrolled LSTM takes seconds)."""
    if (name, method) not in _BOUNDS:
        model = small_model(name)
        batch = SPACE.encode(SENTENCES[name], VOCAB)
        emb = model.embedding
        input_set = SubstitutionSet(emb(batch.token_ids), emb(batch.candidate_ids),
                                    batch.candidate_mask, SPACE.budget)
        with torch.no_grad():
            lower, upper = compute_bounds(model.body, input_set, method,
                                          C=margin_matrix(LABELS, 2),
                                          extra_inputs=(batch.mask,))
        _BOUNDS[name, method] = model, batch, lower, upper
    return _BOUNDS[name, method]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_margin_bounds_contain_every_enumerated_rewrite(name, method):
    if name == "transformer-layernorm" and method == "crown":
        pytest.skip("CROWN through the decomposed LayerNorm is slow; IBP and CROWN-IBP cover it")
    model, batch, lower, upper = margin_bounds(name, method)
    assert torch.isfinite(lower).all() and torch.isfinite(upper).all()
    for b, sentence in enumerate(SENTENCES[name]):
        n = int(batch.mask[b].sum())
        rewrites = list(enumerate_rewrites(
            batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
            batch.candidate_mask[b, :n].tolist(), SPACE.budget))
        assert len(rewrites) == SPACE.count(sentence, VOCAB) > 1
        ids = torch.tensor(rewrites)
        with torch.no_grad():
            logits = model(ids, torch.ones(ids.shape))
        margin = logits[:, LABELS[b]] - logits[:, 1 - LABELS[b]]
        assert (margin >= lower[b, 0] - 1e-5).all()
        assert (margin <= upper[b, 0] + 1e-5).all()


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_crown_is_at_least_as_tight_as_ibp_on_average(name):
    widths = {}
    for method in ("ibp", "crown"):
        _, _, lower, upper = margin_bounds(name, method)
        widths[method] = (upper - lower).mean().item()
    assert widths["crown"] <= widths["ibp"]


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_lstm_bounds_unroll_only_the_batch_length(method):
    """The text bounds trace the LSTM to the batch's length, not max_length: the graph is
    smaller, the bounds equal those of the max_length graph and hold for every rewrite."""
    from robusttext.bounds.specs import margin_lower_bounds
    from robusttext.text.bounds import body_problem

    torch.manual_seed(5)
    model = BiLSTM(len(VOCAB), embed_dim=6, hidden=3, max_length=9).eval()
    batch = SPACE.encode(["good dull film", "dull"], VOCAB)  # the second one padded
    assert batch.mask.shape[1] == 3 and batch.mask[1].sum() == 1
    emb = model.embedding
    input_set = SubstitutionSet(emb(batch.token_ids), emb(batch.candidate_ids),
                                batch.candidate_mask, SPACE.budget)
    C = margin_matrix(LABELS, 2)
    with torch.no_grad():
        short = margin_lower_bounds(body_problem(model.body, input_set, C, batch.mask), method)
        full = compute_bounds(model.body, input_set, method, C=C,
                              extra_inputs=(batch.mask,), bound_upper=False)[0]
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)
    unrolled = model.body.for_length(3)
    assert model.body.for_length(3) is unrolled  # reused, so its trace is too
    nodes = {n: len(torch.fx.symbolic_trace(m).graph.nodes)
             for n, m in (("short", unrolled), ("full", model.body))}
    assert nodes["short"] < nodes["full"] / 2
    for b in range(2):
        n = int(batch.mask[b].sum())
        rewrites = torch.tensor(list(enumerate_rewrites(
            batch.token_ids[b, :n].tolist(), batch.candidate_ids[b, :n].tolist(),
            batch.candidate_mask[b, :n].tolist(), SPACE.budget)))
        with torch.no_grad():
            logits = model(rewrites, torch.ones(rewrites.shape))
        margin = logits[:, LABELS[b]] - logits[:, 1 - LABELS[b]]
        assert (margin >= short[b, 0] - 1e-5).all()
    with pytest.raises(RobustTextError, match="longer than the model's max_length"):
        model.body.for_length(10)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_longer_than_max_length_raises(name):
    model = small_model(name)
    length = model.body.max_length + 1
    ids, mask = torch.ones(1, length, dtype=torch.long), torch.ones(1, length)
    with pytest.raises(RobustTextError, match="longer than the model's max_length"):
        model(ids, mask)
    emb = model.embedding(ids)
    input_set = SubstitutionSet(emb, emb.unsqueeze(2), torch.ones(1, length, 1, dtype=bool), 1)
    with pytest.raises(RobustTextError, match="longer than the model's max_length"):
        compute_bounds(model.body, input_set, "ibp", extra_inputs=(mask,))


def test_registered_kinds_configuration_and_checkpoint(tmp_path):
    assert MODEL_KINDS["lstm"] is BiLSTM and MODEL_KINDS["transformer"] is TransformerClassifier
    for name in MODELS:
        model = small_model(name)
        rebuilt = build_model(model.kind, **model.config())
        assert rebuilt.config() == model.config()
        save_text_model(tmp_path / name, model, VOCAB, SPACE)
        bundle = load_text_model(tmp_path / name)
        assert bundle.kind == model.kind and bundle.model.config() == model.config()
        batch = SPACE.encode(SENTENCES[name], VOCAB)
        torch.testing.assert_close(bundle.model(batch.token_ids, batch.mask),
                                   model(batch.token_ids, batch.mask))
    assert build_model("transformer", vocab_size=5).config()["norm"] == "centernorm"
    assert build_model("lstm", vocab_size=5).config() == {
        "vocab_size": 5, "embed_dim": 100, "hidden": 64, "max_length": 64, "classes": 2}


@pytest.mark.parametrize("kind,config,message", [
    ("transformer", {"norm": "batchnorm"}, "norm must be one of"),
    ("transformer", {"hidden": 10, "heads": 4}, "multiple of heads"),
    ("transformer", {"ffn": 0}, "ffn must be a positive integer"),
    ("lstm", {"hidden": 0}, "hidden must be a positive integer"),
    ("lstm", {"filters": 3}, "bad configuration"),
])
def test_bad_configuration(kind, config, message):
    with pytest.raises(RobustTextError, match=message):
        build_model(kind, vocab_size=10, **config)


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_train_command(tmp_path, kind, capsys):
    rows = [("a good film", 1), ("dull film", 0), ("a fine movie", 1), ("boring", 0)]
    (tmp_path / "train.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    synonyms = tmp_path / "synonyms.json"
    synonyms.write_text('{"good": ["fine"], "film": ["movie"], "dull": ["boring"]}')
    out = tmp_path / "run"
    main(["train", "--model", kind, "--embed-dim", "8", "--hidden", "4",
          "--train", str(tmp_path / "train.tsv"), "--dev", str(tmp_path / "train.tsv"),
          "--sources", str(synonyms), "--budget", "1", "--epochs", "1", "--batch-size", "2",
          "--warmup-epochs", "0", "--ramp-epochs", "0", "--device", "cpu",
          "--eval-budgets", "1", "--out", str(out), "--quiet"])
    bundle = load_text_model(out)
    assert bundle.kind == kind and bundle.model.config()["hidden"] == 4
    assert "verified" in capsys.readouterr().out.lower()


def test_training_settings_reach_the_sequence_models():
    """heads, ffn, max_length and norm set in the training configuration build the model."""
    from robusttext.perturb import Vocabulary
    from robusttext.train import TrainConfig
    from robusttext.train.trainer import new_model

    vocab = Vocabulary(["a", "b", "c"])
    config = TrainConfig(model="transformer", embed_dim=8, hidden=8, heads=2, ffn=12,
                         max_length=10, norm="layernorm")
    model = new_model(config, vocab)
    assert model.config()["heads"] == 2 and model.config()["ffn"] == 12
    assert model.config()["max_length"] == 10 and model.config()["norm"] == "layernorm"
    lstm = new_model(TrainConfig(model="lstm", embed_dim=6, hidden=5, max_length=7), vocab)
    assert lstm.config()["max_length"] == 7 and lstm.config()["hidden"] == 5
