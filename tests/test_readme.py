"""The README as written: its Python block runs, and every command in it (and in the vision
examples' README) parses with today's flags and names files that exist or says where they
come from."""

import re
import shlex
from pathlib import Path

import pytest

from robusttext.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", ROOT / "examples" / "vision" / "README.md"]
# Arguments that name outputs, or inputs the README says come from elsewhere.
OUTPUT_FLAGS = {"--json", "--html", "--plot", "--out"}
ELSEWHERE = ("../shared/", "runs/", "stanfordnlp/")


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(path: Path) -> list[list[str]]:
    """Each ``robusttext ...`` command of the file's bash/sh blocks, as arguments."""
    found = []
    for block in blocks(path.read_text(), "(?:bash|sh)"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" > ")[0].strip()
            if line.startswith("robusttext ") and "..." not in line:
                found.append(shlex.split(line)[1:])
    return found


def test_the_python_block_runs(capsys):
    (code,) = blocks((ROOT / "README.md").read_text(), "python")
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "certified at eps 0.001:" in printed and "certified at 2 words:" in printed


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_parses_and_its_files_exist(readme, capsys):
    found = commands(readme)
    assert found
    for argv in found:
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit:
            pytest.fail(f"{readme.name}: robusttext {' '.join(argv)}: "
                        f"{capsys.readouterr().err}")
        assert "deprecated" not in capsys.readouterr().err, argv
        previous = None
        for arg in argv:
            if previous not in OUTPUT_FLAGS and ("/" in arg or arg.endswith(".json")) and (
                    not arg.startswith(ELSEWHERE)):
                assert (ROOT / arg).exists(), f"{readme.name}: {arg} (robusttext {argv})"
            previous = arg
        assert args.command


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs Debian's dataset-fashion-mnist")
def test_vision_example_labels_recorded_figures(capsys):
    """examples/vision/certify_shipped.py computes its figures; the recorded ones it prints
    after a full run carry the note of the engine they were measured with."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "certify_shipped", ROOT / "examples" / "vision" / "certify_shipped.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.certify_shipped(["--limit", "50", "--quiet", "--pgd-steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "verified ibp" in printed and "recorded" not in printed  # the table; a subset
