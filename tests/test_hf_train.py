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
    sentences = ["the film is good", "an awful plot ."]
    enc = bundle.space.encode(sentences, bundle.vocab)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], enc.token_ids)
    expected = bundle.model(enc.token_ids, enc.mask)
    torch.testing.assert_close(hf(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    classify = pipeline("text-classification", model=str(out), device="cpu")
    for text, logits in zip(sentences, expected, strict=True):
        assert hf.config.label2id[classify(text)[0]["label"]] == int(logits.argmax())
    saved = json.loads((out / ROBUSTTEXT_FILE).read_text())
    assert saved["perturbation_space"]["budget"] == 1
    assert "clean_accuracy" in saved["metrics"]


def test_the_trained_model_certifies_from_its_folder(run, capsys):
    out, data = run
    assert main(["certify", "--model", str(out), "--data", str(data), "--budget", "1"]) == 0
    assert "budget" in capsys.readouterr().out


def test_bert_sizes_are_checked():
    with pytest.raises(RobustTextError, match="multiple of heads"):
        build_model("bert", vocab_size=10, embed_dim=10, heads=4)
    with pytest.raises(RobustTextError, match="activation"):
        build_model("bert", vocab_size=10, embed_dim=8, heads=2, activation="silu")
