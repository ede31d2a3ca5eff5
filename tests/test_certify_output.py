"""What ``robusttext certify`` prints and writes: progress, the table, ``--json -``, output
checks, one sentence seen whole, the HTML page (opened in headless Chromium when present)."""

import json
import shutil
import subprocess

import pytest
import torch

from robusttext.cli import main
from robusttext.perturb import PerturbationSpace, SynonymTable, Vocabulary
from robusttext.text import WordCNN, load_text_model, save_text_model
from tests.builders import SYNONYMS, write_tsv

SENTENCES = [("a good movie", 1), ("a bad plot", 0), ("good plot , bad movie", 1),
             ("the movie was bad", 0), ("fine film", 1), ("good good good movie", 0)]


@pytest.fixture
def word_model(tmp_path):
    """A seeded, untrained word CNN (seed 3: the attack flips some sentences, and with a
    one-proposal greedy search the enumeration finds flips the search misses)."""
    torch.manual_seed(3)
    words = [w for s, _ in SENTENCES for w in s.split()] + [w for v in SYNONYMS.values()
                                                            for w in v]
    vocab = Vocabulary(dict.fromkeys(words))
    space = PerturbationSpace(SynonymTable(SYNONYMS), budget=2)
    return save_text_model(tmp_path / "word-model", WordCNN(len(vocab), embed_dim=8, filters=6),
                           vocab, space)


@pytest.fixture
def data(tmp_path):
    return write_tsv(tmp_path / "data.tsv", SENTENCES)


def certify_json(word_model, data, tmp_path, *argv):
    out = tmp_path / "report.json"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--json", str(out),
                 *argv]) == 0
    return json.loads(out.read_text())


def misclassified(word_model, text: str, label: int) -> bool:
    """The model's prediction on ``text`` differs from ``label`` (a direct forward pass)."""
    bundle = load_text_model(word_model)
    batch = bundle.space.encode([text], bundle.vocab)
    with torch.no_grad():
        return int(bundle.model(batch.token_ids, batch.mask).argmax(1)) != label


def test_table_explains_itself(word_model, data, tmp_path, capsys):
    report = certify_json(word_model, data, tmp_path, "--budget", "1,2", "--enumerate-limit",
                          "3")
    printed = capsys.readouterr().out
    for words in ("under attack", "attack success", "verified", "exhaustive (enumerated)",
                  "legend: verified", "1 position", "2 positions"):
        assert words in printed, words
    # sentences whose set has more than 3 rewrites are named in a note per budget
    for s in report["summary"]:
        skipped = sum(e["exhaustive"] is None for e in report["examples"]
                      if e["budget"] == s["budget"])
        assert skipped == s["n"] - s["exhaustive_n"]
        noun = "position" if s["budget"] == 1 else "positions"
        if skipped:
            assert (f"at {s['budget']} {noun}, {skipped} of {s['n']} sentences have more "
                    "than 3 rewrites") in printed
        # attack success rate: flipped among the correctly classified
        mine = [e for e in report["examples"] if e["budget"] == s["budget"]]
        correct = [e for e in mine if e["prediction"] == e["label"]]
        assert s["attack_success_rate"] == pytest.approx(
            sum(e["attacked"] for e in correct) / len(correct))


def test_enumeration_off_is_noted(word_model, data, tmp_path, capsys):
    certify_json(word_model, data, tmp_path, "--budget", "1", "--enumerate-limit", "0")
    printed = capsys.readouterr().out
    assert "not enumerated" in printed and "enumeration is off (--enumerate-limit 0)" in printed


@pytest.mark.parametrize("search", [[], ["--beam-width", "1", "--proposals", "1"]])
def test_every_rewrite_shown_is_misclassified(word_model, data, tmp_path, search):
    """The rewrite reported (the attack's, or the enumeration's where the search missed it)
    is misclassified by a direct forward pass."""
    report = certify_json(word_model, data, tmp_path, "--budget", "0,1,2", *search)
    correct = [e for e in report["examples"] if e["prediction"] == e["label"]]
    assert any(e["attacked"] for e in correct)
    if search:
        assert any(e["exhaustive"] is False and not e["attacked"] for e in correct)
    for e in report["examples"]:
        if e["prediction"] != e["label"] or e["attacked"] or e["exhaustive"] is False:
            assert e["rewrite"] is not None
            assert misclassified(word_model, e["rewrite"], e["label"])
        else:
            assert e["rewrite"] is None


def test_json_to_standard_output(word_model, data, capsys):
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--json", "-",
                 "--budget", "1"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # nothing else on stdout
    assert [s["budget"] for s in report["summary"]] == [1]
    assert "legend" in captured.err and "word-model" in captured.err


@pytest.mark.parametrize("flag,name,message", [
    ("--html", "page.txt", "must end in .html"),
    ("--plot", "plot.tsv", "must end in .png"),
    ("--json", "folder", "is a folder"),
    ("--json", "data.tsv/inside.json", "is not a folder"),
    ("--html", "-", "the page goes to a file"),
])
def test_outputs_checked_before_any_work(word_model, data, tmp_path, monkeypatch, capsys,
                                         flag, name, message):
    import robusttext.text as text

    (tmp_path / "folder").mkdir()
    monkeypatch.setattr(text, "load_text_model", lambda *a, **k: pytest.fail("work started"))
    target = "-" if name == "-" else str(data.parent / name)
    assert main(["certify", "--model", str(word_model), "--data", str(data), flag,
                 target]) == 2
    assert message in capsys.readouterr().err


def test_progress_names_the_step(word_model, data, capsys):
    from robusttext.certify import certify

    bundle = load_text_model(word_model)
    certify(bundle.model, bundle.vocab, bundle.space, SENTENCES, budgets=[1, 2],
            progress=True)
    err = capsys.readouterr().err
    assert "certify" in err and "bounds, budget" in err and "enumerating" in err


@pytest.mark.parametrize("argv,expected", [([], None), (["--quiet"], False)])
def test_quiet(word_model, data, monkeypatch, capsys, argv, expected):
    """Without --quiet the bar shows when stderr is a terminal (tqdm's None); --quiet: never."""
    import robusttext.certify.certifier as certifier

    seen = {}
    real = certifier.certify

    def spy(*args, progress=None, **kwargs):
        seen["progress"] = progress
        return real(*args, progress=progress, **kwargs)

    monkeypatch.setattr(certifier, "certify", spy)
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget", "1",
                 *argv]) == 0
    assert seen["progress"] is expected


def test_one_sentence_seen_whole(word_model, capsys):
    assert main(["certify", "--model", str(word_model), "good good good movie", "--budget",
                 "0,1,2"]) == 0
    printed = capsys.readouterr().out
    assert "prediction: class" in printed and "may change: 4 of 4 positions" in printed
    assert "good -> 2: great, fine" in printed and "movie -> 1: film" in printed
    lines = {line.split(":")[0]: line for line in printed.splitlines()
             if line.startswith("budget ")}
    assert set(lines) == {"budget 0 positions", "budget 1 position", "budget 2 positions"}
    assert "CERTIFIED" in lines["budget 0 positions"]  # the prediction is the label
    assert "; 1 sentence in the set;" in lines["budget 0 positions"]  # the sentence alone
    for line in lines.values():
        assert "certified margin (lower bound)" in line and " in the set" in line
        if "flips it: " in line:
            rewrite = line.split("flips it: ")[1].split(";")[0]
            assert misclassified(word_model, rewrite, label_of(word_model, "good good good "
                                                                           "movie"))


def label_of(word_model, text):
    bundle = load_text_model(word_model)
    batch = bundle.space.encode([text], bundle.vocab)
    with torch.no_grad():
        return int(bundle.model(batch.token_ids, batch.mask).argmax(1))


def test_one_sentence_flip_is_shown(word_model, capsys):
    """With the wrong label given, the sentence itself is misclassified and said so."""
    wrong = 1 - label_of(word_model, "a good movie")
    assert main(["certify", "--model", str(word_model), "a good movie", "--label", str(wrong),
                 "--budget", "1"]) == 0
    printed = capsys.readouterr().out
    assert "MISCLASSIFIED" in printed and "the sentence itself is misclassified" in printed
    assert "--label 5: the model has 2 classes" in error(
        ["certify", "--model", str(word_model), "a good movie", "--label", "5"], capsys)
    assert "--html goes with --data" in error(
        ["certify", "--model", str(word_model), "a good movie", "--html", "x.html"], capsys)


def error(argv, capsys):
    assert main(argv) == 2
    return capsys.readouterr().err


def html_report(word_model, data, tmp_path):
    page = tmp_path / "report.html"
    assert main(["certify", "--model", str(word_model), "--data", str(data), "--budget",
                 "1,2", "--html", str(page), "--quiet"]) == 0
    return page


def test_html_report(word_model, data, tmp_path, capsys):
    text = html_report(word_model, data, tmp_path).read_text()
    assert text.startswith("<!DOCTYPE html>")
    for fetch in ("src=", "href=", "http://", "https://", "@import"):
        assert fetch not in text  # self-contained
    assert text.count("<tr data-b1=") == len(SENTENCES)
    assert 'class="may"' in text and "<svg" in text and "legend: verified" in text
    assert 'id="outcome"' in text and 'id="budget"' in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_html_report_in_chromium(word_model, data, tmp_path, capsys):
    """The page renders in a real browser and its script runs (the dumped DOM holds the row
    count the script writes)."""
    page = html_report(word_model, data, tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert f"{len(SENTENCES)} of {len(SENTENCES)} rows" in dom
    png = tmp_path / "page.png"
    subprocess.run(["chromium", *flags, f"--screenshot={png}", "--window-size=1200,900",
                    page.as_uri()], capture_output=True, timeout=120)
    assert png.stat().st_size > 0
