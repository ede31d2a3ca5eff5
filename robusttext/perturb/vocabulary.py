"""A token <-> id table with the padding token at 0 and the unknown token at 1, and the
optional variant aliases of a robust encoding."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from robusttext.errors import RobustTextError
from robusttext.perturb.sources import SubstitutionSource, source_from_json

PAD = "<pad>"
UNK = "<unk>"
RULE_SOURCES = ("char_flips",)
"""Alias sources a saved vocabulary stores as they are (a keyboard map: smaller than the
aliases it makes); any other source is stored as the ``AliasTable`` of the aliases it made."""


class AliasTable(SubstitutionSource):
    """The aliases of a vocabulary as a source: token -> the variants it owns, in the order
    they were assigned, so ``Vocabulary(tokens, alias_source=table)`` makes the same aliases.
    What a checkpoint stores for an alias source that is large or lives in a file."""

    kind = "alias_table"

    def __init__(self, table: dict[str, list[str]]):
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(a, str) for a in v)
            for k, v in table.items()
        ):
            raise RobustTextError("an alias table is a JSON object token -> list of strings")
        self.table = {token: tuple(variants) for token, variants in table.items()}

    @classmethod
    def of(cls, vocab: Vocabulary) -> AliasTable:
        table: dict[str, list[str]] = {}
        for variant, token in vocab.aliases.items():
            table.setdefault(token, []).append(variant)
        return cls(table)

    def word_candidates(self, word: str) -> tuple[str, ...]:
        return self.table.get(word, ())

    def to_json(self) -> dict:
        return {"kind": self.kind, "table": {k: list(v) for k, v in self.table.items()}}

    @classmethod
    def from_json(cls, obj: dict) -> AliasTable:
        return cls(obj.get("table"))


class Vocabulary:
    """Token ids for a model's embedding table.

    Index 0 is ``"<pad>"`` and index 1 is ``"<unk>"``; ``tokens`` may list them first or leave
    them out (they are then added). Unknown tokens map to ``unk_id``.

    ``alias_source``: a substitution source (e.g. ``CharacterFlips``) whose word candidates of
    each token become *aliases* of it: a candidate that is not itself a token takes the id of
    the first token (in vocabulary order, most frequent first) that proposes it, instead of the
    unknown id. This is a robust encoding in the sense of Jones et al. 2020 ("Robust Encodings:
    A Framework for Combating Adversarial Typos"): a typo of a known word reads as that word,
    so only the candidates that are themselves tokens can move the model. Certificates stay
    exact, because the perturbation space maps every candidate through this same table.
    Aliases get no embedding rows (``len`` counts tokens only); ``aliases`` maps each alias to
    its token.
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Iterable[str], alias_source: SubstitutionSource | None = None):
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
        if alias_source is not None and not isinstance(alias_source, SubstitutionSource):
            raise RobustTextError(f"alias_source must be a substitution source, got "
                                  f"{type(alias_source).__name__}")
        self.alias_source = alias_source
        self.aliases: dict[str, str] = {}
        if alias_source is not None:
            for token in self._tokens[2:]:
                for variant in alias_source.word_candidates(token):
                    if variant not in self._ids:
                        self._ids[variant] = self._ids[token]
                        self.aliases[variant] = token

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
        """Whether ``token`` has an id of its own or an alias's (not the unknown id)."""
        return token in self._ids

    def __iter__(self):
        return iter(self._tokens)

    def __repr__(self) -> str:
        aliases = f", {len(self.aliases)} aliases" if self.alias_source is not None else ""
        return f"Vocabulary({len(self)} tokens{aliases})"

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

    @property
    def known(self) -> list[str]:
        """The tokens, then the aliases: every string that does not map to the unknown id
        (besides ``"<unk>"`` itself)."""
        return [*self._tokens, *self.aliases]

    def to_json(self) -> dict:
        """The tokens, and the alias source the aliases are rebuilt from: a keyboard map as it
        is, any other source as the ``AliasTable`` of the aliases it made (self-contained)."""
        if self.alias_source is None:
            return {"tokens": list(self._tokens)}
        source = (self.alias_source if self.alias_source.kind in RULE_SOURCES
                  else AliasTable.of(self))
        return {"tokens": list(self._tokens), "alias_source": source.to_json()}

    @classmethod
    def from_json(cls, obj: dict) -> Vocabulary:
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise RobustTextError("a vocabulary in JSON is an object with a 'tokens' list")
        tokens = obj["tokens"]
        if tokens[:2] != [PAD, UNK]:
            raise RobustTextError(f"a saved vocabulary starts with {PAD!r}, {UNK!r}")
        source = obj.get("alias_source")
        return cls(tokens, alias_source=None if source is None else source_from_json(source))
