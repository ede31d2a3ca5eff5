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
    vision = VisionConfig(mean=[0.5], std=[0.2], train_subset=None)
    vision.validate()
    for name, value in (("mean", ["a"]), ("augment", 1), ("epochs", 2.0)):
        with pytest.raises(RobustTextError, match=f"--{name}"):
            VisionConfig(**{name: value}).validate()


def test_flags_come_from_the_fields_with_help_and_choices():
    parser = argparse.ArgumentParser()
    VisionConfig.add_flags(parser, ("epochs", "train_subset", "method", "augment", "mean"))
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(actions) == {"epochs", "train_subset", "method", "augment", "mean"}
    assert all(a.help for a in actions.values())
    assert actions["method"].choices == VisionConfig.CHOICES["method"]
    args = parser.parse_args(["--epochs", "4", "--train-subset", "none", "--no-augment",
                              "--mean", "0.1", "0.2"])
    assert VisionConfig.flag_values(args) == {"epochs": 4, "train_subset": None,
                                             "augment": False, "mean": [0.1, 0.2]}
    assert VisionConfig.flag_values(parser.parse_args([])) == {}  # not given: not set


def test_vision_train_none_on_the_command_line_clears_a_value_of_the_file(tmp_path, monkeypatch):
    """``--train-subset none`` overrides the file's 100 (it used to be dropped as "not given")."""
    import robusttext.vision.train
    from robusttext.cli import main

    seen = {}

    def fake_train(config, resume, progress):
        seen.update(train_subset=config.train_subset, epochs=config.epochs)
        return {}

    monkeypatch.setattr(robusttext.vision.train, "train", fake_train)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"train_subset": 100, "epochs": 2, "out": str(tmp_path / "out")}))
    main(["vision", "train", "--config", str(config), "--train-subset", "none", "--quiet"])
    assert seen == {"train_subset": None, "epochs": 2}
