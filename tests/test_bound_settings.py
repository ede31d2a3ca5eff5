"""The method choice as one frozen value (``robusttext.methods.BoundSettings``), carried from
certify's flags to the engine unchanged."""

import dataclasses
import json

import pytest

from robusttext.errors import RobustTextError
from robusttext.methods import ALPHA_STEPS, BoundSettings, bound_settings


def test_a_name_and_keywords_make_one_value_and_a_value_is_taken_whole():
    assert bound_settings("ibp") == BoundSettings("ibp", "exact", 20, 10.0)
    assert ALPHA_STEPS == 20
    made = bound_settings("alpha-crown", relaxation="box", alpha_steps=3, exact_time_limit=None)
    assert (made.method, made.relaxation, made.alpha_steps, made.exact_time_limit) == (
        "alpha-crown", "box", 3, 10.0)
    assert bound_settings(made) is made
    with pytest.raises(RobustTextError, match="give alpha_steps inside the BoundSettings"):
        bound_settings(made, alpha_steps=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.alpha_steps = 5
    assert made.resolved("crown") == BoundSettings("crown", "box", 3, 10.0)


def test_certify_reads_one_value_as_it_reads_the_keywords(word_model):
    from robusttext.certify import certify
    from robusttext.text import load_text_model
    from tests.builders import SENTENCES

    bundle = load_text_model(word_model)
    model, vocab, space, examples = bundle.model, bundle.vocab, bundle.space, SENTENCES
    by_keywords = certify(model, vocab, space, examples, budgets=[1], method="alpha-crown",
                          relaxation="box", alpha_steps=2)
    by_value = certify(model, vocab, space, examples, budgets=[1],
                       method=BoundSettings("alpha-crown", "box", 2))
    assert [r.margin_lower for r in by_value.examples] == [
        r.margin_lower for r in by_keywords.examples]
    assert (by_value.settings["relaxation"], by_value.settings["alpha_steps"]) == ("box", 2)
    with pytest.raises(RobustTextError, match="give relaxation inside the BoundSettings"):
        certify(model, vocab, space, examples, method=BoundSettings("ibp"), relaxation="box")


@pytest.mark.parametrize("sentence", [False, True])
def test_the_flags_reach_the_engine_as_one_value(word_model, data, monkeypatch, capsys,
                                                  sentence):
    """--method, --relaxation and --alpha-steps arrive at certify as one BoundSettings, and
    its steps at ``compute_bounds`` (the engine), for --data and for one SENTENCE alike."""
    import robusttext.bounds.specs as specs
    import robusttext.certify.certifier as certifier
    from robusttext.cli import main

    given, steps = [], set()
    real_certify, real_bounds = certifier.certify, specs.compute_bounds

    def spy_certify(*args, **kwargs):
        given.append(kwargs["method"])
        return real_certify(*args, **kwargs)

    def spy_bounds(*args, **kwargs):
        steps.add(kwargs.get("alpha_steps"))
        return real_bounds(*args, **kwargs)

    monkeypatch.setattr(certifier, "certify", spy_certify)
    monkeypatch.setattr(specs, "compute_bounds", spy_bounds)  # the engine, as the one margins
    # function (bounds.specs.margin_lower_bounds) calls it
    where = ["a good movie"] if sentence else ["--data", str(data), "--limit", "2"]
    assert main(["certify", "--model", str(word_model), *where, "--budget", "1", "--method",
                 "alpha-crown", "--relaxation", "box", "--alpha-steps", "3", "--json", "-",
                 "--quiet"]) == 0
    assert given == [BoundSettings("alpha-crown", "box", 3, 10.0)]
    assert steps == {3}
    report = json.loads(capsys.readouterr().out)
    settings = next(iter(report["models"].values()))["settings"]
    assert (settings["method"], settings["relaxation"], settings["alpha_steps"]) == (
        "alpha-crown", "box", 3)


def test_vision_carries_the_flags_to_the_engine_as_one_value(monkeypatch, capsys):
    """vision certify's --method list and --alpha-steps become one BoundSettings per method;
    evaluate bounds with its steps and keys the results by method name."""
    import torch

    import robusttext.bounds.specs as specs
    from robusttext.cli import main
    from robusttext.vision.cli import bound_methods
    from robusttext.vision.data import ImageDataset
    from robusttext.vision.evaluate import evaluate

    assert bound_methods("ibp, alpha-crown", 3) == (BoundSettings("ibp", alpha_steps=3),
                                                    BoundSettings("alpha-crown", alpha_steps=3))
    assert bound_methods("crown", None) == (BoundSettings("crown"),)
    with pytest.raises(RobustTextError, match="--alpha-steps 3 goes with --method alpha-crown, "
                                              "not --method ibp,crown"):
        bound_methods("ibp,crown", 3)
    assert main(["vision", "certify", "--method", "ibp", "--alpha-steps", "2"]) == 2
    assert "--alpha-steps 2 goes with --method alpha-crown" in capsys.readouterr().err

    steps = []
    real = specs.compute_bounds

    def spy(*args, **kwargs):
        steps.append((args[2], kwargs.get("alpha_steps")))
        return real(*args, **kwargs)

    monkeypatch.setattr(specs, "compute_bounds", spy)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5), torch.nn.ReLU(),
                                torch.nn.Linear(5, 3))
    data = ImageDataset(torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2]))
    result = evaluate(model, data, 0.05, pgd_steps=0, progress=False,
                      methods=bound_methods("crown,alpha-crown", 4))
    assert set(result.verified) == {"crown", "alpha-crown"}
    assert steps == [("crown", 4), ("alpha-crown", 4)]
    by_name = evaluate(model, data, 0.05, pgd_steps=0, progress=False, methods=("crown",))
    assert torch.equal(by_name.verified["crown"], result.verified["crown"])
