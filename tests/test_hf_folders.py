"""transformers folders in and out: save/load round trip, pipeline, the CLI, the Python API and
bad input (no tokenizer, another architecture, labels that do not fit, no space)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.cli import main  # noqa: E402
from robusttext.errors import RobustTextError  # noqa: E402
from robusttext.perturb import PerturbationSpace, SynonymTable  # noqa: E402
from robusttext.text import load_text_model  # noqa: E402
from robusttext.text.hf import (  # noqa: E402
    ROBUSTTEXT_FILE,
    certify_transformers,
    from_transformers,
    load_transformers_folder,
    save_transformers_folder,
)
from tests.hf_tiny import SENTENCES, TABLE, bert_tokenizer, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return bert_tokenizer(tmp_path_factory.mktemp("vocab"))


@pytest.fixture(scope="module")
def space():
    return PerturbationSpace(SynonymTable(TABLE), budget=2, stop_words=[])


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer, space):
    path = tmp_path_factory.mktemp("model") / "tiny-bert"
    save_transformers_folder(path, from_transformers(tiny_model("distilbert")), tokenizer, space,
                             metrics={"clean_accuracy": 0.5})
    return path


def test_round_trip_keeps_the_logits_and_the_space(folder, tokenizer, space):
    original = from_transformers(tiny_model("distilbert"))
    model, loaded_tokenizer, saved = load_transformers_folder(folder)
    batch = tokenizer(["the film is good", "a bad plot"], return_tensors="pt", padding=True)
    mask = batch["attention_mask"].float()
    torch.testing.assert_close(model(batch["input_ids"], mask),
                               original(batch["input_ids"], mask))
    assert loaded_tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist()) == \
        tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    assert PerturbationSpace.from_json(saved["perturbation_space"]).to_json() == space.to_json()
    assert saved["metrics"] == {"clean_accuracy": 0.5}


def test_the_folder_loads_in_transformers_and_its_pipeline(folder, tokenizer):
    from transformers import AutoModelForSequenceClassification, pipeline

    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ours = from_transformers(tiny_model("distilbert"))
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    for text in ("the film is good", "a bad plot"):
        batch = tokenizer(text, return_tensors="pt")
        logits = ours(batch["input_ids"], batch["attention_mask"].float())
        torch.testing.assert_close(hf(**batch).logits, logits, atol=1e-5, rtol=1e-5)
        label = classify(text)[0]["label"]
        assert hf.config.label2id[label] == int(logits.argmax())
    assert (folder / ROBUSTTEXT_FILE).is_file()


def test_load_text_model_reads_the_folder_with_its_space(folder):
    bundle = load_text_model(folder)
    assert bundle.kind == "transformers"
    assert bundle.space.budget == 2
    assert bundle.meta["architecture"] == "DistilBertForSequenceClassification"


def test_a_folder_without_a_tokenizer_is_refused(tmp_path):
    tiny_model("bert").save_pretrained(tmp_path)
    with pytest.raises(RobustTextError, match="holds no tokenizer"):
        load_transformers_folder(tmp_path)


def test_an_unsupported_architecture_folder_is_named(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    GPT2ForSequenceClassification(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=30)
                                  ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(RobustTextError, match="GPT2ForSequenceClassification; supported: Bert"):
        load_transformers_folder(tmp_path)


def test_python_api_on_a_datasets_dataset(tokenizer, space):
    import datasets

    data = datasets.Dataset.from_dict({"sentence": [s for s, _ in SENTENCES],
                                       "label": [y for _, y in SENTENCES]})
    hf = tiny_model("bert")
    result = certify_transformers(hf, tokenizer, data, space, budgets=[1, 2])
    assert [s.n for s in result.summaries] == [5, 5]
    # films (twice), unkind (twice), kinded and kinding: see tests/test_hf_subwords.py.
    assert result.settings["dropped_candidates"] == {
        "total": 6, "piece_count": 4, "several_pieces": 1, "other_slot": 1, "max_candidates": 0}
    by_text = {e.text: e.dropped_candidates for e in result.examples if e.budget == 1}
    assert by_text["the story is bad and the film is fine"] == 2
    for e in result.examples:  # the soundness invariant, checked by certify as well
        assert not (e.certified and (e.attacked or e.exhaustive is False))


def test_labels_that_do_not_fit_the_model_are_refused(tokenizer, space):
    import datasets

    data = datasets.Dataset.from_dict(
        {"text": ["a bad plot", "good"], "label": [0, 2]},
        features=datasets.Features({"text": datasets.Value("string"),
                                    "label": datasets.ClassLabel(num_classes=3)}))
    with pytest.raises(RobustTextError, match="3 classes but the model has 2 labels"):
        certify_transformers(tiny_model("bert"), tokenizer, data, space)
    with pytest.raises(RobustTextError, match="label 2 but the model has 2 labels"):
        certify_transformers(tiny_model("bert"), tokenizer, [("good", 2)], space)


def _data_file(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in SENTENCES))
    return path


def test_certify_cli_takes_the_space_from_flags(tmp_path, tokenizer, capsys):
    folder = tmp_path / "plain"
    save_transformers_folder(folder, from_transformers(tiny_model("roberta")), tokenizer)
    table = tmp_path / "table.json"
    table.write_text(json.dumps(TABLE))
    data = _data_file(tmp_path)
    assert main(["certify", "--model", str(folder), "--data", str(data)]) == 2
    assert "carries no perturbation space" in capsys.readouterr().err
    report = tmp_path / "report.json"
    assert main(["certify", "--model", str(folder), "--data", str(data), "--sources",
                 str(table), "--budget", "1", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "sub-word candidates dropped: 6 (piece count 4, several pieces 1, other slot 1)" in out
    written = json.loads(report.read_text())
    assert written["models"]["plain"]["settings"]["dropped_candidates"]["total"] == 6
    assert {e["dropped_candidates"] for e in written["examples"]} == {0, 1, 2}


def test_sharded_certification_sums_the_dropped_candidates(tokenizer, space):
    from robusttext.certify.sharded import merge_certifications

    hf = tiny_model("bert")
    parts = [([0, 1], certify_transformers(hf, tokenizer, SENTENCES[:2], space, budgets=[1])),
             ([2, 3, 4], certify_transformers(hf, tokenizer, SENTENCES[2:], space, budgets=[1]))]
    whole = certify_transformers(hf, tokenizer, SENTENCES, space, budgets=[1])
    merged = merge_certifications(parts)
    assert merged.settings["dropped_candidates"] == whole.settings["dropped_candidates"]
    assert [e.dropped_candidates for e in merged.examples] == \
        [e.dropped_candidates for e in whole.examples]


def test_the_one_sentence_view_says_the_dropped_candidates(tmp_path, tokenizer, capsys):
    # From the vocabulary of tests/hf_tiny.py: films is film ##s and unkind un ##kind (another
    # piece count); playing is play ##ing, whose changeable slot is ##ing (played, plays), so
    # kinded (kind ##ed) differs in both pieces and kinding (kind ##ing) in the other one.
    folder = tmp_path / "plain"
    save_transformers_folder(folder, from_transformers(tiny_model("bert")), tokenizer)
    table = tmp_path / "table.json"
    table.write_text(json.dumps(TABLE))
    assert main(["certify", "--model", str(folder), "the playing is bad and the film is bad",
                 "--sources", str(table), "--budget", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("sub-word candidates"))
    assert out[start] == ("sub-word candidates dropped: 5 (piece count 3, several pieces 1, "
                          "other slot 1), not in the set:")
    assert [line.strip() for line in out[start + 1:start + 4]] == [
        "playing -> kinded (several pieces), kinding (other slot)",
        "bad -> unkind (piece count)",
        "film -> films (piece count)",
    ]
    assert out[start + 4].startswith("budget 1 position:")
    assert main(["certify", "--model", str(folder), "a good plot", "--sources", str(table),
                 "--budget", "1"]) == 0
    assert "sub-word candidates dropped: 0" in capsys.readouterr().out.splitlines()
