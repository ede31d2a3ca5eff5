"""Initialising a model's embedding table from a transformers model's input embeddings.

``pretrained_embeddings(source, vocab)`` loads ``AutoModel.from_pretrained(source)`` (a hub id
or a local folder), takes its input embedding matrix ``[model_vocab, dim]`` and gives each token
of ``vocab`` a row:

- with ``token_to_row`` (a dict token -> row index of the matrix), that row;
- otherwise the mean of the rows of the token's sub-word pieces under the model's tokenizer
  (``AutoTokenizer.from_pretrained(source)``, no special tokens added).

Tokens with no row (not in ``token_to_row``, or no pieces) get a random row with the matrix's
standard deviation; the padding row is zero. The table's dimension is the transformer's, so the
text model must use that ``embed_dim``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from robusttext.errors import RobustTextError
from robusttext.perturb import Vocabulary


def pretrained_embeddings(
    source: str | Path,
    vocab: Vocabulary,
    token_to_row: Mapping[str, int] | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """``(table [len(vocab), dim] float32, number of tokens that found a pretrained row)``."""
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        raise RobustTextError(f"cannot load a transformers model from {source!r}: {error}") \
            from None
    matrix = model.get_input_embeddings().weight.detach().float()
    rows, dim = matrix.shape
    if token_to_row is None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source))
        except (OSError, ValueError) as error:
            raise RobustTextError(f"cannot load the tokenizer of {source!r} ({error}); pass "
                                  "token_to_row instead") from None

        def pieces(token: str) -> list[int]:
            return list(tokenizer(token, add_special_tokens=False)["input_ids"])
    else:
        def pieces(token: str) -> list[int]:
            row = token_to_row.get(token)
            return [] if row is None else [row]

    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(len(vocab), dim, generator=generator) * matrix.std()
    found = 0
    for index, token in enumerate(vocab.tokens):
        if index == vocab.pad_id:
            continue
        ids = pieces(token)
        if not ids:
            continue
        bad = [i for i in ids if not 0 <= i < rows]
        if bad:
            raise RobustTextError(f"token {token!r} maps to row {bad[0]}, outside the "
                                  f"{rows}-row embedding matrix of {source!r}")
        table[index] = matrix[ids].mean(0)
        found += 1
    table[vocab.pad_id] = 0
    return table, found
