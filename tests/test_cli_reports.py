"""Reports a newcomer reads: the JSON's fields for a misclassified sentence, the HTML page's
explanations, labels, margins, version and command, the plot's axes and legend, --quiet for
the Hugging Face libraries, and the note on a checkpoint whose training was interrupted."""

import json
import os

import pytest
import torch

from robusttext.cli import main
from robusttext.perturb import PerturbationSpace, SynonymTable, Vocabulary
from robusttext.text import WordCNN, load_text_model, save_text_model
from tests.builders import SENTENCES, SYNONYMS, write_tsv


def predictions(word_model) -> list[int]:
    """The model's class for each of SENTENCES, by a direct forward pass."""
    bundle = load_text_model(word_model)
    out = []
    for text, _ in SENTENCES:
        batch = bundle.space.encode([text], bundle.vocab)
        with torch.no_grad():
            out.append(int(bundle.model(batch.token_ids, batch.mask).argmax(1)))
    return out


def test_json_says_misclassified_not_attacked(word_model, tmp_path):
    predicted = predictions(word_model)
    # every label flipped: each sentence is misclassified, none needs an attack
    wrong = write_tsv(tmp_path / "wrong.tsv", [(t, 1 - p) for (t, _), p in
                                               zip(SENTENCES, predicted)])
    out = tmp_path / "r.json"
    assert main(["certify", "--model", str(word_model), "--data", str(wrong), "--budget", "1",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for e in report["examples"]:
        assert e["misclassified"] is True and e["attacked"] is False
    assert report["summary"][0]["attack_accuracy"] == 0


def test_html_explains_itself(word_model, data, tmp_path):
    page = tmp_path / "p.html"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget", "1",
                 "--html", str(page), "--quiet"]) == 0
    text = page.read_text()
    for words in ("How to read this page", "margin: the logit of the label minus",
                  "glue tokens: the sentence split on whitespace", "budget-ibp bounds:",
                  "exact relaxation:", "robusttext 0.1.0", "command: <code>robusttext certify "
                  "--model", "class 0 / class", "certified margin"):
        assert words in text, words
    assert "margin -0.00" not in text and "margin -0<" not in text


def test_margin_text_has_no_signed_zero():
    from robusttext.certify.html import margin_text

    assert margin_text(-0.0004) == "-0.0004"
    assert margin_text(-1e-12) == "-1e-12"
    assert margin_text(-0.0) == "0" and margin_text(1.23456) == "1.23"


def fake_results(budgets_per_model):
    from robusttext.certify.results import BudgetSummary, Certification

    def summary(b):
        return BudgetSummary(b, 10, 0.9, 0.8, 0.7 - 0.1 * b, 0.75, 10, 0, 0, 0)

    return {f"model-{i}": Certification([summary(b) for b in budgets], [], {})
            for i, budgets in enumerate(budgets_per_model)}


def test_plot_of_several_budgets_has_integer_ticks_and_a_legend_beside_the_data():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robusttext.certify.report import accuracy_figure

    fig = accuracy_figure(fake_results([[1, 2, 3]] * 7))
    try:
        (ax,) = fig.axes
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks == [1, 2, 3]
        fig.canvas.draw()
        legend = ax.get_legend()
        assert len(legend.get_texts()) == 7 + 2  # a colour per model, a style per figure
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    finally:
        plt.close(fig)


def test_plot_of_one_budget_per_model_is_bars():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robusttext.certify.report import accuracy_figure

    fig = accuracy_figure(fake_results([[1], [3], [1]]))
    try:
        (ax,) = fig.axes
        assert len(ax.patches) == 2 * 3 and not ax.lines
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[1] == "model-1\n3 positions"
    finally:
        plt.close(fig)


def test_quiet_quiets_the_hugging_face_libraries(word_model, monkeypatch, capsys):
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                 "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["certify", "--model", str(word_model), "a good movie", "--quiet"]) == 0
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                 "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        monkeypatch.delenv(name, raising=False)  # leave the process as it was


def test_an_interrupted_training_is_named(tmp_path, data, capsys):
    torch.manual_seed(0)
    words = [w for s, _ in SENTENCES for w in s.split()] + [w for v in SYNONYMS.values()
                                                            for w in v]
    vocab = Vocabulary(dict.fromkeys(words))
    space = PerturbationSpace(SynonymTable(SYNONYMS), budget=2)
    folder = save_text_model(tmp_path / "half", WordCNN(len(vocab), embed_dim=8, filters=6),
                             vocab, space, training_config={"epochs": 10},
                             state={"epoch": 3, "step": 30})
    assert main(["certify", "--model", str(folder), "--data", str(data), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "its training was interrupted after epoch 3 of 10" in out
    finished = save_text_model(tmp_path / "done", WordCNN(len(vocab), embed_dim=8, filters=6),
                               vocab, space, training_config={"epochs": 10},
                               state={"epoch": 10, "step": 100})
    assert main(["certify", "--model", str(finished), "--data", str(data), "--quiet"]) == 0
    assert "training was interrupted" not in capsys.readouterr().out


def test_a_created_output_folder_is_said(word_model, data, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "r.json"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--json",
                 str(out), "--quiet"]) == 0
    assert f"(created the folder {out.parent})" in capsys.readouterr().out
    assert json.loads(out.read_text())["examples"]
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--json",
                 str(out), "--quiet"]) == 0
    assert "created the folder" not in capsys.readouterr().out
