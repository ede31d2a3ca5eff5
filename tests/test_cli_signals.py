"""No traceback, in a real process: Ctrl-C, a machine without network, ``python -m robusttext``
from the folder that holds a clone, a closed standard output.

Each test runs the command in a fresh interpreter (this tree first on the path) and reads what
it printed; a traceback anywhere fails it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import write_idx_folder

ROOT = Path(__file__).resolve().parents[1]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def environment(**changes) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **changes)
    return env


def robusttext(*argv, env=None, cwd=None, code=None, timeout=300):
    """Run ``python -m robusttext ARGV`` (or ``python -c CODE ARGV``); the finished process."""
    command = [sys.executable, *(["-c", code] if code else ["-m", "robusttext"]), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=env or environment(), cwd=cwd or ROOT)


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def interrupt(argv, wait: float, cwd: Path) -> subprocess.CompletedProcess:
    """Start ``robusttext ARGV``, send SIGINT (Ctrl-C) after ``wait`` seconds, collect it."""
    process = subprocess.Popen([sys.executable, "-m", "robusttext", *argv], cwd=cwd,
                               env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(wait)
    assert process.poll() is None, "finished before the interrupt; give it more work"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_in_certify_is_one_line(tmp_path):
    demo = (ROOT / "robusttext" / "assets" / "demo_sentences.tsv").read_text().splitlines()
    data = tmp_path / "many.tsv"
    data.write_text("\n".join([demo[0], *demo[1:] * 30]) + "\n")
    done = interrupt(["certify", "--model", "word-counterfitted-lstm", "--data", str(data),
                      "--enumerate-seconds", "none", "--quiet"], 8, tmp_path)
    assert done.returncode == 130
    assert one_line(done.stderr) == "robusttext certify: interrupted; stopped"


@pytest.mark.slow
def test_ctrl_c_in_train_says_it_resumes(tmp_path):
    rows = ["sentence\tlabel"] + [f"a good film number {i}\t1" if i % 2 else
                                  f"a dull plot number {i}\t0" for i in range(200)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    done = interrupt(["train", "--architecture", "char-cnn", "--train", "train.tsv",
                      "--sources", "qwerty", "--epochs", "100000", "--out", "run", "--quiet",
                      "--device", "cpu"], 10, tmp_path)
    assert done.returncode == 130
    line = one_line(done.stderr)
    assert line.startswith("robusttext train: interrupted;") and "resumes the run in run" in line


# Ctrl-C at a chosen point: the command's work raises KeyboardInterrupt, as a SIGINT would.
RAISE_IN = """
import sys
import {module} as target
def stop(*a, **k):
    raise KeyboardInterrupt
target.{name} = stop
from robusttext.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv,module,name,expected", [
    (["vision", "certify", "--limit", "5", "--data", "idx"], "robusttext.vision.cli",
     "load_data",
     "robusttext vision certify: interrupted"),
    (["certify", "--model", "word-wordnet", "--quiet"], "robusttext.certify.sharded",
     "certify_sharded", "robusttext certify: interrupted; stopped"),
    (["vision", "train", "--out", "there", "--data", "idx"], "robusttext.vision.train", "train",
     "robusttext vision train: interrupted; the same command resumes the run in there"),
    (["train", "--architecture", "char-cnn", "--train", "x.tsv", "--out", "somewhere"],
     "robusttext.train.trainer", "train", "robusttext train: interrupted; the same command "
     "resumes the run in somewhere"),
])
def test_ctrl_c_anywhere_is_one_line(tmp_path, argv, module, name, expected):
    if "x.tsv" in argv:
        (tmp_path / "x.tsv").write_text("sentence\tlabel\na fine film\t1\n")
    if "idx" in argv:
        write_idx_folder(tmp_path / "idx", n_train=8, n_test=8)
    done = robusttext(*argv, code=RAISE_IN.format(module=module, name=name), cwd=tmp_path)
    assert done.returncode == 130
    assert one_line(done.stderr).startswith(expected)


def test_vision_hub_data_without_network_fails_fast_in_one_line(tmp_path):
    done = robusttext("vision", "certify", "--data", "mnist", "--limit", "5",
                      env=environment(HTTPS_PROXY=CLOSED), cwd=tmp_path)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "'mnist' is not a local file" in line and "cannot be reached" in line
    assert "IDX" in line


def test_hub_model_without_network_fails_without_retries(tmp_path):
    done = robusttext("certify", "--model", "someorg/somemodel", "a fine film",
                      env=environment(HTTPS_PROXY=CLOSED, HF_HOME=str(tmp_path / "hf")),
                      cwd=tmp_path)
    assert done.returncode == 2
    assert "Retrying" not in done.stderr
    line = one_line(done.stderr)
    assert "someorg/somemodel" in line and "the hub cannot be reached" in line


# An editable install's finder, as setuptools writes one: it maps robusttext to the tree, and
# comes after Python's path search, which finds the clone's folder first.
EDITABLE = """
import importlib.machinery, importlib.util, runpy, sys
tree = sys.argv.pop(1)
class Editable:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "robusttext":
            return importlib.util.spec_from_file_location(
                name, f"{tree}/robusttext/__init__.py",
                submodule_search_locations=[f"{tree}/robusttext"])
        if name.rpartition(".")[0] == "robusttext":
            return importlib.machinery.PathFinder.find_spec(name, [f"{tree}/robusttext"])
        return None
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)] + [Editable]
sys.path[:] = [p for p in sys.path if p not in ("", ".") and "robusttext" not in p]
sys.path.insert(0, ".")
sys.argv[0] = "robusttext"
runpy.run_module("robusttext", run_name="__main__", alter_sys=True)
"""


def test_python_m_from_the_folder_that_holds_the_clone(tmp_path):
    (tmp_path / "robusttext").symlink_to(ROOT)  # a clone named robusttext
    env = {k: v for k, v in environment().items() if k != "PYTHONPATH"}
    done = robusttext(str(ROOT), "--version", code=EDITABLE, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("robusttext ")
    done = robusttext(str(ROOT), "certify", "--model", "word-wordnet", "a fine film",
                      code=EDITABLE, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prediction: class" in done.stdout


def test_closed_standard_output_is_quiet(tmp_path):
    reader = subprocess.Popen(
        [sys.executable, "-m", "robusttext", "certify", "--model", "word-wordnet", "--json",
         "-", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
        cwd=tmp_path)
    reader.stdout.close()  # as `| head -0` does
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=300) in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_json_for_one_sentence(tmp_path):
    done = robusttext("certify", "--model", "word-wordnet", "a fine film", "--json", "-",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (example,) = report["examples"]
    assert example["text"] == "a fine film" and example["model"] == "word-wordnet"
    assert "prediction: class" in done.stderr  # the sentence's view goes to stderr
