"""XLM sequence classifiers: ``from_transformers`` reads ``XLMForSequenceClassification`` (first
token or mean summary), refuses what it does not compute by name, and robusttext's ``xlm`` model
is a folder that ``transformers`` and its pipeline read with robusttext's logits, certified
soundly (against every rewrite run through the saved tokenizer and ``transformers``' forward)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.perturb.vocabulary import Vocabulary  # noqa: E402
from robusttext.text import build_model, load_text_model, save_text_model  # noqa: E402
from tests.hf_tiny import word_set_lower_margins  # noqa: E402
from tests.oracles import rewrite_margins  # noqa: E402

WORDS = ["the", "film", "movie", "is", "good", "great", "fine", "a", "bad", "awful", "poor",
         "plot", "story", "and"]
TABLE = {"good": ["great", "fine"], "bad": ["awful", "poor"], "film": ["movie"],
         "plot": ["story"]}


def _xlm(summary_type="mean", summary_activation=None, gelu=False, **extra):
    from transformers import XLMConfig, XLMForSequenceClassification

    config = XLMConfig(vocab_size=20, emb_dim=8, n_layers=2, n_heads=2, gelu_activation=gelu,
                       layer_norm_eps=1e-5, pad_index=0, pad_token_id=0, n_langs=1,
                       max_position_embeddings=12, summary_type=summary_type,
                       summary_activation=summary_activation, num_labels=3, init_std=0.5,
                       embed_init_std=0.5, **extra)
    return XLMForSequenceClassification(config).eval()


@pytest.mark.parametrize("summary_type,summary_activation,gelu",
                         [("mean", None, False), ("first", "tanh", True), ("mean", "relu", True)])
def test_the_body_computes_transformers_logits_of_each_sentence(summary_type, summary_activation,
                                                                 gelu):
    """A right-padded batch through robusttext's body gives, per row, the logits
    ``transformers`` computes for that sentence alone (XLM's own mean counts padded positions,
    so each sentence is run unpadded)."""
    from robusttext.text.hf.model import from_transformers

    torch.manual_seed(0)
    hf = _xlm(summary_type, summary_activation, gelu)
    model = from_transformers(hf)
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0], [11, 0, 0, 0, 0]])
    mask = (ids != 0).float()
    with torch.no_grad():
        ours = model(ids, mask)
        for row, length in enumerate(mask.sum(1).long().tolist()):
            alone = hf(ids[row:row + 1, :length]).logits
            torch.testing.assert_close(ours[row:row + 1], alone, atol=1e-5, rtol=1e-5)
    assert model.body.out is hf.sequence_summary.summary


@pytest.mark.parametrize("settings,named", [
    ({"summary_type": "last"}, "summary_type"),
    ({"summary_type": "cls_index"}, "summary_type"),
    ({"summary_use_proj": False}, "summary_use_proj"),
    ({"summary_activation": "gelu"}, "summary_activation"),
    ({"causal": True}, "causal"),
])
def test_what_the_body_does_not_compute_is_refused_by_name(settings, named):
    from robusttext.text.hf.model import from_transformers

    summary_type = settings.pop("summary_type", "mean")
    activation = settings.pop("summary_activation", None)
    with pytest.raises(RobustTextError, match=named):
        from_transformers(_xlm(summary_type, activation, **settings))


def test_the_xlm_model_refuses_a_feed_forward_size_xlm_does_not_have():
    with pytest.raises(RobustTextError, match="4 x embed_dim"):
        build_model("xlm", vocab_size=10, embed_dim=8, heads=2, ffn=16)
    assert build_model("xlm", vocab_size=10, embed_dim=8, heads=2, ffn=32).config()["heads"] == 2
    with pytest.raises(RobustTextError, match="activation"):
        build_model("xlm", vocab_size=10, embed_dim=8, heads=2, activation="gelu_new")


def _trained_like(seed: int, query_init: str = "normal"):
    vocab = Vocabulary(WORDS)
    torch.manual_seed(seed)
    model = build_model("xlm", vocab_size=len(vocab), embed_dim=8, heads=2, layers=2,
                        max_length=12, layer_norm_eps=4.0, query_init=query_init).eval()
    with torch.no_grad():  # larger weights than the initialisation's, as after training
        for parameter in model.parameters():
            parameter.mul_(20 if parameter.dim() == 2 and parameter.shape[0] == len(vocab)
                           else 3)
        if query_init != "normal":
            for attention in model.hf.transformer.attentions:
                attention.q_lin.weight.zero_()
                attention.q_lin.bias.zero_()
    return model, vocab


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "crown"])
@pytest.mark.parametrize("query_init", ["normal", "fixed-zero"])
@pytest.mark.parametrize("positionwise", [False, True], ids=["embeddings", "positionwise"])
def test_bounds_are_sound_against_every_rewrite_through_transformers(method, query_init,
                                                                     positionwise, tmp_path):
    """Every rewrite's margin, computed by the saved folder's ``transformers`` model on its
    tokenizer's ids (each sentence's rewrites have its length, so no padding), stays above the
    certified lower bound, over the word vectors and over their images under the body's
    position-wise first layers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from robusttext.perturb import PerturbationSpace, SynonymTable

    model, vocab = _trained_like(7, query_init)
    space = PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[])
    save_text_model(tmp_path, model, vocab, space)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["the film is good", "a bad plot", "the plot is bad and the film is good"]
    labels = torch.tensor([1, 0, 0])
    enc = space.encode(texts, vocab)
    for budget in (1, 2):
        lower = word_set_lower_margins(model, enc, labels, budget, method, positionwise)
        for i, text in enumerate(texts):
            words = text.split()
            true = rewrite_margins(hf, tokenizer, words, [TABLE.get(w, []) for w in words],
                                   budget, int(labels[i]))
            assert lower[i] <= true.min() + 1e-5, (text, budget, method)


def test_the_saved_folder_is_read_by_transformers_and_certified_through_its_tokenizer(tmp_path):
    """``from_pretrained`` and ``pipeline`` give robusttext's logits; the folder reloads as an
    xlm checkpoint; ``certify_transformers`` reads it through its own tokenizer and space, and
    no certified sentence is flipped by the enumeration; a tokenizer that returns
    ``token_type_ids`` (which XLM adds as word vectors) is refused by name."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.text.hf import certify_transformers

    model, vocab = _trained_like(3)
    space = PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[])
    save_text_model(tmp_path, model, vocab, space)
    sentences = ["the film is good", "a bad plot and an awful story"]
    enc = space.encode(sentences, vocab)
    with torch.no_grad():
        expected = model(enc.token_ids, enc.mask)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(hf).__name__ == "XLMForSequenceClassification"
    for row, sentence in enumerate(sentences):
        with torch.no_grad():
            logits = hf(**tokenizer(sentence, return_tensors="pt")).logits
        torch.testing.assert_close(logits[0], expected[row], atol=1e-5, rtol=1e-5)
    classify = pipeline("text-classification", model=str(tmp_path), device="cpu")
    scores = classify(sentences[1], top_k=None, function_to_apply="none")
    by_label = {hf.config.label2id[s["label"]]: s["score"] for s in scores}
    torch.testing.assert_close(torch.tensor([by_label[0], by_label[1]]), expected[1],
                               atol=1e-5, rtol=1e-5)
    reloaded = load_text_model(tmp_path).model
    with torch.no_grad():
        torch.testing.assert_close(reloaded(enc.token_ids, enc.mask), expected)
    data = [(s, int(y)) for s, y in zip(sentences, expected.argmax(1))]
    with pytest.raises(RobustTextError, match="example 0: expected a"):
        certify_transformers(str(tmp_path), None, [{"sentence": sentences[0], "label": 1}],
                             None, budgets=[1])
    result = certify_transformers(str(tmp_path), None, data, None, budgets=[1, 2],
                                  enumerate_limit=1000)
    for budget in (1, 2):  # a certified sentence flipped by the enumeration would have raised
        summary = result.summary(budget)
        assert summary.n == 2 and summary.clean_accuracy == 1.0  # labelled with its own class
        assert summary.exhaustive_n == 2
        assert summary.verified_accuracy <= summary.exhaustive_accuracy <= summary.attack_accuracy
    typed = AutoTokenizer.from_pretrained(tmp_path, model_input_names=[
        "input_ids", "token_type_ids", "attention_mask"])
    with pytest.raises(RobustTextError, match="token_type_ids"):
        certify_transformers(hf, typed, data, space, budgets=[1])
    from robusttext.perturb.subwords import SubwordSpace

    with pytest.raises(RobustTextError, match="token_type_ids"):  # a space read through it
        certify_transformers(hf, tokenizer, data, SubwordSpace(space, typed), budgets=[1])


def test_an_xlm_run_exports_as_a_plain_transformers_folder(tmp_path):
    """``export_transformers_folder`` writes the xlm run's ``transformers`` files alone, which
    robusttext then reads as a ``transformers`` folder with the run's logits."""
    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.text.hf.export import export_transformers_folder
    from robusttext.text.hf.folders import load_transformers_bundle

    model, vocab = _trained_like(4)
    space = PerturbationSpace(SynonymTable(TABLE), budget=2)
    save_text_model(tmp_path / "run", model, vocab, space)
    target = export_transformers_folder(tmp_path / "run", tmp_path / "shipped")
    assert not (target / "weights.safetensors").exists()
    bundle = load_transformers_bundle(target)
    assert bundle.meta["architecture"] == "XLMForSequenceClassification"
    text = "the plot is bad and the film is good"
    ours = space.encode([text], vocab)
    theirs = torch.tensor([bundle.space.reference_ids(text)])
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(theirs, torch.ones(theirs.shape)),
                                   model(ours.token_ids, ours.mask))


def test_a_large_eps_starts_every_layer_norm_as_a_centring_norm():
    """With eps 1e4 the LayerNorms start at weight sqrt(eps): (x - mean) scaled by
    sqrt(eps / (var + eps)), which for states of variance about 1 is x - mean within 1e-4."""
    model = build_model("xlm", vocab_size=10, embed_dim=8, heads=2, layer_norm_eps=1e4)
    norm = model.hf.transformer.layer_norm_emb
    x = torch.randn(5, 8)
    centred = x - x.mean(-1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(norm(x) - norm.bias, centred, atol=1e-3, rtol=1e-3)
    small = build_model("xlm", vocab_size=10, embed_dim=8, heads=2, layer_norm_eps=1e-5)
    assert torch.equal(small.hf.transformer.layer_norm_emb.weight, torch.ones(8))


def test_the_shipped_xlm_model_is_certified_as_the_pipeline_reads_it():
    """``xlm-counterfitted`` is a plain ``transformers`` folder: ``pipeline`` loads it with no
    robusttext code, and on the demo sentences robusttext certify's prediction and clean margin
    are the pipeline's (its raw scores, the two labels' difference)."""
    from transformers import pipeline

    from robusttext.data import load_examples
    from robusttext.shipped import shipped_model_path
    from robusttext.text.hf import certify_transformers

    folder = shipped_model_path("xlm-counterfitted")
    examples = load_examples(str(folder.parents[1] / "demo_sentences.tsv"))
    result = certify_transformers(str(folder), None, examples, None, budgets=[0],
                                  enumerate_limit=0)
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    for example, outcome in zip(examples, result.examples, strict=True):
        scores = {s["label"]: s["score"] for s in classify(example.text, top_k=None,
                                                            function_to_apply="none")}
        theirs = torch.tensor([scores["LABEL_0"], scores["LABEL_1"]])
        assert outcome.prediction == int(theirs.argmax())
        margin = float(theirs[example.label] - theirs[1 - example.label])
        assert abs(outcome.margin_lower - margin) < 1e-4 * max(1.0, abs(margin))
