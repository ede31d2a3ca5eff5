"""Shared test settings: small thread pool (the tests use many tiny tensors), no network; the
saved word model and data file the command-line tests share."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture
def word_model(tmp_path):
    """A seeded, untrained word CNN saved in ``tmp_path`` (``tests.builders.save_word_model``)."""
    from tests.builders import save_word_model

    return save_word_model(tmp_path / "word-model")


@pytest.fixture
def data(tmp_path):
    """``tests.builders.SENTENCES`` as a labelled .tsv file in ``tmp_path``."""
    from tests.builders import SENTENCES, write_tsv

    return write_tsv(tmp_path / "data.tsv", SENTENCES)
