"""Every ``robusttext`` command of README.md, docs/ and the vision examples' README, run as
written from a fresh working directory: a folder holding only the clone's tracked files (and
``../shared`` beside it when the project's data is there), so that nothing left in the
developer's checkout (``runs/``, reports, caches) can make a command pass.

Commands that read what an earlier command writes (``runs/...``), need the network (hub ids),
a GPU (``--device cuda``) or hours (training on SST-2) are checked without running: they parse,
their settings resolve (``--print-config``; vision: the configuration validates), their input
files exist, and their outputs stay inside the clone.
"""

import contextlib
import io
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from robusttext.cli import main
from robusttext.errors import RobustTextError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOCS = [ROOT / "README.md", ROOT / "docs" / "distributed.md", ROOT / "docs" / "ARCHITECTURE.md",
        ROOT / "docs" / "CONTRACTS.md", ROOT / "docs" / "transformers.md",
        ROOT / "examples" / "vision" / "README.md"]
USER_MODEL = "my-bert-folder"
"""The folder docs/transformers.md calls the reader's own model; the tests save a tiny random
BERT with a WordPiece tokenizer under that name in the fresh working directory."""
# Minutes rather than seconds on a shared 2-core machine: run with -m slow.
SLOW = {"certify", "vision certify --model fmnist-dm-small --limit 1000",
        "vision certify --model fmnist-dm-small --eps 0.1 --limit 1000"}


def doc_commands() -> list[tuple[str, list[str]]]:
    """``(where, arguments)`` of each ``robusttext ...`` (or ``torchrun ... -m robusttext.cli
    ...``) command in the docs' bash/sh blocks."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].split(" > ")[0].strip()
                if "..." in line or "HOST:" in line:
                    continue  # a placeholder, not a command
                words = shlex.split(line)
                if words[:1] == ["robusttext"]:
                    found.append((path.relative_to(ROOT).as_posix(), words[1:]))
                elif words[:1] == ["torchrun"] and "robusttext.cli" in words:
                    found.append((path.relative_to(ROOT).as_posix(),
                                  words[words.index("robusttext.cli") + 1:]))
    return found


COMMANDS = doc_commands()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh working directory: the tracked files of the clone (linked), ../shared beside it
    when present."""
    top = tmp_path_factory.mktemp("fresh")
    folder = top / "robusttext"
    folder.mkdir()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in sorted({t.split("/")[0] for t in tracked}):
        if (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    if SHARED.is_dir():
        (top / "shared").symlink_to(SHARED)
    return folder


@pytest.fixture(scope="module")
def user_model(clone) -> Path:
    """``clone / USER_MODEL``: a tiny random ``BertForSequenceClassification`` and its fast
    WordPiece tokenizer, saved as a user's ``save_pretrained`` folder."""
    pytest.importorskip("transformers")
    import torch
    import transformers

    from tests.hf_tiny import SPECIALS, WORDS, bert_tokenizer

    folder = clone / USER_MODEL
    tokenizer = bert_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(SPECIALS) + len(WORDS), hidden_size=16,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=128,
                                     hidden_act="relu")
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def kind(argv: list[str]) -> str:
    """``run``, or why the command is only checked."""
    joined = " ".join(argv)
    if "--device cuda" in joined:
        return "gpu"
    if re.search(r"--model (runs|/shared)/", joined):
        return "reads a run an earlier command trains"
    if re.search(r"--data (stanfordnlp|imdb)", joined):
        return "network"
    if argv[0] == "train" or argv[:2] == ["vision", "train"]:
        return "training"
    return "run"


def needs(argv: list[str]) -> str | None:
    """Why the command cannot run here (data that is not installed), or None."""
    joined = " ".join(argv)
    if "../shared/" in joined and not SHARED.is_dir():
        return f"{SHARED} is not present"
    if "wordnet" in joined:
        from robusttext.perturb import WordNetSynonyms

        try:
            WordNetSynonyms()
        except RobustTextError:
            return "WordNet is not installed"
    if argv[:2] == ["vision", "certify"] and "--data" not in argv and not Path(
            "/usr/share/datasets/fashion-mnist").is_dir():
        return "needs Debian's dataset-fashion-mnist"
    return None


def test_every_command_is_found():
    assert len(COMMANDS) >= 20
    assert ("README.md", ["certify"]) in COMMANDS


@pytest.mark.parametrize("where,argv", [
    pytest.param(w, a, id=f"{w}: robusttext {' '.join(a)}",
                 marks=[pytest.mark.slow] if " ".join(a) in SLOW else [])
    for w, a in COMMANDS])
def test_runs_as_written(where, argv, clone, monkeypatch, capsys, request):
    monkeypatch.chdir(clone)
    if USER_MODEL in argv:
        request.getfixturevalue("user_model")
    why = kind(argv)
    missing = needs(argv)
    if why == "run":
        if missing:
            pytest.skip(missing)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            status = main(list(argv))
        err = capsys.readouterr().err
        assert status == 0, f"{where}: robusttext {' '.join(argv)}: {err}"
        assert "Traceback" not in err and "deprecated" not in err
        for flag in ("--json", "--html", "--plot"):
            if flag in argv and argv[argv.index(flag) + 1] != "-":
                assert (clone / argv[argv.index(flag) + 1]).stat().st_size > 0
        if "--json" in argv and argv[argv.index("--json") + 1] == "-":
            assert json.loads(out.getvalue())["examples"]
        return
    # checked without running: it parses, its settings resolve, its files exist
    if argv[0] == "train":
        with contextlib.redirect_stdout(io.StringIO()) as out:
            status = main([*argv, "--print-config"])
        assert status == 0, capsys.readouterr().err
        settings = json.loads(out.getvalue())
        assert not Path(settings["out"]).is_absolute(), f"{where}: writes outside the clone"
        for key in ("train", "dev"):
            value = settings.get(key)
            if value and value.startswith("../shared/") and SHARED.is_dir():
                assert (clone / value).exists(), value
    elif argv[:2] == ["vision", "train"]:
        from robusttext.vision.config import TrainConfig

        config = TrainConfig.from_file(argv[argv.index("--config") + 1])
        config.validate()
        assert not Path(config.out).is_absolute(), f"{where}: writes outside the clone"
    else:
        from robusttext.cli import build_parser

        build_parser(argv).parse_args(argv)
    assert "deprecated" not in capsys.readouterr().err


def test_the_transformers_python_block_runs(clone, user_model):
    """docs/transformers.md's Python block, run as written in a fresh Python from the fresh
    working directory (the user's model saved there), with no network."""
    import os
    import sys

    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present")
    text = (ROOT / "docs" / "transformers.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(clone.parent / "datasets"),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    verified, dropped = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert 0 <= float(verified) <= 1 and "'total'" in dropped
