"""A token <-> id table with the padding token at 0 and the unknown token at 1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from robusttext.errors import RobustTextError

PAD = "<pad>"
UNK = "<unk>"


class Vocabulary:
    """Token ids for a model's embedding table.

    Index 0 is ``"<pad>"`` and index 1 is ``"<unk>"``; ``tokens`` may list them first or leave
    them out (they are then added). Unknown tokens map to ``unk_id``.
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Iterable[str]):
        tokens = list(tokens)
        if tokens[:2] == [PAD, UNK]:
            tokens = tokens[2:]
        self._tokens: list[str] = [PAD, UNK]
        self._ids: dict[str, int] = {PAD: 0, UNK: 1}
        for token in tokens:
            if not isinstance(token, str):
                raise RobustTextError(f"vocabulary tokens must be strings, got {token!r}")
            if token in self._ids:
                raise RobustTextError(f"vocabulary token {token!r} appears twice")
            self._ids[token] = len(self._tokens)
            self._tokens.append(token)

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Iterable[str]],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Vocabulary of the tokens seen at least ``min_count`` times, most frequent first
        (ties in alphabetical order); ``max_size`` bounds the size including the two specials."""
        counts = Counter(token for tokens in token_lists for token in tokens)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size < 2:
                raise RobustTextError(f"max_size must be at least 2, got {max_size}")
            ranked = ranked[: max_size - 2]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __iter__(self):
        return iter(self._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def id(self, token: str) -> int:
        """The id of ``token``; ``unk_id`` when absent."""
        return self._ids.get(token, self.unk_id)

    def ids(self, tokens: Iterable[str]) -> list[int]:
        return [self._ids.get(t, self.unk_id) for t in tokens]

    def token(self, index: int) -> str:
        return self._tokens[index]

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def to_json(self) -> dict:
        return {"tokens": list(self._tokens)}

    @classmethod
    def from_json(cls, obj: dict) -> Vocabulary:
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise RobustTextError("a vocabulary in JSON is an object with a 'tokens' list")
        tokens = obj["tokens"]
        if tokens[:2] != [PAD, UNK]:
            raise RobustTextError(f"a saved vocabulary starts with {PAD!r}, {UNK!r}")
        return cls(tokens)
