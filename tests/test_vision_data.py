"""Vision data loading on tiny IDX and CIFAR-10 files that the tests write themselves."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from robusttext.errors import RobustTextError
from robusttext.vision.data import (
    hf_to_dataset,
    load_cifar_folder,
    load_idx_folder,
    load_images,
    read_cifar_batch,
    read_idx,
)
from tests.builders import idx_bytes, write_cifar_folder, write_idx_folder


def test_known_idx_bytes_decode_to_the_array(tmp_path):
    # 2 images of 2x3 pixels, written byte by byte from the IDX specification.
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    (tmp_path / "a-idx3-ubyte").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    expected = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), expected)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), expected)


def test_idx_folder_gzip_and_plain(tmp_path):
    for gz in (True, False):
        folder = tmp_path / f"gz{gz}"
        arrays = write_idx_folder(folder, gz=gz)
        data = load_idx_folder(folder, "test")
        assert data.images.shape == (24, 1, 28, 28) and data.images.dtype == torch.float32
        assert data.labels.dtype == torch.int64
        np.testing.assert_array_equal(data.labels.numpy(), arrays["t10k-labels"])
        np.testing.assert_allclose(
            data.images[:, 0].numpy() * 255, arrays["t10k-images"], atol=1e-4
        )
        assert float(data.images.min()) >= 0 and float(data.images.max()) <= 1
        assert len(load_images(folder, "train")) == 48


def test_truncated_idx_is_named(tmp_path):
    write_idx_folder(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(RobustTextError, match="truncated IDX file .*t10k-images-idx3-ubyte"):
        load_idx_folder(tmp_path, "test")


def test_truncated_gzip_is_named(tmp_path):
    write_idx_folder(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(RobustTextError, match="train-labels-idx1-ubyte.gz"):
        load_idx_folder(tmp_path, "train")


def test_missing_file_is_named(tmp_path):
    write_idx_folder(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(RobustTextError, match="missing data file .*t10k-labels-idx1-ubyte"):
        load_idx_folder(tmp_path, "test")


def test_label_count_mismatch(tmp_path):
    write_idx_folder(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(RobustTextError, match="24 images but"):
        load_idx_folder(tmp_path, "test")


def test_cifar_batches_layout(tmp_path):
    written = write_cifar_folder(tmp_path)
    train = load_images(tmp_path, "train")
    test = load_cifar_folder(tmp_path, "test")
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    raw = written["test_batch"]
    # Pixel (c, i, j) of image n is byte c * 1024 + i * 32 + j of row n.
    for n, c, i, j in [(0, 0, 0, 0), (1, 1, 5, 7), (3, 2, 31, 30)]:
        assert test.images[n, c, i, j].item() * 255 == pytest.approx(raw[n, c * 1024 + i * 32 + j])
    np.testing.assert_array_equal(test.labels.numpy(), written["test_batch.labels"])
    np.testing.assert_array_equal(train.labels[4:8].numpy(), written["data_batch_2.labels"])


def test_cifar_subfolder_and_errors(tmp_path):
    write_cifar_folder(tmp_path / "cifar-10-batches-py")
    assert len(load_images(tmp_path, "test")) == 4
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(RobustTextError, match="truncated or corrupt CIFAR batch .*data_batch_3"):
        load_images(tmp_path, "train")
    os.remove(batch)
    with pytest.raises(RobustTextError, match="missing data file .*data_batch_3"):
        load_images(tmp_path, "train")


def test_cifar_pickle_refuses_other_objects(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(RobustTextError, match="refusing"):
        read_cifar_batch(path)


def test_hub_conversion_offline():
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    grey = [np.full((28, 28), v, np.uint8) for v in (0, 128, 255)]
    table = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in grey], "label": [3, 1, 4]},
        features=datasets.Features(
            {"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)}
        ),
    )
    data = hf_to_dataset(table, "image", "label", "local")
    assert data.images.shape == (3, 1, 28, 28)
    assert data.images[1, 0, 0, 0].item() == pytest.approx(128 / 255)
    assert data.labels.tolist() == [3, 1, 4]
    rgb = datasets.Dataset.from_dict(
        {
            "img": [Image.fromarray(np.zeros((32, 32, 3), np.uint8) + np.uint8([10, 20, 30]))],
            "label": [7],
        }
    )
    data = hf_to_dataset(rgb, "img", "label", "local")
    assert data.images.shape == (1, 3, 32, 32)
    assert [round(v * 255) for v in data.images[0, :, 0, 0].tolist()] == [10, 20, 30]


def test_unknown_source(tmp_path):
    with pytest.raises(RobustTextError, match="neither a folder nor a known hub id"):
        load_images(str(tmp_path / "nope"), "train")
    with pytest.raises(RobustTextError, match="neither IDX files"):
        load_images(tmp_path, "train")
    write_idx_folder(tmp_path)
    with pytest.raises(RobustTextError, match="split"):
        load_images(tmp_path, "validation")
