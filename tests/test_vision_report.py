"""`robusttext vision certify`'s report: the table with its legend, JSON without float32
rounding, the HTML page with the images and PGD's counterexamples, the plot."""

from __future__ import annotations

import base64
import html
import io
import json
import re

import pytest
import torch

from robusttext.cli import main
from robusttext.vision.data import load_images
from robusttext.vision.evaluate import Evaluation, evaluate
from robusttext.vision.io import load_model
from robusttext.vision.report import LEGEND, format_table, png_data_uri, report_json
from robusttext.vision.train import TrainConfig, train
from tests.builders import write_idx_folder

EPS = 0.02


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny IDX folder and a dm-small trained on it for one epoch: ``(folder, checkpoint)``."""
    folder = tmp_path_factory.mktemp("idx")
    write_idx_folder(folder)
    out = tmp_path_factory.mktemp("run") / "small"
    config = TrainConfig(data=str(folder), model="dm-small", method="natural", eps_train=EPS,
                         eps_eval=EPS, epochs=1, batch_size=16, eval_batch_size=24,
                         pgd_steps=2, eval_methods=[], epoch_eval_methods=[], device="cpu",
                         out=str(out))
    train(config, progress=False, log=lambda *_: None)
    return folder, out


def test_accuracies_are_counts_over_the_total_without_float32_rounding():
    """714 of 1000 is 0.714 in the JSON, not the float32 mean 0.7139999866485596."""
    correct = torch.arange(1000) < 714
    robust = torch.arange(1000) < 500
    result = Evaluation(0.1, correct, robust, {"ibp": torch.arange(1000) < 123},
                        prediction=torch.zeros(1000, dtype=torch.long),
                        margins={"ibp": torch.zeros(1000)}, labels=torch.zeros(1000,
                                                                               dtype=torch.long))
    assert float(correct.float().mean()) != 0.714  # what float32 gives
    metrics = result.metrics()
    assert metrics["clean_accuracy"] == 0.714 and metrics["pgd_accuracy"] == 0.5
    assert metrics["ibp_verified_accuracy"] == 0.123
    report = report_json(result)
    assert report["attack_success_rate"] == (714 - 500) / 714
    assert json.dumps(report["clean_accuracy"]) == "0.714"


def test_table_has_a_row_of_the_figures_and_the_legend():
    correct = torch.tensor([True, True, True, False])
    robust = torch.tensor([True, True, False, False])
    verified = {"ibp": torch.tensor([True, False, False, False]),
                "crown-ibp": torch.tensor([True, True, False, False])}
    result = Evaluation(0.05, correct, robust, verified, pgd_attacked=3)
    lines = format_table(result, seconds=2.0).splitlines()
    header = lines[0].split()
    assert header[:2] == ["eps", "images"] and "seconds" in header
    assert "verified ibp" in lines[0] and "verified crown-ibp" in lines[0]
    assert set(lines[1]) == {"-"}
    # by hand: 3/4 clean, 2/4 under attack, 1 of the 3 correct flipped, 1/4 and 2/4 verified
    assert lines[2].split() == ["0.05", "4", "75.0%", "50.0%", "33.3%", "25.0%", "50.0%", "2.0"]
    assert lines[3] == LEGEND
    assert len(lines) == 4  # every correct image attacked: no note


def test_png_of_an_image_decodes_to_its_pixels():
    image_module = pytest.importorskip("PIL.Image")
    torch.manual_seed(0)
    for channels, mode in ((1, "L"), (3, "RGB")):
        image = torch.rand(channels, 5, 7)
        uri = png_data_uri(image)
        assert uri.startswith("data:image/png;base64,")
        decoded = image_module.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert decoded.mode == mode and decoded.size == (7, 5)
        expected = [[[round(float(image[c, y, x]) * 255) for c in range(channels)]
                     for x in range(7)] for y in range(5)]
        pixels = [[list(decoded.getpixel((x, y))) if channels == 3
                   else [decoded.getpixel((x, y))] for x in range(7)] for y in range(5)]
        assert pixels == expected


def test_kept_counterexamples_lie_in_the_ball_and_are_misclassified(run):
    folder, checkpoint = run
    model, _, _ = load_model(checkpoint)
    data = load_images(folder, "test")
    result = evaluate(model, data, 0.3, pgd_steps=5, methods=("ibp",), progress=False,
                      keep_counterexamples=True)
    flipped = (result.correct & ~result.pgd_robust).nonzero().flatten().tolist()
    assert flipped and sorted(result.counterexamples) == flipped
    for i, point in result.counterexamples.items():
        assert (point - data.images[i]).abs().max() <= 0.3 + 1e-6
        assert 0 <= point.min() and point.max() <= 1
        with torch.no_grad():
            assert int(model(point[None]).argmax()) != int(data.labels[i])
    assert torch.equal(result.labels, data.labels)


def test_cli_json_html_and_plot(run, tmp_path, capsys):
    folder, checkpoint = run
    report, page, figure = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.png"
    status = main(["vision", "certify", "--model", str(checkpoint), "--data", str(folder),
                   "--eps", "0.3", "--limit", "12", "--pgd-steps", "3", "--method",
                   "ibp,crown-ibp", "--json", str(report), "--html", str(page), "--plot",
                   str(figure), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert "verified crown-ibp" in out and LEGEND in out
    data = json.loads(report.read_text())
    assert data["n"] == 12 and len(data["examples"]) == 12
    labels = load_images(folder, "test").labels[:12].tolist()
    assert [e["label"] for e in data["examples"]] == labels
    right = sum(e["prediction"] == e["label"] for e in data["examples"])
    assert data["clean_accuracy"] == right / 12
    for e in data["examples"]:
        for m in ("ibp", "crown-ibp"):
            assert e["verified"][m] == (e["margin_lower"][m] > 0)
    text = page.read_text()
    flipped = sum(e["pgd_flipped"] for e in data["examples"])
    # one image per example, and beside each example PGD flipped its counterexample
    assert len(re.findall(r'alt="image \d+"', text)) == 12
    assert len(re.findall(r'alt="PGD counterexample \d+"', text)) == flipped
    assert text.count("data-bibp=") == 12 and text.count("data-bcrown-ibp=") == 12
    assert html.escape(LEGEND) in text and "crown-ibp bounds:" in text
    assert flipped and 'class="flipped"' in text
    pytest.importorskip("matplotlib")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_bad_report_paths_before_any_work(run, tmp_path, capsys):
    folder, checkpoint = run
    base = ["vision", "certify", "--model", str(checkpoint), "--data", str(folder)]
    assert main([*base, "--html", "-"]) == 2
    assert "--html -: it goes to a file" in capsys.readouterr().err
    same = str(tmp_path / "x.html")
    assert main([*base, "--json", same, "--html", same]) == 2
    assert "must name different files" in capsys.readouterr().err
    assert main([*base, "--plot", str(tmp_path / "x.txt")]) == 2
    assert "--plot" in capsys.readouterr().err
