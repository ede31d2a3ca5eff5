"""The shipped models carry what their certificates are about: the perturbation space, the
measured figures and, where the space is someone else's data, its attribution."""

import json
from pathlib import Path

import pytest

from robusttext.shipped import shipped_model_path
from robusttext.text import SHIPPED_MODELS, load_text_model

HUANG_MAP = Path(__file__).resolve().parents[2] / "shared" / "data" / (
    "character_substitution_enkey_sub1.json")


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_text_model_has_its_dev_figures(name):
    metrics = load_text_model(name).meta["metrics"]
    assert metrics["examples"] == 872 and 0 < metrics["clean_accuracy"] <= 1
    assert all(0 <= v <= metrics["clean_accuracy"] for v in metrics["verified_accuracy"].values())


@pytest.mark.skipif(not HUANG_MAP.is_file(), reason=f"{HUANG_MAP} absent")
def test_char_enkey_carries_huang_et_al_s_map_and_its_attribution():
    bundle = load_text_model("char-enkey")
    (source,) = bundle.space.sources
    published = json.loads(HUANG_MAP.read_text())
    assert {k: list(v) for k, v in source.keyboard.items()} == published
    assert bundle.space.budget == 1
    notice = " ".join((shipped_model_path("char-enkey") / "NOTICE.md").read_text().split())
    assert "Huang" in notice and "Apache License, Version 2.0" in notice
    assert "interval-bound-propagation" in notice
