"""Messages a newcomer meets: flag names (never Python names), one-line command-line errors
with a "did you mean", flags that would change nothing refused, resumes with other settings
refused, plurals."""

import json

import pytest

from robusttext.cli import main
from tests.builders import SENTENCES, write_tsv


def one_line_error(argv, capsys) -> str:
    """A mistake robusttext finds: exit status 2 and one line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def parse_error(argv, capsys) -> str:
    """A command-line mistake: argparse exits with status 2 and one line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("argv,expected", [
    (["certify", "--method", "crwn"], "did you mean crown?"),
    (["certify", "--jsn", "x.json"], "did you mean --json?"),
    (["train", "--epoks", "3"], "did you mean --epochs? (see robusttext train --help)"),
    (["vision", "certify", "--methds", "ibp"], "did you mean --method?"),
    (["certify", "--limit", "many"], "--limit: invalid int value"),
])
def test_command_line_mistakes_are_one_line(argv, expected, capsys):
    assert expected in parse_error(argv, capsys)


@pytest.mark.parametrize("extra,named", [
    (["--tokenizer", "raw"], "--tokenizer raw changes nothing without a source"),
    (["--max-candidates", "1"], "--max-candidates 1 changes nothing without a source"),
    (["--sources", "wordnet", "--max-flips-per-word", "2"],
     "--max-flips-per-word 2 changes nothing without keyboard flips (--sources qwerty) at the "
     "word level"),
    (["--sources", "qwerty", "--wordnet-senses", "2"], "--wordnet-senses 2 changes nothing "
                                                       "without --sources wordnet"),
    (["--alpha-steps", "5"], "--alpha-steps 5 goes with --method alpha-crown, not --method "
                             "auto"),
    (["--sources", "qwerty", "--max-candidates", "0"], "--max-candidates must be at least 1"),
])
def test_flags_that_would_change_nothing_are_refused(word_model, extra, named, capsys):
    err = one_line_error(["certify", "--model", str(word_model), "a good movie", *extra],
                         capsys)
    assert named in err


@pytest.mark.parametrize("name,expected", [
    ("word-wordnett", "did you mean word-wordnet?"),
    ("char-flip", "did you mean char-flips?"),
    ("fmnist-dm-small", "certify it with robusttext vision certify --model fmnist-dm-small"),
])
def test_model_names(name, expected, capsys):
    assert expected in one_line_error(["certify", "--model", name, "a fine film"], capsys)


def test_sentence_and_data_together(word_model, tmp_path, capsys):
    data = write_tsv(tmp_path / "d.tsv", SENTENCES)
    err = one_line_error(["certify", "--model", str(word_model), "a good movie", "--data",
                          str(data)], capsys)
    assert "give one SENTENCE or --data, not both" in err


def test_one_sentence_is_singular(word_model, tmp_path, capsys):
    data = write_tsv(tmp_path / "d.tsv", SENTENCES[:1])
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget",
                 "0,1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "word-model: 1 sentence from" in out
    assert "at 0 positions no rewrite is allowed" in out


def test_vision_limits_name_their_flag(capsys):
    assert "--limit must be at least 1" in one_line_error(
        ["vision", "certify", "--limit", "0"], capsys)
    assert "--train-limit must be at least 1" in one_line_error(
        ["vision", "train", "--train-limit", "0"], capsys)


def test_train_refuses_to_resume_with_another_lr(tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", SENTENCES * 4)
    argv = ["train", "--architecture", "word-cnn", "--train", str(train), "--sources",
            "qwerty", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet",
            "--device", "cpu", "--embed-dim", "8", "--filters", "4"]
    assert main(argv) == 0
    capsys.readouterr()
    err = one_line_error([*argv, "--lr", "0.01"], capsys)
    assert "--lr was 0.001, now 0.01" in err and "a run resumes with the settings" in err
    assert main([*argv, "--epochs", "2"]) == 0  # training longer is allowed
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["training_config"]["epochs"] == 2


@pytest.mark.parametrize("extra,named", [
    (["--level", "char", "--wordnet-senses", "2"],
     "--wordnet-senses 2 changes nothing without --sources wordnet"),
    (["--level", "char", "--max-flips-per-word", "2"],
     "--max-flips-per-word 2 changes nothing without keyboard flips (--sources qwerty) at the "
     "word level"),
    (["--sources", "qwerty", "--max-candidates", "0"], "--max-candidates must be at least 1"),
    (["--sources", "qwerty", "--show", "-1"], "--show must be >= 0, got -1"),
    (["--sources", "qwerty", "--budget", "-1"], "--budget must be >= 0, got -1"),
])
def test_perturb_refuses_flags_that_would_change_nothing(extra, named, capsys):
    assert named in one_line_error(["perturb", "a charming film", *extra], capsys)


@pytest.mark.parametrize("command", [["train", "--architecture", "char-cnn", "--train",
                                      "x.tsv"], ["vision", "train"]])
def test_an_unwritable_out_fails_before_work(tmp_path, monkeypatch, capsys, command):
    (tmp_path / "x.tsv").write_text("sentence\tlabel\na fine film\t1\n")
    (tmp_path / "a-file").write_text("")
    monkeypatch.chdir(tmp_path)
    import robusttext.train.trainer as trainer
    import robusttext.vision.train as vision_train

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr(vision_train, "train", lambda *a, **k: pytest.fail("work started"))
    err = one_line_error([*command, "--out", "a-file/run"], capsys)
    assert "--out a-file/run: a-file is not a folder" in err
    err = one_line_error([*command, "--out", "a-file"], capsys)
    assert "--out a-file: is a file; name a folder" in err


def test_train_at_budget_zero_says_it_trains_a_normal_model(tmp_path, monkeypatch, capsys):
    import robusttext.train.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda config: {"done": 1})
    assert main(["train", "--epochs", "3", "--budget", "0", "--out", str(tmp_path / "r")]) == 0
    assert "--budget 0 allows no change" in capsys.readouterr().out
    assert main(["train", "--epochs", "3", "--budget", "1", "--out", str(tmp_path / "r")]) == 0
    assert "--budget 0" not in capsys.readouterr().out


def test_label_column_goes_with_data(word_model, capsys):
    err = one_line_error(["certify", "--model", str(word_model), "a good movie",
                          "--label-column", "y"], capsys)
    assert "--label-column goes with --data" in err


@pytest.mark.skipif(__import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is installed here")
@pytest.mark.parametrize("command", [["vision", "certify"], ["vision", "train"]])
def test_fashion_mnist_not_installed_says_how_to_get_it(command, tmp_path, capsys):
    err = one_line_error([*command, "--data", "fashion-mnist", *(
        ["--out", str(tmp_path / "run")] if command[1] == "train" else [])], capsys)
    assert "apt-get install dataset-fashion-mnist" in err
