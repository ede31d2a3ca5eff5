"""One-line errors naming the file and the problem: broken weights, non-UTF-8 configuration
files, a hub id on a machine without network."""

import shutil
import socket

import pytest

from robusttext.checkpoint import WEIGHTS_FILE
from robusttext.cli import main
from robusttext.shipped import MODELS_DIR


def error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def broken_copy(tmp_path, name: str, how: str):
    """A copy of shipped model ``name`` whose weights file is empty or cut in half."""
    folder = shutil.copytree(MODELS_DIR / name, tmp_path / name)
    weights = folder / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(b"" if how == "empty" else data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("how,message", [("empty", "the weights file is empty"),
                                         ("truncated", "not a readable safetensors file")])
def test_broken_text_weights(tmp_path, capsys, how, message):
    folder = broken_copy(tmp_path, "word-wordnet", how)
    err = error(["certify", "--model", str(folder), "a fine film"], capsys)
    assert str(folder / WEIGHTS_FILE) in err and message in err


@pytest.mark.parametrize("how,message", [("empty", "the weights file is empty"),
                                         ("truncated", "not a readable safetensors file")])
def test_broken_vision_weights(tmp_path, capsys, how, message):
    folder = broken_copy(tmp_path, "fmnist-dm-small", how)
    err = error(["vision", "certify", "--model", str(folder)], capsys)
    assert str(folder / WEIGHTS_FILE) in err and message in err


@pytest.mark.parametrize("command", [["train"], ["vision", "train"]])
def test_config_not_utf8(tmp_path, capsys, command):
    config = tmp_path / "config.json"
    config.write_bytes('{"epochs": 1, "comment": "caf\u00e9"}'.encode("latin-1"))
    err = error([*command, "--config", str(config)], capsys)
    assert str(config) in err and "not UTF-8" in err


def test_hub_without_network_fails_fast(monkeypatch, tmp_path, capsys):
    """No network: one refused connection, then the error naming the local alternatives (no
    retries: the probe is the only connection tried, and datasets is never asked)."""
    import sys

    calls = []

    def refuse(address, timeout=None):
        calls.append((address, timeout))
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setitem(sys.modules, "datasets", None)  # would fail differently if imported
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    err = error(["certify", "--model", "word-wordnet", "--data", "stanfordnlp/sst2"], capsys)
    assert "Hugging Face hub cannot be reached" in err and "local .tsv/.csv/.jsonl" in err
    assert calls == [(("huggingface.co", 443), 3.0)]
    err = error(["train", "--out", str(tmp_path / "run")], capsys)  # the default --train
    assert "'stanfordnlp/sst2' is not a local file" in err


def test_hub_probe_goes_through_the_proxy(monkeypatch):
    from robusttext.data.hub import hub_address

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub_address() == ("proxy.example", 3128)
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    assert hub_address() == ("hub.example", 443)


def test_offline_mode_skips_the_probe(monkeypatch):
    from robusttext.data.hub import check_hub_reachable

    monkeypatch.setattr(socket, "create_connection",
                        lambda *a, **k: pytest.fail("probed in offline mode"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    check_hub_reachable("stanfordnlp/sst2")
