"""One surface for text and vision: the same flag for the same meaning, and the old spellings
still read for a release, each with one line saying what replaces it."""

import json

import pytest

from robusttext.checkpoint import META_FILE
from robusttext.cli import build_parser, main
from robusttext.errors import RobustTextError
from robusttext.vision.config import TrainConfig as VisionConfig


def command_parser(command: str):
    """The parser of ``robusttext COMMAND`` (e.g. ``"vision train"``)."""
    words = command.split()
    parser = build_parser(words)
    for word in words:
        parser = next(a for a in parser._actions if hasattr(a, "choices")
                      and isinstance(a.choices, dict) and word in a.choices).choices[word]
    return parser


def flags(command: str) -> set[str]:
    """Every option string of ``robusttext COMMAND``."""
    return {o for a in command_parser(command)._actions for o in a.option_strings}


@pytest.mark.parametrize(("text", "vision", "shared"), [
    ("certify", "vision certify", {"--model", "--data", "--split", "--method", "--alpha-steps",
                                   "--limit", "--batch-size", "--device", "--json", "--quiet"}),
    ("train", "vision train", {"--config", "--print-config", "--architecture", "--method",
                               "--train-limit", "--epochs", "--warmup-epochs", "--ramp-epochs",
                               "--batch-size", "--lr", "--seed", "--grad-clip", "--device",
                               "--out", "--quiet"}),
])
def test_text_and_vision_share_the_flags_that_mean_the_same(text, vision, shared):
    assert shared <= flags(text) and shared <= flags(vision)


def test_vision_certify_method_is_text_s_name_and_methods_still_reads(capsys):
    args = build_parser(["vision", "certify"]).parse_args(
        ["vision", "certify", "--method", "ibp,crown"])
    assert args.method == "ibp,crown"
    args = build_parser(["vision", "certify"]).parse_args(
        ["vision", "certify", "--methods", "crown-ibp"])
    assert args.method == "crown-ibp"
    err = capsys.readouterr().err.strip()
    assert err == ("robusttext vision certify: --methods is deprecated and will be removed in "
                   "the next release; use --method")


def test_vision_limits_are_named_as_text_s_and_the_old_flags_still_read(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["vision", "train", "--train-limit", "7", "--test-limit", "none", "--out", out,
                 "--print-config"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert (printed["train_limit"], printed["test_limit"]) == (7, None)
    assert "train_subset" not in printed and captured.err == ""
    assert main(["vision", "train", "--train-subset", "5", "--out", out, "--print-config"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["train_limit"] == 5
    assert captured.err.strip() == ("robusttext vision train: --train-subset is deprecated and "
                                    "will be removed in the next release; use --train-limit")


def test_old_setting_names_in_a_file_still_read_and_both_are_refused(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"train_subset": 100, "lr_milestones": [3],
                                "epoch_eval_subset": 50}))
    config = VisionConfig.from_file(path)
    assert (config.train_limit, config.lr_decay_epochs, config.epoch_eval_limit) == (100, [3], 50)
    err = capsys.readouterr().err
    assert f"{path}: the setting 'train_subset' is deprecated" in err and "use 'train_limit'" in err
    assert len(err.strip().splitlines()) == 3
    with pytest.raises(RobustTextError, match="give 'train_limit' or its old name "
                                              "'train_subset', not both"):
        VisionConfig.from_dict({"train_subset": 1, "train_limit": 2})


def test_a_run_recorded_under_the_old_names_resumes_only_with_the_same_limit(tmp_path):
    """A checkpoint written before the rename records ``train_subset``; it is still compared."""
    from robusttext.vision.cli import check_resume

    out = tmp_path / "run"
    out.mkdir()
    (out / META_FILE).write_text(json.dumps({"training": {"config": {"train_subset": 100},
                                                          "epochs_done": 1}}))
    with pytest.raises(RobustTextError, match="--train-limit was 100, now 50"):
        check_resume(out, VisionConfig(train_limit=50, epochs=2))
    assert check_resume(out, VisionConfig(train_limit=100, epochs=2)) is None


def test_no_budget_limit_is_any_in_train_perturb_and_certify(capsys):
    assert main(["train", "--budget", "any", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["budget"] is None and captured.err == ""
    assert main(["train", "--budget", "none", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["budget"] is None
    assert captured.err.strip() == ("robusttext train: --budget none is deprecated and will be "
                                    "removed in the next release; use --budget any")
    assert main(["perturb", "a good film", "--sources", "qwerty", "--budget", "any"]) == 0
    assert "any number of changed positions" in capsys.readouterr().out
    assert main(["perturb", "a good film", "--sources", "qwerty", "--budget", "2"]) == 0
    assert "at most 2 changed positions" in capsys.readouterr().out
    from robusttext.certify.cli import parse_budgets

    assert parse_budgets("1,any") == [1, None]
    assert "--budget N|any" in command_parser("train").format_help()


def test_every_training_setting_is_a_flag_in_text_and_vision(tmp_path, capsys):
    """As text's train, vision train has a flag per setting; --eps sets both radii where their
    own flags are not given."""
    from robusttext.train.config import TrainConfig

    for command, config in (("train", TrainConfig), ("vision train", VisionConfig)):
        dests = {a.dest for a in command_parser(command)._actions}
        assert set(config.__dataclass_fields__) <= dests  # (text's start_from: --model)
    out = str(tmp_path / "run")
    assert main(["vision", "train", "--eps", "0.2", "--eps-eval", "0.05", "--schedule",
                 "smoothed", "--final-methods", "crown", "--out", out, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["eps_train"], printed["eps_eval"]) == (0.2, 0.05)
    assert (printed["schedule"], printed["final_methods"]) == ("smoothed", ["crown"])
