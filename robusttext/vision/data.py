"""Image data sets: IDX files (MNIST, Fashion-MNIST), CIFAR-10 python batches, Hugging Face hub ids.

Every loader returns an :class:`ImageDataset` with ``images`` float32 ``[N, C, H, W]`` in [0, 1]
and ``labels`` int64 ``[N]``. A missing or truncated file raises RobustTextError naming it.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robusttext.errors import RobustTextError

# IDX type byte -> big-endian numpy dtype ("THE IDX FILE FORMAT", yann.lecun.com/exdb/mnist).
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Hub id -> (image column, label column) of the Hugging Face data sets this module knows.
HUB_COLUMNS = {
    "ylecun/mnist": ("image", "label"),
    "mnist": ("image", "label"),
    "zalando-datasets/fashion_mnist": ("image", "label"),
    "fashion_mnist": ("image", "label"),
    "uoft-cs/cifar10": ("img", "label"),
    "cifar10": ("img", "label"),
}

# Short names for folders every machine with the Debian package has.
KNOWN_FOLDERS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}

SPLITS = ("train", "test")
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCHES = ("test_batch",)


@dataclass
class ImageDataset:
    """``images`` float32 ``[N, C, H, W]`` in [0, 1]; ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, limit: int | None) -> ImageDataset:
        """The first ``limit`` examples (all of them when ``limit`` is None)."""
        if limit is None or limit >= len(self):
            return self
        if limit <= 0:
            raise RobustTextError(f"subset size must be positive, got {limit}")
        return ImageDataset(self.images[:limit], self.labels[:limit], self.source)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by magic number, not by name)."""
    if not path.is_file():
        raise RobustTextError(f"missing data file {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise RobustTextError(f"truncated or corrupt gzip file {path} ({error})") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Decode one IDX file (optionally gzipped) into an array of its declared shape and type."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise RobustTextError(f"{path} is not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise RobustTextError(f"{path}: unknown IDX type byte 0x{type_code:02x}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise RobustTextError(f"truncated IDX file {path}: header cut short")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(raw) - header_len
    if body < expected:
        raise RobustTextError(
            f"truncated IDX file {path}: {body} data bytes, shape {shape} needs {expected}"
        )
    if body > expected:
        raise RobustTextError(f"{path}: {body - expected} bytes after the IDX data")
    array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header_len)
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, prefix: str, kind: str) -> Path:
    """``train-images-idx3-ubyte[.gz]`` and the ``train-images.idx3-ubyte`` spelling."""
    rank = "idx3" if kind == "images" else "idx1"
    names = [f"{prefix}-{kind}-{rank}-ubyte", f"{prefix}-{kind}.{rank}-ubyte"]
    for name in names:
        for candidate in (folder / name, folder / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise RobustTextError(f"missing data file {folder / (names[0] + '.gz')} (or unzipped)")


def load_idx_folder(folder: str | Path, split: str) -> ImageDataset:
    """MNIST-style folder: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``."""
    folder = Path(folder)
    prefix = {"train": "train", "test": "t10k"}[_check_split(split)]
    images_path = _find_idx(folder, prefix, "images")
    labels_path = _find_idx(folder, prefix, "labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise RobustTextError(
            f"{images_path}: expected images [N, H, W] and labels [N], got {images.shape} "
            f"and {labels.shape}"
        )
    if images.dtype != np.uint8:
        raise RobustTextError(f"{images_path}: expected unsigned-byte pixels, got {images.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise RobustTextError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} "
            f"{labels.shape[0]} labels"
        )
    return _to_dataset(images[:, None], labels, str(folder))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, strings, numbers and numpy arrays (the CIFAR batch format)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images uint8 ``[N, 3, 32, 32]``, labels int64 ``[N]``."""
    path = Path(path)
    if not path.is_file():
        raise RobustTextError(f"missing data file {path}")
    try:
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise RobustTextError(f"truncated or corrupt CIFAR batch {path} ({error})") from None
    if not isinstance(batch, dict):
        raise RobustTextError(f"{path}: a CIFAR batch is a dict, found {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise RobustTextError(f"{path}: CIFAR batch lacks 'data' or 'labels'")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise RobustTextError(
            f"{path}: expected data [N, 3072] and labels [N], got {data.shape}, {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar_folder(folder: str | Path, split: str) -> ImageDataset:
    """CIFAR-10 python batches (``data_batch_1``..``5``, ``test_batch``) in ``folder`` or in
    ``folder/cifar-10-batches-py``."""
    folder = Path(folder)
    if not (folder / "test_batch").exists() and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = CIFAR_TRAIN_BATCHES if _check_split(split) == "train" else CIFAR_TEST_BATCHES
    parts = [read_cifar_batch(folder / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return _to_dataset(images, labels, str(folder))


def hf_to_dataset(dataset, image_column: str, label_column: str, source: str) -> ImageDataset:
    """Convert a ``datasets.Dataset`` of PIL images and integer labels."""
    arrays = [np.asarray(image, dtype=np.uint8) for image in dataset[image_column]]
    images = np.stack(arrays)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    labels = np.asarray(dataset[label_column], dtype=np.int64)
    return _to_dataset(images, labels, source)


def load_hub(hub_id: str, split: str) -> ImageDataset:
    """Load ``ylecun/mnist``, ``zalando-datasets/fashion_mnist`` or ``uoft-cs/cifar10``."""
    if hub_id not in HUB_COLUMNS:
        raise RobustTextError(
            f"unknown image data set {hub_id!r}: give a folder or one of {sorted(HUB_COLUMNS)}"
        )
    import datasets

    dataset = datasets.load_dataset(hub_id, split=_check_split(split))
    return hf_to_dataset(dataset, *HUB_COLUMNS[hub_id], source=hub_id)


def load_images(source: str | Path, split: str) -> ImageDataset:
    """Load a split from a folder (IDX or CIFAR batches, detected), a short name or a hub id."""
    source_str = str(source)
    folder = Path(KNOWN_FOLDERS.get(source_str, source_str))
    if folder.is_dir():
        if any(folder.glob("*idx3-ubyte*")):
            return load_idx_folder(folder, split)
        if (folder / "test_batch").exists() or (folder / "cifar-10-batches-py").is_dir():
            return load_cifar_folder(folder, split)
        if any(folder.glob("data_batch_*")):
            return load_cifar_folder(folder, split)
        raise RobustTextError(
            f"{folder} holds neither IDX files (*-images-idx3-ubyte[.gz]) nor CIFAR-10 batches"
        )
    if source_str in HUB_COLUMNS:
        return load_hub(source_str, split)
    raise RobustTextError(
        f"data source {source_str!r} is neither a folder nor a known hub id "
        f"({', '.join(sorted(HUB_COLUMNS))})"
    )


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise RobustTextError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _to_dataset(images: np.ndarray, labels: np.ndarray, source: str) -> ImageDataset:
    """uint8 ``[N, C, H, W]`` -> float32 in [0, 1]; labels -> int64."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    return ImageDataset(tensor, torch.from_numpy(labels.astype(np.int64)), source)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of ``images`` ``[N, C, H, W]``."""
    flat = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    return flat.mean(1).tolist(), flat.std(1).tolist()
