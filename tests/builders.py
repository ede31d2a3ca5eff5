"""Small data files, configurations and models that several test modules build (test modules
import these from here, never from each other)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from robusttext.perturb import CharacterFlips, PerturbationSpace, SynonymTable, Vocabulary
from robusttext.text import WordCNN, save_text_model
from robusttext.train import TrainConfig

# -- text data files and a training configuration ----------------------------------------------

ROWS = [("a fine , moving film", 1), ("dull and tired", 0), ("a good story", 1),
        ("bad acting", 0), ("funny and warm", 1), ("a boring mess", 0), ("great fun", 1),
        ("weak , lazy script", 0)]


def one_flip_strings(sentence: str, keyboard: dict[str, list[str]]) -> set[str]:
    """Every string at most one character flip away from ``sentence``, by indexing the string."""
    found = {sentence}
    for i, char in enumerate(sentence):
        for other in keyboard.get(char, []):
            found.add(sentence[:i] + other + sentence[i + 1:])
    return found


def write_tsv(path, rows=ROWS, header="sentence\tlabel"):
    """``rows`` of ``(sentence, label)`` as a TSV file with ``header`` at ``path``."""
    path.write_text(header + "\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return path


def tiny_config(tmp_path, **changes):
    settings = dict(model="char-cnn", embed_dim=8, filters=6, train=str(write_tsv(
        tmp_path / "train.tsv")), dev=str(tmp_path / "train.tsv"), sources=["qwerty"],
        budget=1, epochs=2, batch_size=4, warmup_epochs=0, ramp_epochs=1, device="cpu",
        out=str(tmp_path / "run"), eval_budgets=[1], enumerate_limit=200, progress=False)
    settings.update(changes)
    return TrainConfig(**settings)


# -- a saved word model for the command line ----------------------------------------------------

SENTENCES = [("a good movie", 1), ("a bad plot", 0), ("good plot , bad movie", 1),
             ("the movie was bad", 0), ("fine film", 1)]
SYNONYMS = {"good": ["great", "fine"], "movie": ["film"], "bad": ["awful", "poor"],
            "plot": ["story"]}


def save_word_model(path):
    """A seeded, untrained word CNN over the words of SENTENCES and SYNONYMS, saved at path."""
    torch.manual_seed(0)
    words = [w for s, _ in SENTENCES for w in s.split()] + [w for v in SYNONYMS.values()
                                                            for w in v]
    vocab = Vocabulary(dict.fromkeys(words))
    space = PerturbationSpace(SynonymTable(SYNONYMS), budget=2)
    return save_text_model(path, WordCNN(len(vocab), embed_dim=8, filters=6), vocab, space)


# -- tiny spaces over a handful of words and characters -----------------------------------------

WORD_SYNONYMS = SynonymTable({"good": ["fine", "great"], "film": ["movie"], "dull": ["boring"]})


def word_setup():
    vocab = Vocabulary("a good film , not dull fine great movie boring".split())
    space = PerturbationSpace([WORD_SYNONYMS], budget=2, stop_words=[])
    return vocab, space


def char_setup():
    space = PerturbationSpace([CharacterFlips({"a": ["s"], "o": ["p", "i"], "d": ["f"]})],
                              budget=2, level="char")
    vocab = Vocabulary(list("a godfilmsp"))
    return vocab, space


# -- a random substitution problem and a CNN body ------------------------------------------------

class ConvBody(nn.Module):
    """Conv1d over the sequence, ReLU, masked mean pooling, linear head."""

    def __init__(self, dim, hidden=6, width=3):
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, width, padding=width // 2)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x, mask):  # x [batch, length, dim], mask [batch, length]
        h = torch.relu(self.conv(x.transpose(1, 2))) * mask.unsqueeze(1)
        return self.head(h.sum(2) / mask.sum(1, keepdim=True))


def random_problem(seed, batch=3, length=5, candidates=3, dim=4, vocab=12):
    """Token ids, candidate ids with a mask, and an embedding table; the last sentence is padded."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(vocab, dim, generator=g)
    ids = torch.randint(1, vocab, (batch, length), generator=g)
    cand = torch.randint(1, vocab, (batch, length, candidates), generator=g)
    cand_mask = torch.rand(batch, length, candidates, generator=g) < 0.6
    mask = torch.ones(batch, length)
    mask[-1, -2:] = 0  # padding: no candidates there
    cand_mask[-1, -2:] = False
    ids[-1, -2:] = 0
    return table, ids, cand, cand_mask, mask


# -- image data files in the IDX and CIFAR-10 formats -------------------------------------------

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


# -- random image networks mixing the supported operations -------------------------------------

class Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.a = nn.Linear(width, width)
        self.b = nn.Linear(width, width)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x))) - 0.5 * x


def bn_eval(layer):
    layer.running_mean.uniform_(-0.5, 0.5)
    layer.running_var.uniform_(0.5, 2.0)
    layer.weight.data.uniform_(-2, 2)
    layer.bias.data.uniform_(-1, 1)
    return layer


def random_network(seed):
    """A random deep network mixing the supported operations."""
    g = torch.Generator().manual_seed(seed)
    pick = lambda options: options[torch.randint(len(options), (1,), generator=g).item()]  # noqa: E731
    layers = [nn.Conv2d(1, 4, 3, padding=pick([0, 1]))]
    channels, size = 4, 8 if layers[0].padding == (1, 1) else 6
    for _ in range(2):
        layers.append(pick([nn.ReLU(), nn.Tanh(), nn.LeakyReLU(0.1), nn.Sigmoid()]))
        if pick([True, False]):
            layers.append(bn_eval(nn.BatchNorm2d(channels)))
        layers.append(nn.Conv2d(channels, 4, 3, padding=1))
        if pick([True, False]) and size >= 4:
            layers.append(pick([nn.AvgPool2d(2), nn.MaxPool2d(2)]))
            size //= 2
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(4 * size * size, 10), nn.ReLU(),
               Residual(10), nn.Linear(10, 4)]
    return nn.Sequential(*layers).eval()


def random_text_problem(level, make, seed):
    """``(vocab, space, sentences, batch, model)``: two sentences of ``level`` ("word" or
    "char") encoded in the tiny space of ``word_setup``/``char_setup``, and ``make(len(vocab))``
    in eval mode with N(0, 1) embeddings (padding row 0 kept zero), seeded by ``seed``."""
    torch.manual_seed(seed)
    vocab, space = word_setup() if level == "word" else char_setup()
    sentences = (["a good film , not dull", "good film"] if level == "word"
                 else ["a good film", "dog"])
    batch = space.encode(sentences, vocab)
    model = make(len(vocab)).eval()
    with torch.no_grad():
        model.embedding.weight.normal_()
        model.embedding.weight[0] = 0
    return vocab, space, sentences, batch, model
