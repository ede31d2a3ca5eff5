"""``robusttext train --model bert``: trains certifiably and saves a from_pretrained folder."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.cli import main  # noqa: E402
from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.text import build_model, load_text_model  # noqa: E402
from robusttext.text.hf import ROBUSTTEXT_FILE  # noqa: E402
from tests.hf_tiny import word_set_lower_margins  # noqa: E402
from tests.oracles import rewrite_margins  # noqa: E402

ROWS = [("the film is good", 1), ("a bad plot", 0), ("the story is great", 1),
        ("an awful film", 0)] * 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bert")
    data = tmp / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in ROWS))
    table = tmp / "table.json"
    table.write_text(json.dumps({"good": ["great", "fine"], "bad": ["awful", "poor"],
                                 "film": ["movie"]}))
    out = tmp / "run"
    assert main(["train", "--architecture", "bert", "--layers", "2", "--heads", "2", "--embed-dim",
                 "8", "--ffn", "16", "--max-length", "16", "--train", str(data), "--dev",
                 str(data), "--sources", str(table), "--budget", "1", "--epochs", "1",
                 "--warmup-epochs", "0", "--ramp-epochs", "1", "--method", "crown-ibp",
                 "--eval-budgets", "1", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    return out, data


def test_the_run_saves_a_folder_transformers_and_its_pipeline_load(run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out, _ = run
    bundle = load_text_model(out)
    assert bundle.kind == "bert" and bundle.model.config()["layers"] == 2
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    sentences = ["the film is good", "an awful plot .", "[cls] good"]
    enc = bundle.space.encode(sentences, bundle.vocab)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    # The saved tokenizer reads [CLS] (the row after the vocabulary's, its declared cls token),
    # then robusttext's ids; "[cls]" in the text is a word like any other.
    cls_id = len(bundle.vocab)
    assert hf.config.vocab_size == cls_id + 1
    assert (tokenizer.cls_token, tokenizer.cls_token_id) == ("[CLS]", cls_id)
    assert tokenizer("good film")["input_ids"] == [cls_id] + [bundle.vocab.tokens.index(w)
                                                           for w in ("good", "film")]
    assert batch["input_ids"][:, 0].tolist() == [cls_id] * 3
    assert torch.equal(batch["input_ids"][:, 1:], enc.token_ids)
    assert (enc.token_ids != cls_id).all()
    expected = bundle.model(enc.token_ids, enc.mask)
    torch.testing.assert_close(hf(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    # The pipeline, one sentence at a time, with the raw logits as its scores.
    classify = pipeline("text-classification", model=str(out), device="cpu")
    for text, logits in zip(sentences, expected, strict=True):
        scores = classify(text, top_k=None, function_to_apply="none")
        by_label = {hf.config.label2id[s["label"]]: s["score"] for s in scores}
        torch.testing.assert_close(torch.tensor([by_label[0], by_label[1]]), logits,
                                   atol=1e-5, rtol=1e-5)
    saved = json.loads((out / ROBUSTTEXT_FILE).read_text())
    assert saved["perturbation_space"]["budget"] == 1
    assert "clean_accuracy" in saved["metrics"]


def test_the_body_reads_cls_first_and_pools_it(run):
    """The encoder sees [CLS] at position 0 (changing the words changes nothing of where the
    pooler reads) and the pooled state is the first token's: the logits equal those of the
    transformers layers run by hand on ``cat(cls, words)``."""
    out, _ = run
    model = load_text_model(out).model.eval()
    torch.manual_seed(0)
    ids = torch.randint(2, len(load_text_model(out).vocab), (2, 5))
    mask = torch.ones(2, 5)
    mask[1, 3:] = 0
    hf = model.hf.eval()  # its dropout modules are outside the robusttext module tree
    x = torch.cat([model.body.cls.expand(2, 1, -1), model.embedding(ids)], 1)
    full_mask = torch.cat([torch.ones(2, 1), mask], 1)
    expected = hf(inputs_embeds=x, attention_mask=full_mask.long()).logits
    torch.testing.assert_close(model(ids, mask), expected, atol=1e-5, rtol=1e-5)


def test_the_trained_model_certifies_from_its_folder(run, capsys):
    out, data = run
    assert main(["certify", "--model", str(out), "--data", str(data), "--budget", "1"]) == 0
    assert "budget" in capsys.readouterr().out


def _pipeline_margins(folder, texts):
    """``pipeline("text-classification")``'s predicted class and margin (its logit minus the
    other's) per text, from its raw scores."""
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), device="cpu")
    found = []
    for text in texts:
        scores = {s["label"]: s["score"] for s in
                  classify(text, top_k=None, function_to_apply="none")}
        logits = [scores["LABEL_0"], scores["LABEL_1"]]
        best = int(logits[1] > logits[0])
        found.append((best, logits[best] - logits[1 - best]))
    return found


TEXTS = ["the film is good", "a bad plot", "an awful film", "the story is great",
         "a good plot and a bad film", "the movie is fine"]


def test_certify_transformers_reads_the_run_folder_as_the_pipeline_does(run):
    """``certify_transformers`` on the folder the run wrote (its tokenizer, its saved space): no
    refusal, and each sentence's prediction is the pipeline's; the certified margin bound of a
    budget-0 set is the pipeline's own margin, and at budget 1 never above it."""
    from robusttext.text.hf import certify_transformers

    out, _ = run
    expected = _pipeline_margins(out, TEXTS)
    labels = [p for p, _ in expected]
    for budget in (0, 1):
        result = certify_transformers(str(out), None, list(zip(TEXTS, labels)), None,
                                      budgets=[budget])
        by_text = {e.text: e for e in result.examples}
        for text, (prediction, margin) in zip(TEXTS, expected, strict=True):
            example = by_text[text]
            assert example.prediction == prediction, text
            if budget == 0:
                assert example.margin_lower == pytest.approx(margin, abs=1e-4), text
            else:
                assert example.margin_lower <= margin + 1e-4, text


def test_the_exported_folder_certifies_from_the_command_line(run, tmp_path):
    """``export_transformers_folder`` of the run, then ``robusttext certify --model FOLDER``:
    read through its own tokenizer (not refused), with the pipeline's predictions."""
    from robusttext.text.hf.export import export_transformers_folder

    out, _ = run
    target = export_transformers_folder(out, tmp_path / "shipped")
    expected = _pipeline_margins(target, TEXTS)
    data = tmp_path / "data.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{p}\n" for t, (p, _) in
                                                   zip(TEXTS, expected, strict=True)))
    report = tmp_path / "report.json"
    assert main(["certify", "--model", str(target), "--data", str(data), "--budget", "1",
                 "--json", str(report), "--quiet"]) == 0
    examples = json.loads(report.read_text())["examples"]
    assert {e["text"]: e["prediction"] for e in examples} == {
        t: p for t, (p, _) in zip(TEXTS, expected, strict=True)}


def test_bert_sizes_are_checked():
    with pytest.raises(RobustTextError, match="multiple of heads"):
        build_model("bert", vocab_size=10, embed_dim=10, heads=4)
    with pytest.raises(RobustTextError, match="activation"):
        build_model("bert", vocab_size=10, embed_dim=8, heads=2, activation="silu")


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_bert_bounds_with_cls_are_sound_against_enumeration_through_its_export(method):
    """Bounds through ``[CLS]`` + encoder, checked against the margins that the exported
    ``transformers`` model gives on every rewrite, each tokenised by the saved tokenizer."""

    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.perturb.vocabulary import Vocabulary
    from robusttext.text.hf.trainable import exported_transformers_model, word_tokenizer

    table = {"good": ["great", "fine"], "bad": ["awful", "poor"], "film": ["movie"],
             "plot": ["story"]}
    vocab = Vocabulary(["the", "film", "movie", "is", "good", "great", "fine", "a", "bad",
                        "awful", "poor", "plot", "story", "and"])
    torch.manual_seed(4)
    model = build_model("bert", vocab_size=len(vocab), embed_dim=8, heads=2, ffn=16, layers=2,
                        max_length=12).eval()
    hf, tokenizer = exported_transformers_model(model), word_tokenizer(vocab)
    space = PerturbationSpace(SynonymTable(table), budget=2, stop_words=[])
    texts = ["the film is good", "a bad plot", "the plot is bad and the film is good"]
    labels = torch.tensor([1, 0, 0])
    enc = space.encode(texts, vocab)
    for budget in (0, 1, 2):
        lower = word_set_lower_margins(model, enc, labels, budget, method)
        for i, text in enumerate(texts):
            words = text.split()
            true = rewrite_margins(hf, tokenizer, words, [table.get(w, []) for w in words],
                                   budget, int(labels[i]))
            assert lower[i] <= true.min() + 1e-5, (text, budget, method)
            if budget == 0:  # one sentence: the bound is its margin
                torch.testing.assert_close(lower[i], true[0], atol=1e-4, rtol=1e-4)


def test_a_bert_state_without_cls_is_refused_by_name():
    model = build_model("bert", vocab_size=10, embed_dim=8, heads=2, ffn=16, max_length=8)
    state = {k.replace("body.encoder.", "body."): v for k, v in model.state_dict().items()
             if k != "body.cls"}  # the layout of a bert saved before [CLS]
    with pytest.raises(RobustTextError, match=r"without \[CLS\].*train it again"):
        model.load_state_dict(state)
    model.load_state_dict(model.state_dict())


def test_the_word_tokenizer_declares_cls_and_reads_without_sep():
    """The bert run's word tokenizer declares its [CLS] (``cls_token``, marked special in the
    reading), has no [SEP], and robusttext reads a sentence through it as [CLS] then the words,
    with the candidates of the space."""
    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.perturb.subwords import SubwordSpace
    from robusttext.perturb.vocabulary import Vocabulary
    from robusttext.text.hf.trainable import word_tokenizer

    declared = word_tokenizer(Vocabulary(["the", "film", "is", "good", "great"]))
    assert declared.cls_token == "[CLS]" and declared.sep_token is None
    space = PerturbationSpace(SynonymTable({"good": ["great"]}), budget=1)
    reading = SubwordSpace(space, declared).read("the film is good")
    assert reading.pieces == ("[CLS]", "the", "film", "is", "good")
    assert reading.entries[0][1] == ()  # [CLS] never changes
    assert reading.entries[4][1] == (declared.convert_tokens_to_ids("great"),)
