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
        ROOT / "docs" / "CONTRACTS.md", ROOT / "examples" / "vision" / "README.md"]
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
def test_runs_as_written(where, argv, clone, monkeypatch, capsys):
    monkeypatch.chdir(clone)
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
