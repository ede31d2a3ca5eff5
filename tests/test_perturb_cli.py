"""``robusttext perturb``: output and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from robusttext.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEIGHBORS = SHARED / "counterfitted_neighbors.json"


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "neighbors.json"
    path.write_text('{"good": ["fine", "great"], "movie": ["film", "picture", "flick"]}')
    return path


def test_perturb_prints_candidates_and_count(table, capsys):
    assert main(["perturb", "The good movie .", "--sources", str(table), "--budget", "1"]) == 0
    out = capsys.readouterr().out
    assert "   1  good   2: fine, great\n" in out
    assert "   2  movie  3: film, picture, flick\n" in out
    assert "   0  the\n" in out
    assert "sentences in the set: 6 (the original included)" in out


def test_perturb_reports_cut_lists_and_shows_sentences(table, capsys):
    argv = ["perturb", "good movie", "--sources", str(table), "--max-candidates", "2",
            "--show", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "cut the candidates of: movie (3 -> 2)" in out
    assert "sentences in the set: 9" in out
    assert out.rstrip().splitlines()[-3:] == ["  good movie", "  fine movie", "  great movie"]


def test_perturb_char_level(capsys):
    assert main(["perturb", "ab", "--level", "char", "--budget", "1"]) == 0
    out = capsys.readouterr().out
    assert "'a'  4: 'q', 'w', 's', 'z'" in out
    assert "sentences in the set: 9" in out


def test_perturb_typos_at_word_level(capsys):
    assert main(["perturb", "cat", "--sources", "qwerty"]) == 0
    assert "sentences in the set: 13" in capsys.readouterr().out


@pytest.mark.skipif(not NEIGHBORS.is_file(), reason=f"{NEIGHBORS} absent")
def test_perturb_with_the_shared_neighbour_file(capsys):
    assert main(["perturb", "a charming journey", "--sources", str(NEIGHBORS),
                 "--budget", "2"]) == 0
    assert "charming  8: enchanting" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["perturb", "", "--sources", "qwerty"], "sentence is empty"),
    (["perturb", "good", "--sources", "qwerty", "--budget", "-2"], "budget must be >= 0"),
    (["perturb", "good", "--sources", "glove"], "unknown source 'glove'"),
    (["perturb", "good", "--level", "char", "--sources", "wordnet"],
     "does not work at the char level"),
    (["perturb", "good", "--sources", "/nonexistent.json"], "/nonexistent.json: no such file"),
    (["perturb", "good"], "no substitutions chosen"),
    (["perturb", "good", "--level", "char", "--synonyms", "wordnet"], "word level only"),
    (["perturb", "good", "--neighbors", "/nonexistent.json"], "no such neighbour file"),
])
def test_perturb_bad_input(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_perturb_counterfitted_without_file_says_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROBUSTTEXT_CACHE", str(tmp_path))
    assert main(["perturb", "good", "--sources", "counterfitted"]) == 2
    err = capsys.readouterr().err
    assert "--sources PATH" in err and "from_url" in err


def test_the_old_source_flags_still_read_and_give_the_same_set(table, capsys):
    """--synonyms, --neighbors and --typos (deprecated) each say what replaces them in one line
    and describe the set --sources does."""
    assert main(["perturb", "good movie", "--sources", str(table), "qwerty"]) == 0
    new = capsys.readouterr()
    assert new.err == ""
    count = [line for line in new.out.splitlines() if "sentences in the set" in line]
    for old in (["--synonyms", str(table), "--typos"], ["--neighbors", str(table), "--typos"]):
        assert main(["perturb", "good movie", *old]) == 0
        captured = capsys.readouterr()
        assert [line for line in captured.out.splitlines()
                if "sentences in the set" in line] == count
        warned = captured.err.strip().splitlines()
        assert len(warned) == 2 and all("is deprecated" in w and "use --sources" in w
                                        for w in warned)
