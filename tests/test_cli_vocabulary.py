"""One vocabulary across the command line: help and choices on every option, the same
defaults for text and vision, old spellings kept for a release, --version, python -m."""

import argparse
import json
import subprocess
import sys

import pytest

import robusttext
from robusttext.cli import COMMANDS, build_parser, main
from robusttext.options import Deprecated


def subparsers(parser):
    """Every (name, parser) below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                yield from ((f"{name} {n}", p) for n, p in subparsers(child))


def all_commands():
    for name in COMMANDS:
        for path, parser in subparsers(build_parser([name])):
            if path.split()[0] == name:
                yield path, parser


COMMAND_PARSERS = dict(all_commands())


def test_every_option_has_help():
    assert {"certify", "perturb", "train", "vision", "vision train", "vision certify"} <= set(
        COMMAND_PARSERS)
    for path, parser in COMMAND_PARSERS.items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if isinstance(action, Deprecated):  # an old spelling: out of --help
                assert action.help == argparse.SUPPRESS, (path, action.option_strings)
                continue
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)


def test_fixed_values_are_choices():
    """Options whose values form a fixed set list them (shown by --help, checked by argparse)."""
    from robusttext.methods import BAB_METHOD
    from robusttext.text.kinds import MODEL_KINDS
    from robusttext.train.config import TrainConfig
    from robusttext.vision.cli import ARCHITECTURES, BOUND_METHODS
    from robusttext.vision.models import ARCHITECTURES as VISION_ARCHITECTURES
    from robusttext.vision.verify import BOUND_METHODS as VISION_METHODS

    HELP, CHOICES = TrainConfig.HELP, TrainConfig.CHOICES  # read from the fields' metadata

    assert set(HELP) == {f.name for f in TrainConfig.__dataclass_fields__.values()}
    assert set(ARCHITECTURES) == set(VISION_ARCHITECTURES)
    assert set(BOUND_METHODS) == set(VISION_METHODS) | {BAB_METHOD}  # bab: not a bound
    assert set(CHOICES["model"]) == set(MODEL_KINDS)

    def choices(path, dest):  # a list flag's: its ListOf's (options.ListOf checks each item)
        return next(a.choices or a.of.choices for a in COMMAND_PARSERS[path]._actions
                    if a.dest == dest and a.help != "deprecated"
                    and (a.choices or getattr(getattr(a, "of", None), "choices", None)))

    assert set(choices("train", "model")) == set(MODEL_KINDS)
    for dest in ("method", "tokenizer", "norm"):
        assert choices("train", dest)
    assert CHOICES["eval_methods"]  # a list flag: its items are checked by options.ListOf
    assert set(choices("vision train", "model")) == set(VISION_ARCHITECTURES)  # --architecture
    assert choices("certify", "method") and choices("certify", "relaxation")


def defaults(path):
    return {a.dest: a.default for a in COMMAND_PARSERS[path]._actions}


def test_same_defaults_for_text_and_vision():
    from robusttext.certify.cli import METHODS
    from robusttext.train.config import TrainConfig
    from robusttext.vision.train import TrainConfig as VisionConfig

    assert defaults("certify")["device"] == defaults("vision certify")["device"] == "auto"
    assert TrainConfig().device == VisionConfig().device == "auto"
    # a training log's dev "verified" is bounded the way certify bounds it by default
    assert TrainConfig().eval_methods == defaults("certify")["method"] == ["auto"]
    assert "auto" not in METHODS  # auto is resolved, per model, by pick_method


def test_version_and_python_m(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"robusttext {robusttext.__version__}"
    out = subprocess.run([sys.executable, "-m", "robusttext", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"robusttext {robusttext.__version__}"


HEAVY = ("transformers", "datasets", "matplotlib")


@pytest.mark.parametrize("argv,heavy", [
    (["--help"], (*HEAVY, "torch")), (["certify", "--help"], (*HEAVY, "torch")),
    (["perturb", "--help"], (*HEAVY, "torch")), (["train", "--help"], (*HEAVY, "torch")),
    (["vision", "--help"], (*HEAVY, "torch")), (["vision", "train", "--help"], (*HEAVY, "torch")),
    (["vision", "certify", "--help"], (*HEAVY, "torch")),
])
def test_help_loads_no_heavy_library(argv, heavy):
    """No --help imports torch, transformers, datasets or matplotlib."""
    code = "\n".join([
        "import sys", "from robusttext.cli import main", "try:", f"    main({argv!r})",
        "except SystemExit:", "    pass",
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_train_old_model_flag_still_works(tmp_path, capsys):
    assert main(["train", "--model", "bow", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == "bow"
    assert "--model is deprecated" in captured.err and "--architecture" in captured.err
    assert main(["train", "--architecture", "lstm", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "lstm"


def test_messages_name_flags(capsys):
    assert main(["train", "--budget", "-1", "--print-config"]) == 2
    assert "--budget must be >= 0, or any" in capsys.readouterr().err
    assert main(["train", "--epochs", "0", "--print-config"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_a_schedule_that_never_perturbs_is_named(tmp_path, monkeypatch, capsys):
    import robusttext.train.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda config: {"done": 1})
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "--epochs 1 ends within the warm-up (--warmup-epochs 1)" in out
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    assert "warm-up" not in capsys.readouterr().out
    assert main(["train", "--epochs", "1", "--robust-weight", "0", "--out",
                 str(tmp_path / "r")]) == 0
    assert "warm-up" not in capsys.readouterr().out  # normal training on purpose


def test_rerun_of_a_finished_run_says_so(tmp_path, capsys):
    from tests.builders import write_tsv

    argv = ["train", "--architecture", "char-cnn", "--embed-dim", "8", "--filters", "6",
            "--train", str(write_tsv(tmp_path / "t.tsv")), "--epochs", "1", "--warmup-epochs",
            "0", "--batch-size", "4", "--device", "cpu", "--out", str(tmp_path / "run"),
            "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    record = json.loads(next(line for line in first.splitlines() if line.startswith("{")))
    assert all(len(repr(v)) <= 8 for v in record.values() if isinstance(v, float))  # rounded
    assert main(argv) == 0
    assert "already trained for 1 epochs" in capsys.readouterr().out


def test_vision_vocabulary(tmp_path, capsys):
    """vision certify: --model is the checkpoint (a shipped name here); old spellings work
    with a deprecation message."""
    from robusttext.vision.cli import certify_names

    def names(*argv):
        return certify_names(COMMAND_PARSERS["vision certify"].parse_args(list(argv)))

    assert names() == ("fmnist-dm-small", None)
    assert names("--model", "runs/x", "--architecture", "dm-large") == ("runs/x", "dm-large")
    assert names("--checkpoint", "runs/x", "--model", "dm-large") == ("runs/x", "dm-large")
    assert names("--model", "dm-small") == ("fmnist-dm-small", "dm-small")
    err = capsys.readouterr().err
    assert "--checkpoint is deprecated" in err and "names an architecture" in err
    args = COMMAND_PARSERS["vision train"].parse_args(["--model", "dm-large", "--resume",
                                                       "--no-progress"])
    assert (args.model, args.quiet) == ("dm-large", True)  # the model setting: --architecture
    err = capsys.readouterr().err
    assert "--model is deprecated" in err and "--resume is deprecated" in err


def test_vision_train_resumes_like_text_train(tmp_path, capsys):
    from tests.builders import write_idx_folder

    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx_folder(folder)
    common = ["vision", "train", "--data", str(folder), "--method", "ibp", "--eps", "0.02",
              "--epochs", "1", "--batch-size", "24", "--pgd-steps", "1", "--device", "cpu",
              "--quiet"]
    argv = [*common, "--warmup-epochs", "0", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0  # no --resume needed, and nothing retrained
    captured = capsys.readouterr()
    assert "already trained for 1 epochs" in captured.err and "clean_accuracy" in captured.out
    assert main([*argv, "--seed", "5"]) == 2
    err = capsys.readouterr().err  # worded as text's train words it
    assert "holds a run with other settings (--seed was 0, now 5); a run resumes with" in err
    assert main([*common, "--warmup-epochs", "1", "--out", str(tmp_path / "other")]) == 0
    assert "no step perturbs the inputs" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs Debian's dataset-fashion-mnist")
def test_vision_certify_json_to_standard_output(capsys):
    assert main(["vision", "certify", "--model", "fmnist-dm-small", "--limit", "20",
                 "--pgd-steps", "1", "--method", "ibp", "--json", "-", "--quiet"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert metrics["n"] == 20 and "verified ibp" in captured.err  # the table


def test_kind_names_match_the_model_registry():
    """train --help lists the kinds without loading torch; the registry has the same names."""
    from robusttext.text.kind_names import MODEL_KIND_NAMES
    from robusttext.text.kinds import MODEL_KINDS

    assert tuple(MODEL_KINDS) == MODEL_KIND_NAMES


def test_engine_constants_are_the_declared_ones():
    """certify --help shows the relaxations and alpha-CROWN's steps without loading torch;
    the engine uses the same values."""
    from robusttext.bounds import RELAXATIONS
    from robusttext.bounds.alpha import ALPHA_STEPS
    from robusttext.methods import ALPHA_STEPS as DECLARED_STEPS
    from robusttext.methods import RELAXATIONS as DECLARED

    assert RELAXATIONS == DECLARED and ALPHA_STEPS == DECLARED_STEPS


def test_lazy_packages_export_what_they_did():
    """The packages import their torch modules on first use, yet a submodule loaded first
    (certify.margins, train.evaluate) does not replace the function of the same name."""
    code = "\n".join([
        "import types, robusttext.certify.certifier, robusttext.train.trainer",
        "from robusttext.certify import margins, certify",
        "from robusttext.train import evaluate, TrainConfig",
        "from robusttext.text import load_text_model",
        "from robusttext.perturb import PerturbationSpace",
        "print(all(not isinstance(f, types.ModuleType) for f in "
        "(margins, certify, evaluate, TrainConfig, load_text_model, PerturbationSpace)))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "True"


@pytest.mark.parametrize("package", ["robusttext.certify", "robusttext.perturb",
                                     "robusttext.text", "robusttext.train"])
def test_every_exported_name_resolves(package):
    """Each name a lazy package exports is found where its table says."""
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
