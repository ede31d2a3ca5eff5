"""The bert model's settings for certified training: ``layer_norm_eps`` (BertConfig's own,
kept through checkpoints and the exported ``transformers`` folder, bounded soundly when large),
``query_init`` (attention starting as a mean) and the exported folder."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.perturb.vocabulary import Vocabulary  # noqa: E402
from robusttext.text import build_model, load_text_model, save_text_model  # noqa: E402
from robusttext.train.config import TrainConfig  # noqa: E402
from tests.hf_tiny import word_set_lower_margins  # noqa: E402
from tests.oracles import rewrite_margins  # noqa: E402

WORDS = ["the", "film", "movie", "is", "good", "great", "fine", "a", "bad", "awful", "poor",
         "plot", "story", "and"]
TABLE = {"good": ["great", "fine"], "bad": ["awful", "poor"], "film": ["movie"],
         "plot": ["story"]}


def _layer_norms(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.LayerNorm)]


def test_the_eps_reaches_every_layer_norm_and_the_checkpoint(tmp_path):
    from robusttext.perturb import PerturbationSpace, SynonymTable

    vocab = Vocabulary(WORDS)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=2,
                        max_length=12, layer_norm_eps=4.0)
    norms = _layer_norms(model)
    assert len(norms) == 5  # embeddings, and two per layer
    assert all(n.eps == 4.0 for n in norms)
    assert model.hf.config.layer_norm_eps == 4.0
    assert model.config()["layer_norm_eps"] == 4.0
    # BertConfig's default is not written, so older checkpoints rebuild the same model.
    plain = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16)
    assert "layer_norm_eps" not in plain.config()
    assert all(n.eps == 1e-12 for n in _layer_norms(plain))
    space = PerturbationSpace(SynonymTable(TABLE), budget=1)
    save_text_model(tmp_path / "m", model, vocab, space)
    loaded = load_text_model(tmp_path / "m").model
    assert all(n.eps == 4.0 for n in _layer_norms(loaded))


def test_the_exported_folder_keeps_the_eps_and_the_logits(tmp_path):
    """The folder that transformers reads computes (x - mean) / sqrt(var + 4): checked against
    the formula by hand on the embedding LayerNorm, and on the logits of the whole model."""
    from transformers import AutoModelForSequenceClassification

    from robusttext.text.hf.trainable import exported_transformers_model, word_tokenizer

    vocab = Vocabulary(WORDS)
    torch.manual_seed(1)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=1,
                        max_length=12, layer_norm_eps=4.0).eval()
    exported_transformers_model(model).save_pretrained(tmp_path)
    tokenizer = word_tokenizer(vocab)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert hf.config.layer_norm_eps == 4.0
    norm = hf.bert.embeddings.LayerNorm
    x = torch.randn(3, 8)
    by_hand = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False,
                                                                keepdim=True) + 4.0)
    torch.testing.assert_close(norm(x), by_hand * norm.weight + norm.bias)
    batch = tokenizer(["the film is good", "a bad plot"], padding=True, return_tensors="pt")
    mask = batch["attention_mask"][:, 1:].float()
    with torch.no_grad():
        expected = model(batch["input_ids"][:, 1:], mask)
        torch.testing.assert_close(hf(**batch).logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "crown"])
@pytest.mark.parametrize("query_init", ["normal", "zero"])
def test_bounds_with_a_large_eps_are_sound_against_enumeration(method, query_init):
    """With eps 4 (close to a centring norm), every rewrite's margin, computed by the exported
    transformers model on the saved tokenizer's ids, stays above the certified lower bound."""
    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.text.hf.trainable import exported_transformers_model, word_tokenizer

    vocab = Vocabulary(WORDS)
    torch.manual_seed(7)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=2,
                        max_length=12, layer_norm_eps=4.0, query_init=query_init).eval()
    with torch.no_grad():  # larger activations than the initialisation's, so eps matters less
        model.embedding.weight.mul_(20)
    hf, tokenizer = exported_transformers_model(model), word_tokenizer(vocab)
    space = PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[])
    texts = ["the film is good", "a bad plot", "the plot is bad and the film is good"]
    labels = torch.tensor([1, 0, 0])
    enc = space.encode(texts, vocab)
    for budget in (1, 2):
        lower = word_set_lower_margins(model, enc, labels, budget, method)
        for i, text in enumerate(texts):
            words = text.split()
            true = rewrite_margins(hf, tokenizer, words, [TABLE.get(w, []) for w in words],
                                   budget, int(labels[i]))
            assert lower[i] <= true.min() + 1e-5, (text, budget, method)


@pytest.mark.parametrize("eps", [0.0, -1.0, float("inf"), True, "big"])
def test_a_bad_eps_is_refused_by_name(eps):
    with pytest.raises(RobustTextError, match="layer_norm_eps"):
        build_model("bert", vocab_size=10, embed_dim=8, heads=2, layer_norm_eps=eps)


def test_the_training_setting_is_checked():
    with pytest.raises(RobustTextError, match="--layer-norm-eps"):
        TrainConfig(model="bert", layer_norm_eps=0.0)
    assert TrainConfig(model="bert", layer_norm_eps=4.0).layer_norm_eps == 4.0


def test_the_exported_folder_holds_only_transformers_files_in_half_precision(tmp_path):
    """``export_transformers_folder``: the folder transformers and its pipeline read, float16
    weights computed in float32 (the logits of robusttext's model with its weights rounded to
    float16 by hand), a word tokenizer, and the space without its stop words' entries."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.text.hf.export import export_transformers_folder
    from robusttext.text.hf.folders import ROBUSTTEXT_FILE

    vocab = Vocabulary(WORDS)
    torch.manual_seed(3)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=1,
                        max_length=12, layer_norm_eps=4.0).eval()
    space = PerturbationSpace(SynonymTable({**TABLE, "the": ["a"]}), budget=2)
    save_text_model(tmp_path / "run", model, vocab, space, metrics={"clean_accuracy": 0.5})
    target = export_transformers_folder(tmp_path / "run", tmp_path / "shipped", float16=True,
                                        note="a test")
    names = {p.name for p in target.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", ROBUSTTEXT_FILE} <= names
    assert not names & {"checkpoint.json", "weights.safetensors"}
    hf = AutoModelForSequenceClassification.from_pretrained(target).eval()
    assert hf.dtype == torch.float32 and hf.config.layer_norm_eps == 4.0
    rounded = build_model("bert", **model.config()).eval()
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    sentences = ["the film is good", "a bad plot and an awful story"]
    enc = space.encode(sentences, vocab)
    with torch.no_grad():
        expected = rounded(enc.token_ids, enc.mask)
    batch = AutoTokenizer.from_pretrained(target)(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(hf(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    classify = pipeline("text-classification", model=str(target), device="cpu")
    scores = classify(sentences[0], top_k=None, function_to_apply="none")
    by_label = {hf.config.label2id[s["label"]]: s["score"] for s in scores}
    torch.testing.assert_close(torch.tensor([by_label[0], by_label[1]]), expected[0],
                               atol=1e-5, rtol=1e-5)
    import json

    saved = json.loads((target / ROBUSTTEXT_FILE).read_text())
    assert saved["note"] == "a test" and saved["metrics"] == {"clean_accuracy": 0.5}
    shipped = PerturbationSpace.from_json(saved["perturbation_space"])
    assert "the" not in shipped.sources[0].table  # a stop word: never substituted anyway
    for sentence in sentences + ["the plot is bad and the film is good"]:
        assert shipped.candidates(sentence, vocab) == space.candidates(sentence, vocab)


def test_zero_queries_make_attention_a_mean_with_exact_weights():
    """With ``query_init="zero"`` every score is 0, so each position attends to the mean of the
    values of the real tokens: the [CLS] state does not depend on the word order beyond the
    positions, checked against the layer computed by hand with uniform weights."""
    vocab = Vocabulary(WORDS)
    torch.manual_seed(5)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=1,
                        max_length=12, query_init="zero").eval()
    assert model.config()["query_init"] == "zero"
    layer = model.hf.bert.encoder.layer[0].attention.self
    assert not layer.query.weight.any() and not layer.query.bias.any()
    assert layer.key.weight.any()  # only the queries start at zero
    encoder = model.body.encoder
    h = torch.randn(2, 4, 8)
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    from robusttext.text.sequence_models import MASKED_SCORE

    padded = ((1 - mask) * MASKED_SCORE)[:, None, None, :]
    out = encoder.layers[0](h, padded)
    value = encoder.layers[0].value(h)
    mean = (value * mask[..., None]).sum(1, keepdim=True) / mask.sum(1)[:, None, None]
    x = encoder.layers[0].norm1(h + encoder.layers[0].out(mean.expand_as(h)))
    by_hand = encoder.layers[0].norm2(
        x + encoder.layers[0].ffn_out(torch.relu(encoder.layers[0].ffn_in(x))))
    torch.testing.assert_close(out[0], by_hand[0])
    torch.testing.assert_close(out[1, :2], by_hand[1, :2])
    with pytest.raises(RobustTextError, match="query_init"):
        build_model("bert", vocab_size=10, embed_dim=8, heads=2, query_init="ones")


def test_fixed_zero_queries_stay_zero_through_training_and_the_checkpoint(tmp_path):
    """``query_init="fixed-zero"``: the queries start at zero and no optimiser step moves them
    (they take no gradient), while the values do move (the keys get none either: every score
    is 0 whatever they are); a checkpoint rebuilds them fixed."""
    vocab = Vocabulary(WORDS)
    torch.manual_seed(6)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=1,
                        max_length=12, query_init="fixed-zero")
    query = model.hf.bert.encoder.layer[0].attention.self.query
    value = model.hf.bert.encoder.layer[0].attention.self.value
    value_before = value.weight.detach().clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
    mask = (ids != 0).float()
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(ids, mask), torch.tensor([0, 1]))
        loss.backward()
        optimizer.step()
    assert not query.weight.any() and not query.bias.any()
    assert not query.weight.requires_grad and not query.bias.requires_grad
    assert not torch.equal(value.weight, value_before)  # the rest trains
    from robusttext.perturb import PerturbationSpace, SynonymTable

    save_text_model(tmp_path / "m", model, vocab, PerturbationSpace(SynonymTable(TABLE), budget=1))
    loaded = load_text_model(tmp_path / "m").model
    reloaded_query = loaded.hf.bert.encoder.layer[0].attention.self.query
    assert loaded.config()["query_init"] == "fixed-zero"
    assert not reloaded_query.weight.any() and not reloaded_query.weight.requires_grad
    assert TrainConfig.CHOICES["query_init"] == ("normal", "zero", "fixed-zero")
