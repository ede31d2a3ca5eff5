"""Writers of tiny IDX and CIFAR-10 files for the vision tests (formats written by hand).

The other vision tests load this module by file path."""

from __future__ import annotations

import numpy as np

from tests.builders import idx_bytes


def test_idx_writer_header():
    data = idx_bytes(np.zeros((2, 3), np.uint8))
    assert data[:4] == bytes([0, 0, 8, 2]) and data[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert len(data) == 12 + 6
