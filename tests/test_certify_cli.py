"""``robusttext certify`` end to end on a tiny saved model and a few sentences, offline."""

import json

import pytest
import torch

from robusttext.cli import main
from robusttext.perturb import CharacterFlips, PerturbationSpace, Vocabulary
from robusttext.text import CharCNN, save_text_model
from tests.builders import SENTENCES, write_tsv


def test_end_to_end(word_model, data, tmp_path, capsys):
    out, png = tmp_path / "report.json", tmp_path / "plot.png"
    code = main(["certify", "--model", str(word_model), "--data", str(data), "--budget", "0,1,2",
                 "--method", "crown-ibp", "--json", str(out), "--plot", str(png)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "word-model: 5 sentences" in printed and "verified" in printed
    assert png.stat().st_size > 0
    report = json.loads(out.read_text())
    assert set(report) >= {"summary", "examples"}
    assert [s["budget"] for s in report["summary"]] == [0, 1, 2]
    for s in report["summary"]:
        assert s["n"] == 5 and s["model"] == "word-model"
        for key in ("clean_accuracy", "attack_accuracy", "verified_accuracy",
                    "exhaustive_accuracy"):
            assert 0 <= s[key] <= 1
        assert set(s["timings"]) == {"bounds_seconds", "attack_seconds", "exhaustive_seconds"}
        assert s["verified_accuracy"] <= s["exhaustive_accuracy"] <= s["attack_accuracy"]
    assert len(report["examples"]) == 15
    for e in report["examples"]:
        assert {"text", "label", "prediction", "certified", "margin_lower", "attacked",
                "exhaustive", "budget"} <= set(e)
        assert e["exhaustive"] in (True, False)  # these sets are small
        if e["certified"]:
            assert not e["attacked"] and e["exhaustive"]
    assert report["models"]["word-model"]["settings"]["method"] == "crown-ibp"


def test_default_budget_limit_and_jsonl(word_model, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": s, "label": l}) + "\n" for s, l in SENTENCES))
    out = tmp_path / "r.json"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--limit", "2",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(s["budget"], s["n"]) for s in report["summary"]] == [(2, 2)]  # the model's budget


def test_no_arguments_certifies_the_shipped_models(tmp_path, monkeypatch, capsys):
    """``robusttext`` alone: every shipped model on the demo sentences (both redirected to
    files written here)."""
    import robusttext.certify.cli as certify_cli
    import robusttext.shipped as shipped

    torch.manual_seed(0)
    chars = "abcdefghijklmnopqrstuvwxyz ,."
    vocab = Vocabulary(list(chars))
    space = PerturbationSpace(CharacterFlips(), budget=1, level="char")
    models = tmp_path / "models"
    save_text_model(models / "char-flips", CharCNN(len(vocab), embed_dim=6, filters=4), vocab,
                    space)
    (models / "xlm-counterfitted").mkdir()  # a transformers folder: named, never loaded
    monkeypatch.setattr(shipped, "MODELS_DIR", models)
    monkeypatch.setattr(certify_cli, "DEMO_SENTENCES",
                        write_tsv(tmp_path / "demo.tsv", SENTENCES[:3]))
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert "char-flips: 3 sentences" in printed
    assert "exhaustive" in printed
    assert ("not in the default run (transformers folders; importing transformers takes "
            "seconds): xlm-counterfitted; certify with --model xlm-counterfitted") in printed
    assert "xlm-counterfitted: " not in printed


def test_no_shipped_models(tmp_path, monkeypatch, capsys):
    import robusttext.shipped as shipped

    monkeypatch.setattr(shipped, "MODELS_DIR", tmp_path / "none")
    assert main(["certify"]) == 2
    assert "no shipped models" in capsys.readouterr().err


def test_bad_input(word_model, data, tmp_path, capsys):
    def error(*argv):
        try:  # refused while parsing (a list item, by options.ListOf), or after
            code = main(["certify", "--model", str(word_model), "--data", str(data), *argv])
        except SystemExit as stop:
            code = stop.code
        assert code == 2
        return capsys.readouterr().err

    assert "argument --budget: bad item '-1': a budget is an integer >= 0" in error(
        "--budget", "1,-1")
    assert "argument --budget: bad item 'x': not an integer" in error("--budget", "x")
    no_labels = write_tsv(tmp_path / "nolabel.tsv", [("a good movie", "x")],
                          header="sentence\tscore")
    assert "no label column 'label'" in error("--data", str(no_labels))
    wrong = write_tsv(tmp_path / "wrong.tsv", [("a good movie", 1), ("a bad plot", 5)])
    assert "wrong.tsv:3: label 5 is out of range" in error("--data", str(wrong))
    with pytest.raises(SystemExit):
        main(["certify", "--model", str(word_model), "--method", "fast"])
    assert "argument --method: 'fast' is not one of" in capsys.readouterr().err
    assert "no such model" in error("--model", str(tmp_path / "missing"))


def test_not_a_text_model(tmp_path, data, capsys):
    """A checkpoint folder that is not a text model: a clear error, no traceback."""
    from robusttext.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "other", torch.nn.Linear(2, 2), kind="dm-small", model_config={})
    assert main(["certify", "--model", str(tmp_path / "other"), "--data", str(data)]) == 2
    assert "dm-small" in capsys.readouterr().err


def test_soundness_violation_exit_code(word_model, data, monkeypatch, capsys):
    import robusttext.certify.certifier as certifier

    monkeypatch.setattr(certifier, "margin_lower_bounds",
                        lambda problem, *a, **k: torch.full((problem.C.shape[0], 1), 9.0))
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget",
                 "1"]) == 3
    assert "SOUNDNESS VIOLATION" in capsys.readouterr().err


def test_plot_without_matplotlib(word_model, data, tmp_path, monkeypatch, capsys):
    """Plots are optional: without matplotlib, --plot fails before any work, clearly."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--plot",
                 str(tmp_path / "p.png")]) == 2
    assert "pip install 'robusttext[plot]'" in capsys.readouterr().err


def test_alpha_crown_certifies_at_least_what_crown_does(word_model, data, tmp_path, capsys):
    reports = {}
    for method, extra in (("crown", []), ("alpha-crown", ["--alpha-steps", "5"])):
        out = tmp_path / f"{method}.json"
        code = main(["certify", "--model", str(word_model), "--data", str(data), "--budget",
                     "1,2", "--method", method, "--json", str(out), *extra])
        assert code == 0, capsys.readouterr()
        reports[method] = json.loads(out.read_text())
    crown, alpha = (reports[m]["examples"] for m in ("crown", "alpha-crown"))
    assert [(e["text"], e["budget"]) for e in crown] == [(e["text"], e["budget"]) for e in alpha]
    for c, a in zip(crown, alpha):
        assert a["margin_lower"] >= c["margin_lower"]
        assert a["certified"] >= c["certified"]
    code = main(["certify", "--model", str(word_model), "--data", str(data), "--method",
                 "alpha-crown", "--alpha-steps", "-1"])
    assert code == 2
    assert "--alpha-steps must be at least 0, got -1" in capsys.readouterr().err
