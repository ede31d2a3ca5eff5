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
                               "--out", "--quiet", "--eval-limit", "--eval-methods",
                               "--robust-weight", "--robust-weight-start", "--beta-start",
                               "--beta-final", "--lr-decay-epochs", "--lr-decay",
                               "--oracle-every"}),
])
def test_text_and_vision_share_the_flags_that_mean_the_same(text, vision, shared):
    assert shared <= flags(text) and shared <= flags(vision)


def test_vision_certify_method_is_text_s_name_and_methods_still_reads(capsys):
    args = build_parser(["vision", "certify"]).parse_args(
        ["vision", "certify", "--method", "ibp,crown"])
    assert args.method == ["ibp", "crown"]
    args = build_parser(["vision", "certify"]).parse_args(
        ["vision", "certify", "--methods", "crown-ibp"])
    assert args.method == ["crown-ibp"]
    err = capsys.readouterr().err.strip()
    assert err == ("robusttext vision certify: --methods is deprecated and will be removed in "
                   "the next release; use --method")


def test_vision_limits_are_named_as_text_s_and_the_old_flags_still_read(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["vision", "train", "--train-limit", "7", "--eval-limit", "none", "--out", out,
                 "--print-config"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert (printed["train_limit"], printed["eval_limit"]) == (7, None)
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
                 "smoothed", "--eval-methods", "crown", "--out", out, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["eps_train"], printed["eps_eval"]) == (0.2, 0.05)
    assert (printed["schedule"], printed["eval_methods"]) == ("smoothed", ["crown"])


# Each old spelling beside its new one: the same settings, and one line saying what replaces it.
OLD_AND_NEW = [
    ("train", ["--dev-limit", "3"], ["--eval-limit", "3"], "--eval-limit"),
    ("train", ["--eval-method", "ibp"], ["--eval-methods", "ibp"], "--eval-methods"),
    ("train", ["--no-progress"], ["--quiet"], "--quiet"),
    ("train", ["--progress"], [], "nothing (progress bars are on unless --quiet)"),
    ("train", ["--kappa-final", "0.25"], ["--robust-weight", "0.75"],
     "--robust-weight (= 1 - kappa_final)"),
    ("vision train", ["--test-limit", "5"], ["--eval-limit", "5"], "--eval-limit"),
    ("vision train", ["--test-subset", "5"], ["--eval-limit", "5"], "--eval-limit"),
    ("vision train", ["--final-methods", "ibp", "crown"], ["--eval-methods", "ibp,crown"],
     "--eval-methods"),
    ("vision train", ["--epoch-methods", "crown"], ["--epoch-eval-methods", "crown"],
     "--epoch-eval-methods"),
    ("vision train", ["--kappa-start", "0.0"], ["--robust-weight-start", "1.0"],
     "--robust-weight-start (= 1 - kappa_start)"),
    ("vision train", ["--kappa-final", "0.5"], ["--robust-weight", "0.5"],
     "--robust-weight (= 1 - kappa_final)"),
]


@pytest.mark.parametrize(("command", "old", "new", "replacement"), OLD_AND_NEW)
def test_each_old_spelling_reads_as_the_new_one_with_one_line(command, old, new, replacement,
                                                             tmp_path, capsys):
    base = [*command.split(), "--out", str(tmp_path / "run"), "--print-config"]
    assert main([*base, *new]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    expected = json.loads(captured.out)
    assert main([*base, *old]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == expected
    assert captured.err.strip() == (f"robusttext {command}: {old[0]} is deprecated and will be "
                                    f"removed in the next release; use {replacement}")


@pytest.mark.parametrize("command", ["certify", "vision certify", "vision train"])
def test_no_progress_is_quiet_with_one_line_everywhere(command, capsys):
    parser = command_parser(command)
    assert parser.parse_args(["--quiet"]).quiet is True
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["--no-progress"]).quiet is True
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("--no-progress is deprecated and will be removed "
                                             "in the next release; use --quiet")


def test_old_keys_of_a_config_file_read_as_the_new_ones(tmp_path, capsys):
    from robusttext.train.config import TrainConfig

    path = tmp_path / "vision.json"
    path.write_text(json.dumps({"kappa_start": 1.0, "kappa_final": 0.25, "test_limit": 4,
                                "final_methods": ["ibp"], "epoch_methods": ["crown"]}))
    config = VisionConfig.from_file(path)
    assert (config.robust_weight_start, config.robust_weight, config.eval_limit) == (0.0, 0.75, 4)
    assert (config.eval_methods, config.epoch_eval_methods) == (["ibp"], ["crown"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and "use 'robust_weight' (= 1 - kappa_final)" in " ".join(err)
    path = tmp_path / "text.json"
    path.write_text(json.dumps({"eval_method": "crown-ibp", "dev_limit": 3}))
    config = TrainConfig.from_file(path)
    assert (config.eval_methods, config.eval_limit) == (["crown-ibp"], 3)
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


@pytest.mark.parametrize(("command", "flag", "comma", "spaces", "key", "value"), [
    ("train", "--eval-budgets", ["1,2,3"], ["1", "2", "3"], "eval_budgets", [1, 2, 3]),
    ("train", "--lr-decay-epochs", ["2,4"], ["2", "4"], "lr_decay_epochs", [2, 4]),
    ("train", "--sources", ["qwerty,wordnet"], ["qwerty", "wordnet"], "sources",
     ["qwerty", "wordnet"]),
    ("train", "--eval-methods", ["ibp,crown-ibp"], ["ibp", "crown-ibp"], "eval_methods",
     ["ibp", "crown-ibp"]),
    ("vision train", "--mean", ["0.5,0.25"], ["0.5", "0.25"], "mean", [0.5, 0.25]),
    ("vision train", "--eval-methods", ["ibp,crown"], ["ibp", "crown"], "eval_methods",
     ["ibp", "crown"]),
])
def test_every_list_flag_reads_commas_and_spaces(command, flag, comma, spaces, key, value,
                                                 tmp_path, capsys):
    base = [*command.split(), "--out", str(tmp_path / "run"), "--print-config"]
    for words in (comma, spaces, [",".join(spaces[:1]), *spaces[1:]]):
        assert main([*base, flag, *words]) == 0
        assert json.loads(capsys.readouterr().out)[key] == value


def test_certify_lists_read_commas_and_spaces():
    from robusttext.certify.cli import parse_budgets

    certify = command_parser("certify")
    for words in (["1,2,any"], ["1", "2", "any"], ["1,2", "any"]):
        assert certify.parse_args(["--budget", *words]).budget == [1, 2, None]
    assert parse_budgets("1,any") == [1, None]
    vision = command_parser("vision certify")
    assert vision.parse_args(["--method", "ibp", "crown"]).method == ["ibp", "crown"]
    assert vision.parse_args([]).method == ["ibp", "crown-ibp"]
    for words in (["ibp,crown"], ["ibp", "crown"]):  # text's --method: the same list
        assert certify.parse_args(["--method", *words]).method == ["ibp", "crown"]
    assert certify.parse_args([]).method == ["auto"]


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--eval-budgets", "1,x"], "argument --eval-budgets: bad item 'x': expected an "
                                         "integer, got 'x'"),
    (["train", "--eval-methods", "ibp,nope"], "argument --eval-methods: 'nope' is not one of "),
    (["train", "--eval-method", "nope"], "argument --eval-method: 'nope' is not one of "),
    (["vision", "train", "--mean", "0.5", "dark"], "argument --mean: bad item 'dark'"),
    (["certify", "--budget", "1,two"], "argument --budget: bad item 'two': not an integer"),
    (["certify", "--budget", "-1"], "argument --budget: bad item '-1': a budget is an integer"),
    (["certify", "--method", "ibp,nope"], "argument --method: 'nope' is not one of "),
])
def test_a_bad_list_item_is_refused_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2, err


def test_help_shows_lists_with_commas():
    for command in ("train", "vision train", "certify", "vision certify"):
        text = command_parser(command).format_help()
        assert "[,N...]" in text or "[,M...]" in text or "[,NAME...]" in text
        assert " ...]]" not in text and "[N ...]" not in text  # no space-list metavar
    for command in ("certify", "vision certify"):
        assert "--method M[,M...]" in command_parser(command).format_help()


def test_text_and_vision_refuse_the_same_changes_on_resume(tmp_path):
    """The schedule and optimiser are declared once, with one resume rule: a resumed run
    keeps its --lr in text and vision alike; --epochs may grow."""
    from robusttext.train.cli import check_same_settings
    from robusttext.train.config import TrainConfig
    from robusttext.vision.cli import check_resume

    out = tmp_path / "vision"
    out.mkdir()
    (out / META_FILE).write_text(json.dumps({"training": {"config": VisionConfig().to_json(),
                                                          "epochs_done": 1}}))
    with pytest.raises(RobustTextError, match="--lr was 0.0005, now 0.001"):
        check_resume(out, VisionConfig(lr=1e-3, epochs=20))
    assert check_resume(out, VisionConfig(epochs=20)) is None
    text_out = tmp_path / "text"
    text_out.mkdir()
    (text_out / META_FILE).write_text(json.dumps({"training_config": TrainConfig(
        out=str(text_out)).to_json()}))
    with pytest.raises(RobustTextError, match="--lr was 0.001, now 0.002"):
        check_same_settings(TrainConfig(out=str(text_out), lr=2e-3))
    check_same_settings(TrainConfig(out=str(text_out), epochs=20))


def test_a_list_item_that_is_a_file_keeps_its_commas(tmp_path, capsys):
    """A source file whose path has a comma is one item; other words still split."""
    source = tmp_path / "neighbours,v2.json"
    source.write_text("{}")
    base = ["train", "--out", str(tmp_path / "run"), "--print-config", "--sources"]
    assert main([*base, str(source), "qwerty,wordnet"]) == 0
    assert json.loads(capsys.readouterr().out)["sources"] == [str(source), "qwerty", "wordnet"]
