"""``robusttext train --model FOLDER``: certified fine-tuning of a transformers model the user
has; the output is a folder of the same kind, with the model's own tokenizer and config."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.cli import main  # noqa: E402
from robusttext.text import load_text_model  # noqa: E402
from robusttext.text.hf import ROBUSTTEXT_FILE  # noqa: E402
from tests.hf_tiny import SENTENCES, TABLE, bert_tokenizer, tiny_model  # noqa: E402

ROWS = SENTENCES * 4


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """A BERT folder as transformers writes it, training data and a synonym table."""
    tmp = tmp_path_factory.mktemp("user")
    folder = tmp / "user-bert"
    tokenizer = bert_tokenizer(tmp / "vocab")
    model = tiny_model("bert", activation="gelu")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    data = tmp / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in ROWS))
    table = tmp / "table.json"
    table.write_text(json.dumps(TABLE))
    return folder, data, table


def _argv(folder, data, table, out, epochs=2):
    return ["train", "--model", str(folder), "--train", str(data), "--dev", str(data),
            "--sources", str(table), "--budget", "1", "--epochs", str(epochs),
            "--warmup-epochs", "0", "--ramp-epochs", "1", "--robust-weight", "0.5",
            "--eval-budgets", "1", "--batch-size", "4", "--out", str(out), "--quiet",
            "--device", "cpu"]


def test_fine_tuning_keeps_the_tokenizer_and_config_and_saves_a_folder(user_model, tmp_path,
                                                                        capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, data, table = user_model
    out = tmp_path / "tuned"
    assert main(_argv(folder, data, table, out)) == 0
    said = capsys.readouterr().out
    assert "continuing" in said and "training a BertForSequenceClassification" in said
    before = AutoModelForSequenceClassification.from_pretrained(folder)
    after = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(after) is type(before)
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
            "layer_norm_eps", "vocab_size", "max_position_embeddings")
    assert {k: getattr(after.config, k) for k in keys} == {
        k: getattr(before.config, k) for k in keys}
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(
        folder).get_vocab()
    changed = [n for n, p in after.state_dict().items()
               if not torch.equal(p, before.state_dict()[n])]
    assert changed  # trained
    saved = json.loads((out / ROBUSTTEXT_FILE).read_text())
    assert saved["perturbation_space"]["budget"] == 1
    assert saved["state"]["epoch"] == 2 and saved["training_config"]["start_from"] == str(folder)
    assert "clean_accuracy" in saved["metrics"]
    # The folder certifies as a transformers model (robusttext's soundness check: no certified
    # sentence has a flipping rewrite among the enumerated ones).
    bundle = load_text_model(out)
    assert bundle.kind == "transformers"
    assert main(["certify", "--model", str(out), "--data", str(data), "--budget", "1",
                 "--quiet"]) == 0


def test_a_fine_tuning_run_resumes_and_says_when_it_is_done(user_model, tmp_path, capsys):
    folder, data, table = user_model
    out = tmp_path / "tuned"
    assert main(_argv(folder, data, table, out, epochs=1)) == 0
    capsys.readouterr()
    assert main(_argv(folder, data, table, out, epochs=2)) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((out / ROBUSTTEXT_FILE).read_text())["state"]["epoch"] == 2
    assert main(_argv(folder, data, table, out, epochs=2)) == 0
    assert "already trained for 2 epochs" in capsys.readouterr().out
    changed = _argv(folder, data, table, out, epochs=3)
    changed[changed.index("--budget") + 1] = "2"
    assert main(changed) == 2
    assert "other settings" in capsys.readouterr().err


def test_settings_that_build_a_new_model_are_refused(user_model, tmp_path, capsys):
    folder, data, table = user_model
    argv = _argv(folder, data, table, tmp_path / "x") + ["--vectors", "glove-6b-50d"]
    assert main(argv) == 2
    assert "--vectors" in capsys.readouterr().err


def test_a_robusttext_checkpoint_is_refused_by_name(tmp_path, capsys):
    from tests.builders import save_word_model

    data = tmp_path / "t.tsv"
    data.write_text("sentence\tlabel\nthe film is good\t1\n")
    path = save_word_model(tmp_path / "word")
    argv = ["train", "--model", str(path), "--train", str(data), "--sources", "qwerty",
            "--out", str(tmp_path / "o"), "--quiet", "--device", "cpu"]
    assert main(argv) == 2
    assert "continues a transformers model" in capsys.readouterr().err


def test_an_architecture_name_is_still_the_old_spelling(capsys):
    assert main(["train", "--model", "bert", "--print-config"]) == 0
    captured = capsys.readouterr()
    config = json.loads(captured.out)
    assert config["model"] == "bert" and config["start_from"] is None
    assert "--model is deprecated" in captured.err


def test_a_hub_id_is_continued_from_the_cache_offline(user_model, tmp_path):
    """``--model ORG/NAME``: transformers' own resolution finds the model in a Hugging Face
    cache written here in the cache's layout (no network: ``HF_HUB_OFFLINE=1``, a fresh
    process so that huggingface_hub reads the environment)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    folder, data, table = user_model
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--testorg--user-bert"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    work = tmp_path / "work"  # no testorg/ folder here
    work.mkdir()
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    argv = _argv("testorg/user-bert", data, table, work / "tuned", epochs=1)[1:]
    done = subprocess.run([sys.executable, "-m", "robusttext.cli", "train", *argv], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((work / "tuned" / ROBUSTTEXT_FILE).read_text())
    assert saved["training_config"]["start_from"] == "testorg/user-bert"
    assert (work / "tuned" / "tokenizer.json").is_file()
    assert load_text_model(work / "tuned").kind == "transformers"
