"""Hub ids (``--model ORG/NAME``) through transformers' own resolution, offline.

There is no network in the tests: the model is put into a Hugging Face cache written by the
test in the cache's own layout (``models--org--name/snapshots/<commit>/...`` and
``refs/main``), and each check runs in a fresh process with ``HF_HUB_CACHE`` pointing there and
``HF_HUB_OFFLINE=1`` (huggingface_hub reads both when it is imported).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from robusttext.perturb import PerturbationSpace, SynonymTable  # noqa: E402
from robusttext.text.hf import from_transformers, save_transformers_folder  # noqa: E402
from tests.hf_tiny import SENTENCES, TABLE, bert_tokenizer, tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL_ID = "testorg/tiny-bert"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """``(work folder, environment)``: a hub cache holding MODEL_ID, saved with its space."""
    tmp = tmp_path_factory.mktemp("hub")
    folder = tmp / "saved"
    space = PerturbationSpace(SynonymTable(TABLE), budget=1, stop_words=[])
    save_transformers_folder(folder, from_transformers(tiny_model("bert", seed=5)),
                             bert_tokenizer(tmp / "vocab"), space)
    repo = tmp / "hf" / "hub" / f"models--{MODEL_ID.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    work = tmp / "work"  # the current folder of the runs: no testorg/ folder in it
    work.mkdir()
    (work / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n"
                                                                 for s, y in SENTENCES))
    env = {**os.environ, "HF_HOME": str(tmp / "hf"), "HF_HUB_CACHE": str(tmp / "hf" / "hub"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return work, env


def _run(args, work, env):
    return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)


def test_python_api_loads_a_hub_id_from_the_cache_and_names_one_that_is_nowhere(cache):
    work, env = cache
    script = (
        "import json, torch\n"
        "from robusttext.errors import RobustTextError\n"
        "from robusttext.text import load_text_model\n"
        "try:\n"
        "    load_text_model('testorg/missing')\n"
        "except RobustTextError as error:\n"
        "    print(json.dumps({'error': str(error)}))\n"
        f"b = load_text_model({MODEL_ID!r})\n"
        "enc = b.space.encode(['the film is good', 'a bad plot'])\n"
        "print(json.dumps({'name': b.name, 'kind': b.kind, 'path': str(b.path),\n"
        "                  'budget': b.space.space.budget,\n"
        "                  'ids': enc.token_ids.tolist(), 'mask': enc.mask.tolist(),\n"
        "                  'logits': b.model(enc.token_ids, enc.mask).tolist()}))\n"
        "from robusttext.text.hf import certify_transformers\n"
        f"r = certify_transformers({MODEL_ID!r}, None, [('the film is good', 1)], None, [1],\n"
        "                         enumerate_limit=100)\n"
        "print(json.dumps({'api': r.to_json(model='m')['examples']}))\n")
    done = _run(["-c", script], work, env)
    assert done.returncode == 0, done.stderr
    missing, got, api = (json.loads(line) for line in done.stdout.strip().splitlines()[-3:])
    # One line, naming the id and what was tried: the folder, the cache entry, the hub.
    message = missing["error"]
    assert "\n" not in message and "'testorg/missing'" in message
    assert str(work / "testorg" / "missing") in message and "does not exist" in message
    assert "models--testorg--missing" in message and "HF_HUB_OFFLINE is set" in message
    assert got["name"] == MODEL_ID and got["kind"] == "transformers" and got["budget"] == 1
    assert got["path"].endswith(f"snapshots/{COMMIT}")
    # The same logits as the model that was put into the cache, computed here by transformers.
    hf = tiny_model("bert", seed=5)
    ids, mask = torch.tensor(got["ids"]), torch.tensor(got["mask"])
    expected = hf(input_ids=ids, attention_mask=mask.long()).logits
    torch.testing.assert_close(torch.tensor(got["logits"]), expected, atol=1e-5, rtol=1e-5)
    # certify_transformers on the id: its own tokenizer and the space saved beside it.
    (example,) = api["api"]
    assert example["budget"] == 1 and example["text"] == "the film is good"


def test_certify_cli_takes_a_hub_id_offline(cache):
    work, env = cache
    done = _run(["-m", "robusttext.cli", "certify", "--model", MODEL_ID, "--data", "dev.tsv",
                 "--budget", "1", "--json", "report.json"], work, env)
    assert done.returncode == 0, done.stderr
    report = json.loads((work / "report.json").read_text())
    assert list(report["models"]) == [MODEL_ID]
    assert len(report["examples"]) == len(SENTENCES)


def test_a_bare_name_goes_to_the_hub_only_when_the_cache_holds_it(tmp_path, monkeypatch):
    """A mistyped shipped name is refused at once (no hub round trip); a bare name the cache
    holds, and any ORG/NAME, is handed to transformers' resolution."""
    import huggingface_hub.constants

    from robusttext.errors import RobustTextError
    from robusttext.text import io as text_io
    from robusttext.text.hf import folders

    asked = []
    monkeypatch.setattr(folders, "load_hub_bundle", lambda name, device: asked.append(name))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RobustTextError, match="no such model: char-flip .*ORG/NAME"):
        text_io.load_text_model("char-flip")
    assert asked == []
    (tmp_path / "models--tinybert").mkdir()
    text_io.load_text_model("tinybert")
    text_io.load_text_model("someorg/somemodel")
    assert asked == ["tinybert", "someorg/somemodel"]
