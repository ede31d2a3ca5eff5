"""Substitution sets through a sub-word tokenizer (WordPiece, byte-level BPE).

A word-level ``PerturbationSpace`` proposes candidate words; a sub-word model reads word
pieces. A candidate may split into another number of pieces than the word it replaces, or into
the same number differing in several pieces, and the bound engine's substitution set changes
one token position per substitution. ``SubwordSpace`` keeps exactly the candidates that such a
set covers without loosening it:

- every word is split into pieces on its own (a space before it, so byte-level BPE marks it as
  a word start), and the sentence is ``[CLS] pieces of word 1 ... [SEP]`` (the tokenizer's
  ``cls_token`` / ``sep_token``: ``<s>`` / ``</s>`` for RoBERTa);
- a word of ``k`` pieces has one changeable piece slot: slot 0 when ``k = 1``; otherwise the
  slot where the most candidates differ from the word (ties: the first);
- a candidate is kept when it splits into ``k`` pieces that differ from the word's in that
  slot only; it becomes a candidate piece at that position.

So each word has at most one changeable position, a rewrite of at most ``budget`` words is a
rewrite of at most ``budget`` positions and back, and the piece-level set the bounds cover is
the word-level set of the kept candidates, exactly: certification, the attack and the
enumeration all work on it. Every candidate that had to be dropped is counted, per sentence and
in total, by reason (``DROP_REASONS``), never silently.

``encode`` returns the same ``EncodedBatch`` a word vocabulary gives (ids are the tokenizer's,
padded with its ``pad_token_id``), so ``robusttext.certify.certify(model, space.vocabulary,
space, examples)`` runs unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from robusttext.errors import RobustTextError
from robusttext.perturb.encoded import EncodedBatch
from robusttext.perturb.space import PerturbationSpace

DROP_REASONS = {
    "piece_count": "splits into another number of pieces than the word",
    "several_pieces": "differs from the word in more than one piece",
    "other_slot": "differs from the word in another piece than the word's changeable one",
    "max_candidates": "cut by the space's max_candidates",
}
"""Why a candidate word is left out of the set, by key (the keys of the JSON counts)."""


@dataclass
class DroppedCandidates:
    """Dropped candidates of one sentence: ``counts`` reason -> number, and ``words`` the
    (word, candidate, reason) triples."""

    counts: Counter = field(default_factory=Counter)
    words: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict:
        return {"total": self.total, **{k: self.counts.get(k, 0) for k in DROP_REASONS}}


@dataclass(frozen=True)
class _Word:
    """A word's piece ids, its changeable slot, the kept candidate piece ids at that slot and
    the dropped (candidate, reason) pairs."""

    pieces: tuple[int, ...]
    slot: int
    candidates: tuple[int, ...]
    dropped: tuple[tuple[str, str], ...]


class PieceVocabulary:
    """The token <-> id view of a ``transformers`` tokenizer that certification needs
    (``pad_id``, ``token(id)``, ``len``)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            raise RobustTextError(f"the tokenizer {type(tokenizer).__name__} has no pad token; "
                                  "robusttext pads batches with it")
        self.pad_id = int(tokenizer.pad_token_id)

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __repr__(self) -> str:
        return f"PieceVocabulary({type(self.subword_tokenizer).__name__}, {len(self)} pieces)"

    def token(self, index: int) -> str:
        return self.tokenizer.convert_ids_to_tokens(int(index))


class SubwordSpace:
    """A word-level ``PerturbationSpace`` seen through a sub-word tokenizer (see the module
    docstring). ``max_length``: the most pieces (special tokens included) a sentence may have.

    ``dropped``: sentence text -> DroppedCandidates for every sentence encoded so far;
    ``dropped_totals()`` sums them by reason.
    """

    def __init__(self, space: PerturbationSpace, tokenizer, max_length: int | None = None):
        if not isinstance(space, PerturbationSpace):
            raise RobustTextError(f"SubwordSpace takes a PerturbationSpace, got "
                                  f"{type(space).__name__}")
        if space.level != "word":
            raise RobustTextError("a sub-word model takes word-level substitutions; this space is "
                                  f"at the {space.level} level (use --typos for word-level "
                                  "keyboard flips)")
        for name in ("cls_token_id", "sep_token_id"):
            if getattr(tokenizer, name, None) is None:
                raise RobustTextError(f"the tokenizer {type(tokenizer).__name__} has no "
                                      f"{name.removesuffix('_id')}; robusttext frames sentences "
                                      "with its cls and sep tokens")
        self.space = space
        self.subword_tokenizer = tokenizer
        self.vocabulary = PieceVocabulary(tokenizer)
        self.max_length = max_length
        self.dropped: dict[str, DroppedCandidates] = {}
        self._pieces: dict[str, tuple[int, ...]] = {}
        self._words: dict[tuple[str, bool], _Word] = {}

    # -- what certify reads from a space ----------------------------------------------------

    @property
    def budget(self) -> int | None:
        return self.space.budget

    @property
    def level(self) -> str:
        return self.space.level

    @property
    def tokenizer(self) -> str:
        """The word tokenizer style of the space (``glue`` or ``raw``), before the pieces."""
        return self.space.tokenizer

    @property
    def sources(self):
        return self.space.sources

    @property
    def max_candidates(self) -> int | None:
        return self.space.max_candidates

    def describe(self) -> str:
        return f"{self.space.describe()}; {type(self.subword_tokenizer).__name__} pieces"

    def split(self, sentence: str, what: str = "sentence") -> tuple[list[str], list[bool]]:
        """The words of ``sentence`` and whether each is protected (see PerturbationSpace)."""
        return self.space.split(sentence, what)

    def to_json(self) -> dict:
        return self.space.to_json()

    def candidates(self, sentence: str, vocab: PieceVocabulary | None = None):
        """Pieces of ``sentence`` (special tokens included) and, per piece, ``(piece id,
        candidate piece ids)``, as ``PerturbationSpace.candidates`` gives them per token."""
        enc = self.encode([sentence], vocab)
        n = int(enc.mask[0].sum())
        entries = [(int(enc.token_ids[0, p]),
                    tuple(enc.candidate_ids[0, p][enc.candidate_mask[0, p]].tolist()))
                   for p in range(n)]
        return enc.tokens[0], entries

    # -- pieces -----------------------------------------------------------------------------

    def pieces(self, word: str) -> tuple[int, ...]:
        """The piece ids of ``word`` as a word of a sentence (no special tokens)."""
        cached = self._pieces.get(word)
        if cached is not None:
            return cached
        try:
            ids = self.subword_tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        except Exception as error:  # tokenizers raise their own errors on text they cannot map
            name = type(self.subword_tokenizer).__name__
            raise RobustTextError(f"the tokenizer {name} cannot encode {word!r}: {error}"
                                  ) from None
        if not ids:
            raise RobustTextError(f"the tokenizer {type(self.subword_tokenizer).__name__} encodes "
                                  f"{word!r} as no pieces at all")
        self._pieces[word] = result = tuple(int(i) for i in ids)
        return result

    def _word(self, word: str, protected: bool) -> _Word:
        key = (word, protected)
        cached = self._words.get(key)
        if cached is not None:
            return cached
        own = self.pieces(word)
        k = len(own)
        proposals: list[tuple[str, tuple[int, ...]]] = []
        for candidate in self.space.token_candidates(word, protected):
            proposals.append((candidate, self.pieces(candidate)))
        differing = {c: [j for j in range(k) if p[j] != own[j]]
                     for c, p in proposals if len(p) == k}
        votes = Counter(d[0] for d in differing.values() if len(d) == 1)
        slot = min(votes, key=lambda j: (-votes[j], j)) if votes else 0
        kept: dict[int, None] = {}
        dropped: list[tuple[str, str]] = []
        for candidate, p in proposals:
            if len(p) != k:
                dropped.append((candidate, "piece_count"))
                continue
            d = differing[candidate]
            if not d:  # the same pieces (e.g. another case): the same sentence for the model
                continue
            if len(d) > 1:
                dropped.append((candidate, "several_pieces"))
            elif d[0] != slot:
                dropped.append((candidate, "other_slot"))
            elif p[slot] not in kept:
                if (self.space.max_candidates is not None
                        and len(kept) >= self.space.max_candidates):
                    dropped.append((candidate, "max_candidates"))
                else:
                    kept[p[slot]] = None
        self._words[key] = entry = _Word(own, slot, tuple(kept), tuple(dropped))
        return entry

    # -- the contract -----------------------------------------------------------------------

    def encode(self, sentences: str | Sequence[str], vocab: PieceVocabulary | None = None
               ) -> EncodedBatch:
        """Piece ids ``[batch, length]`` (``[CLS] ... [SEP]``, right-padded), mask and
        candidate piece ids ``[batch, length, candidates]`` (see EncodedBatch). ``vocab``, if
        given, must be this space's ``vocabulary``. Records each sentence's dropped
        candidates in ``dropped``."""
        rows, tokens = self.rows(sentences, vocab)
        return EncodedBatch.from_rows(rows, self.vocabulary.pad_id, tokens)

    def rows(self, sentences: str | Sequence[str], vocab: PieceVocabulary | None = None):
        """What ``encode`` pads into tensors: per sentence, per piece ``(piece id, candidate
        piece ids)``, and the piece strings (see ``PerturbationSpace.rows``)."""
        if vocab is not None and (not isinstance(vocab, PieceVocabulary)
                                  or vocab.tokenizer is not self.subword_tokenizer):
            raise RobustTextError("a SubwordSpace encodes with its own tokenizer; pass "
                                  "space.vocabulary (or nothing) as the vocabulary")
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, (list, tuple)) or not sentences:
            raise RobustTextError("encode takes a sentence or a non-empty list of sentences")
        pieces = self.subword_tokenizer
        cls, sep = int(pieces.cls_token_id), int(pieces.sep_token_id)
        rows: list[list[tuple[int, tuple[int, ...]]]] = []
        for index, sentence in enumerate(sentences):
            words, protected = self.split(sentence, what=f"sentence {index}")
            row = [(cls, ())]
            lost = DroppedCandidates()
            for word, guard in zip(words, protected, strict=True):
                entry = self._word(word, guard)
                for j, piece in enumerate(entry.pieces):
                    row.append((piece, entry.candidates if j == entry.slot else ()))
                for candidate, reason in entry.dropped:
                    lost.counts[reason] += 1
                    lost.words.append((word, candidate, reason))
            row.append((sep, ()))
            if self.max_length is not None and len(row) > self.max_length:
                raise RobustTextError(f"sentence {index} has {len(row)} pieces with the special "
                                      f"tokens, more than the model's {self.max_length} "
                                      "positions")
            self.dropped[sentence] = lost
            rows.append(row)
        tokens = [[self.vocabulary.token(t) for t, _ in r] for r in rows]
        return rows, tokens

    def dropped_lines(self, sentence: str, shown: int = 12) -> list[str]:
        """The account of ``sentence``'s dropped candidates for the one-sentence view: a line
        with the count by reason (as under the table), then one line per word with the
        candidates it lost and why (at most ``shown`` listed; each once per word, while the
        count is per occurrence, as in the table and the JSON)."""
        if sentence not in self.dropped:
            self.encode([sentence])
        lost = self.dropped[sentence]
        counts = lost.to_json()
        reasons = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items()
                            if k != "total" and n)
        if not lost.total:
            return ["sub-word candidates dropped: 0"]
        lines = [f"sub-word candidates dropped: {lost.total} ({reasons}), not in the set:"]
        by_word: dict[str, dict[str, str]] = {}
        for word, candidate, reason in lost.words:
            by_word.setdefault(word, {}).setdefault(candidate, reason)
        for word, candidates in by_word.items():
            listed = [f"{c} ({r.replace('_', ' ')})" for c, r in candidates.items()]
            more = len(listed) - shown
            lines.append(f"        {word} -> {', '.join(listed[:shown])}"
                         + (f", ... (+{more})" if more > 0 else ""))
        return lines

    def dropped_totals(self, sentences: Sequence[str] | None = None) -> dict:
        """Dropped candidates summed over ``sentences`` (default: every one encoded so far),
        by reason, with ``total``."""
        chosen = self.dropped.values() if sentences is None else [
            self.dropped[s] for s in sentences if s in self.dropped]
        counts: Counter = Counter()
        for lost in chosen:
            counts.update(lost.counts)
        return {"total": sum(counts.values()), **{k: counts.get(k, 0) for k in DROP_REASONS}}
