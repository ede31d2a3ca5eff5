"""The settings base shared by text and vision training: one reading, one type check, flags
generated from the fields."""

import argparse
import json

import pytest

from robusttext.errors import RobustTextError
from robusttext.train.config import TrainConfig
from robusttext.vision.config import TrainConfig as VisionConfig


@pytest.mark.parametrize("cls", [TrainConfig, VisionConfig])
def test_both_configs_read_a_dict_or_a_file_the_same_way(cls, tmp_path):
    assert cls.from_dict({"epochs": 3, "_note": "kept out"}).epochs == 3
    with pytest.raises(RobustTextError, match="where: unknown setting.s. epoch"):
        cls.from_dict({"epoch": 3}, where="where")
    with pytest.raises(RobustTextError, match="a configuration is a JSON object"):
        cls.from_dict([1])
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"epochs": 2, "seed": 7}))
    config = cls.from_file(path)
    assert (config.epochs, config.seed) == (2, 7)
    assert cls.from_dict(config.to_json()) == config


def test_types_are_checked_against_the_annotations():
    for bad in ({"epochs": "3"}, {"epochs": True}, {"sources": ["qwerty", 3]}, {"lr": None}):
        with pytest.raises(RobustTextError, match="--"):
            TrainConfig.from_dict(bad)
    assert TrainConfig.from_dict({"lr": 1}).lr == 1  # an int is a float
    vision = VisionConfig(mean=[0.5], std=[0.2], train_limit=None)
    vision.validate()
    for name, value in (("mean", ["a"]), ("augment", 1), ("epochs", 2.0)):
        with pytest.raises(RobustTextError, match=f"--{name}"):
            VisionConfig(**{name: value}).validate()


def test_flags_come_from_the_fields_with_help_and_choices():
    parser = argparse.ArgumentParser()
    VisionConfig.add_flags(parser, ("epochs", "train_limit", "method", "augment", "mean"))
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(actions) == {"epochs", "train_limit", "method", "augment", "mean"}
    assert all(a.help for a in actions.values())
    assert actions["method"].choices == VisionConfig.CHOICES["method"]
    args = parser.parse_args(["--epochs", "4", "--train-limit", "none", "--no-augment",
                              "--mean", "0.1", "0.2"])
    assert VisionConfig.flag_values(args) == {"epochs": 4, "train_limit": None,
                                             "augment": False, "mean": [0.1, 0.2]}
    assert VisionConfig.flag_values(parser.parse_args([])) == {}  # not given: not set


def test_vision_train_none_on_the_command_line_clears_a_value_of_the_file(tmp_path, monkeypatch):
    """``--train-limit none`` overrides the file's 100 (it used to be dropped as "not given")."""
    import robusttext.vision.train
    from robusttext.cli import main

    seen = {}

    def fake_train(config, resume, progress):
        seen.update(train_limit=config.train_limit, epochs=config.epochs)
        return {}

    monkeypatch.setattr(robusttext.vision.train, "train", fake_train)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"train_limit": 100, "epochs": 2, "out": str(tmp_path / "out")}))
    main(["vision", "train", "--config", str(config), "--train-limit", "none", "--quiet"])
    assert seen == {"train_limit": None, "epochs": 2}


def test_a_setting_is_written_once_and_its_flag_help_and_resume_are_read_from_it():
    """A field made by ``setting`` carries its help, choices, flag, metavar and resume
    behaviour; ``@settings`` refuses a field made otherwise."""
    import dataclasses

    from robusttext.config import MAY_CHANGE, SAME, Settings, setting, settings

    @settings
    class Run(Settings):
        kind: str = setting("a", resume=SAME, choices=("a", "b"), flag="--shape", help="kind")
        size: int | None = setting(None, resume=SAME, model=True, help="size (default: its)")
        path: str = setting("x", resume=MAY_CHANGE, metavar="FOLDER", help="where")
        names: list[str] = setting(["p"], resume=MAY_CHANGE, help="names")

    parser = argparse.ArgumentParser()
    Run.add_flags(parser)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert actions["kind"].option_strings == ["--shape"]
    assert actions["kind"].choices == ("a", "b") and actions["kind"].help == "kind (default: a)"
    assert actions["size"].help == "size (default: its)" and actions["size"].metavar == "N|none"
    assert actions["path"].metavar == "FOLDER"
    assert Run.names(resume=SAME) == ("kind", "size") and Run.names(model=True) == ("size",)
    assert Run.flag_of("kind") == "--shape" and Run.flag_of("path") == "--path"
    first, second = Run(), Run()
    first.names.append("q")
    assert second.names == ["p"]  # a list default is copied per instance
    with pytest.raises(TypeError, match="size not made by setting"):
        @settings
        class Bare(Settings):
            size: int = dataclasses.field(default=1)
    with pytest.raises(TypeError, match="resume must be one of"):
        setting(1, resume="maybe", help="x")


def test_the_resume_groups_are_those_the_trainers_checked_before():
    """The groups read from the fields are the lists the trainers wrote out by hand."""
    from robusttext.config import COMMAND, MAY_CHANGE
    from robusttext.train.cli import MAY_CHANGE_ON_RESUME
    from robusttext.train.trainer import MODEL_SETTINGS, SAME_ON_RESUME
    from robusttext.vision.cli import SAME_ON_RESUME as VISION_SAME

    model = {"embed_dim", "filters", "width", "hidden", "heads", "ffn", "max_length", "norm",
             "layers", "projection", "dropout", "layer_norm_eps", "query_init"}
    assert set(MODEL_SETTINGS) == model
    assert set(SAME_ON_RESUME) == {"model", *model, "pretrained", "vectors", "vocab_from_space",
                                   "alias_candidates", "validation_fraction", "select_by",
                                   "train", "train_split", "train_limit", "min_count",
                                   "max_vocab", "sources", "space_file", "budget", "tokenizer",
                                   "max_candidates", "stop_words", "wordnet_senses", "seed",
                                   "batch_size"}
    assert set(MAY_CHANGE_ON_RESUME) == {"epochs", "device", "amp", "out", "progress", "dev",
                                         "dev_split", "eval_limit", "eval_budgets",
                                         "eval_methods", "eval_all_words", "enumerate_limit",
                                         "time_limit_minutes"}
    schedule = {"robust_weight_start", "robust_weight", "beta_start", "beta_final",
                "warmup_epochs", "ramp_epochs", "lr", "grad_clip", "oracle_every",
                "lr_decay_epochs", "lr_decay"}
    assert set(TrainConfig.names(resume=COMMAND)) == {
        "start_from", "freeze_embeddings", "method", "weight_decay", *schedule}
    # vision's command refuses the same shared settings as text's (the schedule, lr included)
    assert set(VISION_SAME) == {"data", "model", "method", "eps_train", "seed", "batch_size",
                                "train_limit", "schedule", "augment", *schedule}
    assert set(VisionConfig.names(resume=MAY_CHANGE)) == (
        set(VisionConfig.__dataclass_fields__) - set(VISION_SAME))


def test_text_and_vision_declare_their_shared_settings_once():
    """The schedule, optimiser and run settings are ``TrainingSettings``' fields in both, with
    the same help, choices and resume behaviour; only a default may differ."""
    import dataclasses

    from robusttext.config import TrainingSettings

    shared = {f.name: f for f in dataclasses.fields(TrainingSettings)}
    assert {"epochs", "warmup_epochs", "ramp_epochs", "robust_weight", "beta_start", "lr",
            "lr_decay_epochs", "lr_decay", "grad_clip", "oracle_every", "seed", "batch_size",
            "device", "out", "eval_limit"} <= set(shared)
    for config in (TrainConfig, VisionConfig):
        fields = {f.name: f for f in dataclasses.fields(config)}
        for name, field in shared.items():
            assert fields[name].metadata == field.metadata, (config, name)
    assert (TrainConfig().lr, VisionConfig().lr) == (1e-3, 5e-4)
    assert TrainConfig.HELP["eval_methods"] == VisionConfig.HELP["eval_methods"]
