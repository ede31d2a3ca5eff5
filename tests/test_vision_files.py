"""Writers of tiny IDX and CIFAR-10 files for the vision tests (formats written by hand).

The other vision tests load this module by file path."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x00 0x00 0x08 ndim, big-endian dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(
    folder: Path, n_train: int = 48, n_test: int = 24, seed: int = 0, gz: bool = True
) -> dict[str, np.ndarray]:
    """MNIST-named IDX files with random 28x28 images; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        # Make the label visible: a bright bar in row 2 * label, so a model can learn it.
        for i, label in enumerate(labels):
            images[i, 2 * label + 2, 4:24] = 255
        arrays[f"{prefix}-images"], arrays[f"{prefix}-labels"] = images, labels
        for kind, array, rank in (("images", images, "idx3"), ("labels", labels, "idx1")):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-{rank}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return arrays


def write_cifar_folder(folder: Path, per_batch: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-10 python batches in the official layout: dict with bytes keys, ``data`` uint8
    ``[N, 3072]`` (1024 red, 1024 green, 1024 blue, each row-major), ``labels`` a list."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [b"x.png"] * per_batch,
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        written[name] = data
        written[name + ".labels"] = np.array(labels)
    return written


def test_idx_writer_header():
    data = idx_bytes(np.zeros((2, 3), np.uint8))
    assert data[:4] == bytes([0, 0, 8, 2]) and data[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert len(data) == 12 + 6
