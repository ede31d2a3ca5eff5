"""A newcomer's walk through every command's options: a bad value, or an option that does not
apply, is refused in one line that names the flag (no traceback, no silent ignore).

All the commands run in one fresh Python process (``robusttext.cli.main``, the console
script's entry point, called once per command line with its own standard error), so an
exception that escapes ``main`` (a traceback for the user) is caught and reported per case;
the cases themselves stay fast: shipped models on one sentence, a four-row training file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DRIVER = r"""
import contextlib, io, json, sys
from robusttext.cli import main
found = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except SystemExit as stop:
        status = stop.code
    except BaseException as error:
        status = f"escaped: {error!r}"
    found.append({"status": status, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(found))
"""

TRAIN = ["train", "--train", "d.tsv", "--architecture", "bow", "--sources", "t.json",
         "--epochs", "1", "--quiet", "--device", "cpu", "--out", "run"]

REFUSED = [
    # certify: a space flag given with its default value still needs a source
    (["certify", "--model", "char-flips", "--level", "word", "a fine film"],
     "--level word changes nothing without a source of substitutions"),
    (["certify", "--model", "char-flips", "--keyboard", "qwerty", "a fine film"],
     "--keyboard qwerty changes nothing without --typos or --level char"),
    (["certify", "--model", "char-flips", "--method", "alpha-crown", "--alpha-steps", "-1",
      "a fine film"], "--alpha-steps must be at least 0, got -1"),
    (["certify", "--model", "word-wordnet", "--synonyms", "wordnet", "--wordnet-senses", "0",
      "a fine film"], "--wordnet-senses must be at least 1, got 0"),
    (["certify", "--model", "char-flips", "--enumerate-seconds", "5", "a fine film"],
     "--enumerate-seconds goes with --data (many sentences), not with one SENTENCE"),
    (["certify", "--model", "char-flips", "--batch-size", "3", "a fine film"],
     "--batch-size goes with --data (many sentences), not with one SENTENCE"),
    # perturb
    (["perturb", "a fine film", "--neighbors", "t.json", "--synonyms", "wordnet"],
     "--neighbors goes with --synonyms counterfitted only, not with --synonyms wordnet"),
    (["perturb", "a fine film", "--typos", "--max-flips-per-word", "0"],
     "--max-flips-per-word must be at least 1, got 0"),
    (["perturb", "a fine film", "--level", "word"],
     "--level word changes nothing without a source of substitutions"),
    # train: values out of range, named by flag
    (TRAIN + ["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1"),
    (TRAIN + ["--seed", "-1"], "--seed must be at least 0, got -1"),
    (TRAIN + ["--max-candidates", "0"], "--max-candidates must be at least 1, got 0"),
    (TRAIN + ["--max-vocab", "0"], "--max-vocab must be at least 2, got 0"),
    (TRAIN + ["--train-limit", "0"], "--train-limit must be at least 1, got 0"),
    (TRAIN + ["--embed-dim", "0"], "--embed-dim must be at least 1, got 0"),
    (TRAIN + ["--lr-decay-epochs", "1", "--lr-decay", "0"], "--lr-decay must be positive"),
    (TRAIN + ["--lr-decay-epochs", "5"], "--lr-decay-epochs 5: after the last epoch "
                                         "(--epochs 1)"),
    # train: settings that would change nothing
    (TRAIN + ["--alias-candidates", "--sources", "t.json", "qwerty"],
     "--alias-candidates needs a word-level space with exactly one source"),
    (TRAIN + ["--architecture", "bert", "--embed-dim", "10", "--heads", "4"],
     "--embed-dim 10 must be a multiple of --heads 4"),
    (TRAIN + ["--filters", "8"], "--filters does not apply to a bow model (its settings: "
                                 "--embed-dim, --hidden, --dropout)"),
    (TRAIN + ["--train-split", "x"], "--train-split x changes nothing without a hub --train"),
    (TRAIN + ["--dev", "d.tsv", "--dev-split", "x"], "--dev-split x changes nothing without "
                                                     "a hub --dev"),
    (TRAIN + ["--eval-limit", "3"], "--eval-limit 3 changes nothing without --dev"),
    (TRAIN + ["--eval-budgets", "1"], "--eval-budgets 1 changes nothing without --dev"),
    (TRAIN + ["--eval-all-words"], "--eval-all-words changes nothing without --dev"),
    (TRAIN + ["--enumerate-limit", "10"], "--enumerate-limit 10 changes nothing without --dev"),
    (TRAIN + ["--eval-methods", "crown-ibp"], "--eval-methods crown-ibp changes nothing without "
                                              "--dev or --validation-fraction"),
    (TRAIN + ["--eval-budgets", "1,2", "--eval-limit", "0"], "--eval-limit must be at least 1"),
    (TRAIN + ["--eval-budgets", "1,x"], "argument --eval-budgets: bad item 'x'"),
    (["vision", "train", "--eval-limit", "0", "--out", "v"], "--eval-limit must be at least 1"),
    (["vision", "train", "--eval-methods", "ibp,nope", "--out", "v"],
     "argument --eval-methods: 'nope' is not one of"),
    (["vision", "train", "--robust-weight", "1.5", "--out", "v"],
     "--robust-weight must lie in [0, 1]"),
    (TRAIN + ["--select-by", "clean"], "--select-by clean changes nothing without "
                                       "--validation-fraction"),
    (TRAIN + ["--wordnet-senses", "3"], "--wordnet-senses 3 changes nothing without the "
                                        "wordnet source"),
    (TRAIN + ["--beta-start", "0.5"], "--beta-start 0.5 changes nothing without --method "
                                      "crown-ibp"),
    (TRAIN + ["--lr-decay", "0.5"], "--lr-decay 0.5 changes nothing without --lr-decay-epochs"),
    (TRAIN + ["--amp"], "--amp changes nothing without a CUDA device"),
    (["train", "--model", "folder", "--hidden", "8", "--train", "d.tsv"],
     "--hidden changes nothing with --model folder (the continued model keeps its"),
    (TRAIN + ["--space-file", "t.json"], "--sources changes nothing beside --space-file"),
    # vision: PGD settings without the attack, radii overridden or unused
    (["vision", "certify", "--pgd-steps", "0", "--pgd-restarts", "3"],
     "--pgd-restarts 3 changes nothing with --pgd-steps 0"),
    (["vision", "certify", "--pgd-steps", "0", "--attack-verified-fraction", "0.5"],
     "--attack-verified-fraction 0.5 changes nothing with --pgd-steps 0"),
    (["vision", "train", "--eps", "0.3", "--eps-train", "0.2", "--eps-eval", "0.1", "--out",
      "v"], "--eps changes nothing beside both --eps-train and --eps-eval"),
    (["vision", "train", "--method", "natural", "--eps-train", "0.2", "--out", "v"],
     "--eps-train changes nothing with --method natural"),
    (["vision", "train", "--pgd-steps", "0", "--pgd-restarts", "2", "--out", "v"],
     "--pgd-restarts 2 changes nothing with --pgd-steps 0"),
    (TRAIN + ["--robust-weight", "0", "--oracle-every", "2"], "--oracle-every 2 changes "
                                                              "nothing without a robust loss"),
    (TRAIN + ["--robust-weight", "0", "--method", "crown-ibp"], "--method crown-ibp changes "
                                                               "nothing without a robust loss"),
]

ACCEPTED = [
    # the same flags where they act
    (["perturb", "a fine film", "--typos", "--level", "word", "--tokenizer", "glue",
      "--keyboard", "qwerty", "--max-flips-per-word", "1"], "sentences in the set: "),
    (["perturb", "a good film", "--synonyms", "t.json"], "sources: t.json"),  # not
    # "counterfitted": a user's own table is named by its file
    # a space from the flags is not called "the model's own" in the header
    (["certify", "--model", "char-flips", "--level", "char", "--budget", "1,2", "a fine film"],
     "char level, glue tokens; sources: char_flips(qwerty); budget-ibp bounds"),
    (["certify", "--model", "char-flips", "--budget", "0", "a fine film"],
     "1 sentence in the set"),
    # a list flag reads spaces as commas; the SENTENCE may still follow it
    (["certify", "--model", "char-flips", "--budget", "1", "2", "a fine film"],
     "budget 2 positions: CERTIFIED"),
    (["vision", "train", "--eval-methods", "ibp", "crown", "--lr-decay-epochs", "2,4",
      "--epochs", "5", "--eval-limit", "10", "--out", "v", "--print-config"], '"eval_limit": 10'),
    (TRAIN + ["--hidden", "8", "--dev", "d.tsv", "--eval-budgets", "1", "--eval-methods",
              "ibp", "--lr-decay-epochs", "1", "--lr-decay", "0.5", "--select-by", "clean",
              "--validation-fraction", "0.25", "--out", "run-ok"], "final:"),
    (["train", "--train", "d.tsv", "--architecture", "bert", "--layers", "1", "--heads", "2",
      "--embed-dim", "8", "--ffn", "16", "--sources", "t.json", "--epochs", "1", "--quiet",
      "--device", "cpu", "--out", "bert"], "trained"),
]
QUIET = ACCEPTED[-1][0]


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """Every case's ``{"status", "out", "err"}``, run in one fresh Python in a folder holding
    a four-row training file and a synonym table."""
    folder = tmp_path_factory.mktemp("walk")
    (folder / "d.tsv").write_text("sentence\tlabel\nthe film is good\t1\na bad plot\t0\n"
                                  "the story is great\t1\nan awful film\t0\n")
    (folder / "t.json").write_text(json.dumps({"good": ["great", "fine"],
                                               "bad": ["awful", "poor"], "film": ["movie"]}))
    cases = [argv for argv, _ in REFUSED + ACCEPTED]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(zip(map(json.dumps, cases), results, strict=True))


@pytest.mark.parametrize("argv,expected", REFUSED, ids=lambda v: " ".join(v[-4:])
                         if isinstance(v, list) else None)
def test_refused_in_one_line_naming_the_flag(walked, argv, expected):
    found = walked[json.dumps(argv)]
    # A deprecated spelling (--keyboard, --synonyms, ...) adds its own one warning line.
    lines = [line for line in found["err"].strip().splitlines() if "is deprecated" not in line]
    assert found["status"] == 2 and len(lines) == 1, found
    assert expected in lines[0] and lines[0].startswith("robusttext "), lines[0]


@pytest.mark.parametrize("argv,expected", ACCEPTED, ids=lambda v: " ".join(v[:3])
                         if isinstance(v, list) else None)
def test_the_same_flags_act_where_they_apply(walked, argv, expected):
    found = walked[json.dumps(argv)]
    assert found["status"] == 0, found
    assert expected in found["out"], found["out"][-2000:]


def test_quiet_training_shows_no_progress_bar(walked):
    """``train --quiet`` of a bert (whose folder transformers writes): no bar on stderr, not
    even the Hugging Face libraries' own."""
    err = walked[json.dumps(QUIET)]["err"]
    assert "%|" not in err and "it/s" not in err, err
