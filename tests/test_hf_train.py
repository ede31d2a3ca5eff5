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
from tests.oracles import word_rewrites  # noqa: E402

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
    assert main(["train", "--model", "bert", "--layers", "2", "--heads", "2", "--embed-dim",
                 "8", "--ffn", "16", "--max-length", "16", "--train", str(data), "--dev",
                 str(data), "--sources", str(table), "--budget", "1", "--epochs", "1",
                 "--warmup-epochs", "0", "--ramp-epochs", "1", "--method", "crown-ibp",
                 "--eval-budgets", "1", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    return out, data


def test_the_run_saves_a_folder_transformers_and_its_pipeline_load(run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out, _ = run
    bundle = load_text_model(out)
    assert bundle.kind == "bert" and bundle.model.config()["layers"] == 2
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    sentences = ["the film is good", "an awful plot .", "[CLS] good"]
    enc = bundle.space.encode(sentences, bundle.vocab)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    # The saved tokenizer reads [CLS] (the row after the vocabulary's), then robusttext's ids;
    # a "[CLS]" in the text is a word like any other.
    cls_id = len(bundle.vocab)
    assert hf.config.vocab_size == cls_id + 1
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


def test_bert_sizes_are_checked():
    with pytest.raises(RobustTextError, match="multiple of heads"):
        build_model("bert", vocab_size=10, embed_dim=10, heads=4)
    with pytest.raises(RobustTextError, match="activation"):
        build_model("bert", vocab_size=10, embed_dim=8, heads=2, activation="silu")


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_bert_bounds_with_cls_are_sound_against_enumeration_through_its_export(method):
    """Bounds through ``[CLS]`` + encoder, checked against the margins that the exported
    ``transformers`` model gives on every rewrite, each tokenised by the saved tokenizer."""

    from robusttext.bounds import TokenSubstitutionSet, margin_matrix
    from robusttext.bounds.specs import margin_lower_bounds
    from robusttext.certify.margins import margins
    from robusttext.perturb import PerturbationSpace, SynonymTable
    from robusttext.perturb.vocabulary import Vocabulary
    from robusttext.text.bounds import body_problem
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
        subs = TokenSubstitutionSet(model.embedding.weight, enc.token_ids, enc.candidate_ids,
                                    enc.candidate_mask, budget, "exact")
        with torch.no_grad():
            lower = margin_lower_bounds(body_problem(model.body, subs, margin_matrix(labels, 2),
                                                     enc.mask), method).amin(1)
        for i, text in enumerate(texts):
            words = text.split()
            options = [table.get(w, []) for w in words]
            rewrites = word_rewrites(words, options, budget)
            batch = tokenizer(rewrites, return_tensors="pt", padding=True)
            with torch.no_grad():
                true = margins(hf(**batch).logits, torch.full((len(rewrites),), int(labels[i])))
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
