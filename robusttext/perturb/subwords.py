"""Substitution sets through a sub-word tokenizer, read as the model reads the sentence.

A word-level ``PerturbationSpace`` proposes candidate words; a ``transformers`` model reads the
ids its own tokenizer gives for the whole sentence: case kept, its special tokens, the
first-word rule of byte-level BPE (no ``Ġ`` on the first word), punctuation attached or not.
``SubwordSpace`` works on exactly that reading:

- the sentence is the text the user wrote; its ids are ``tokenizer(text)["input_ids"]`` and the
  offsets place each piece in the text;
- its words are robusttext's GLUE words (``robusttext.perturb.tokenizers.word_spans``), each
  with its place in the text; a word's candidates are looked up lower-cased (stop words and
  the allow/deny filters as for any space) and written in the word's case (``Charming`` ->
  ``Enchanting``, ``GOOD`` -> ``GREAT``);
- a rewrite is a string edit: the word's characters replaced by the candidate. Every
  candidate's one-word rewrite of the sentence is read again by the tokenizer. A word has one
  changeable piece slot (the piece where the most candidates change the reading and nothing
  else; ties: the first), and a candidate is kept when its rewrite reads as the sentence's
  ids with that one position changed. The others are dropped and counted by reason
  (``DROP_REASONS``): another number of pieces, several pieces changed, another piece changed
  (in the word or beside it);
- rewrites of several words combine: the tokenizer's pre-tokenizer must split at spaces
  (checked when the space is made; every ``transformers`` BERT, RoBERTa, DistilBERT and
  SentencePiece-style tokenizer does), so the pieces of one space-separated chunk of the text do
  not depend on another, and robusttext changes at most one word per chunk (in ``it's`` or
  ``good/bad`` only the first word with candidates may change).

So the piece-level set the bounds cover is exactly the set of string rewrites of at most
``budget`` words, as the tokenizer reads them: certification, the attack and the enumeration all
work on it, and ``rewrite`` turns any of its id rows back into the text it reads
(``tests/test_hf_tokenizers.py`` re-reads every enumerated rewrite through the tokenizer and
the model's own forward).

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
from robusttext.perturb.tokenizers import check_text, word_spans, written_like

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
class Reading:
    """One sentence as the tokenizer reads it.

    ``ids``: its piece ids, special tokens included; ``pieces``: their strings; ``entries``: per
    piece ``(id, kept candidate piece ids)``; ``edits``: per changeable position ``(start, end,
    {candidate piece id: the text written there})`` (the characters of the word it rewrites);
    ``dropped``: the candidates left out; ``unknown``: positions read as the unknown piece."""

    text: str
    ids: tuple[int, ...]
    pieces: tuple[str, ...]
    entries: tuple[tuple[int, tuple[int, ...]], ...]
    edits: dict
    dropped: DroppedCandidates
    unknown: tuple[int, ...]


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
        return f"PieceVocabulary({type(self.tokenizer).__name__}, {len(self)} pieces)"

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
                                  f"at the {space.level} level (use --sources qwerty for "
                                  "word-level keyboard flips)")
        check_tokenizer(tokenizer)
        self.space = space
        self.subword_tokenizer = tokenizer
        self.vocabulary = PieceVocabulary(tokenizer)
        self.max_length = max_length
        self.dropped: dict[str, DroppedCandidates] = {}
        self._pieces: dict[str, tuple[int, ...]] = {}
        self._readings: dict[str, Reading] = {}
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

    # -- a word read alone (for inspection; sentences are read whole by ``read``) -----------

    def pieces(self, word: str) -> tuple[int, ...]:
        """The piece ids of ``word`` read alone after a space (no special tokens): the pieces of
        a word inside a lower-cased sentence for tokenizers that read words apart."""
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
        """``word`` read alone (``pieces``): its slot and the candidates kept by the same
        rule as ``read``'s, for inspection."""
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
        readings = [self.read(sentence, f"sentence {index}")
                    for index, sentence in enumerate(sentences)]
        return [list(r.entries) for r in readings], [list(r.pieces) for r in readings]

    def read(self, sentence: str, what: str = "sentence") -> Reading:
        """``sentence`` as the tokenizer reads it, with its kept candidates (see the module
        docstring); computed once per sentence."""
        cached = self._readings.get(sentence)
        if cached is not None:
            return cached
        check_text(sentence, what)
        ids, offsets, special = self._encode_text(sentence)
        if self.max_length is not None and len(ids) > self.max_length:
            raise RobustTextError(f"{what} has {len(ids)} pieces with the special tokens, more "
                                  f"than the model's {self.max_length} positions")
        plans = self._plans(sentence, offsets, special)
        texts = [t for _, _, _, _, rewrites in plans for _, t in rewrites]
        read_again = self._ids_of(texts, sentence) if texts else []
        candidates: dict[int, tuple[int, ...]] = {}
        edits: dict[int, tuple[int, int, dict[int, str]]] = {}
        lost = DroppedCandidates()
        at = 0
        for word, start, end, positions, rewrites in plans:
            found = read_again[at:at + len(rewrites)]
            at += len(rewrites)
            slot, kept, dropped = self._keep(ids, positions, rewrites, found, start, end,
                                             sentence)
            for candidate, reason in dropped:
                lost.counts[reason] += 1
                lost.words.append((word, candidate, reason))
            if kept:
                candidates[slot] = tuple(kept)
                edits[slot] = (start, end, kept)
        unk = self.subword_tokenizer.unk_token_id
        reading = Reading(
            text=sentence, ids=tuple(ids),
            pieces=tuple(self.vocabulary.token(i) for i in ids),
            entries=tuple((i, candidates.get(p, ())) for p, i in enumerate(ids)),
            edits=edits, dropped=lost,
            unknown=tuple(p for p, i in enumerate(ids) if unk is not None and i == unk
                          and not special[p]))
        self._readings[sentence] = reading
        self.dropped[sentence] = lost
        return reading

    def _encode_text(self, sentence: str):
        """Ids, offsets and special-token flags of ``sentence`` (the tokenizer's own call)."""
        try:
            enc = self.subword_tokenizer(sentence, return_offsets_mapping=True,
                                         return_special_tokens_mask=True)
        except Exception as error:  # tokenizers raise their own errors on text they cannot map
            name = type(self.subword_tokenizer).__name__
            raise RobustTextError(f"the tokenizer {name} cannot encode {sentence!r}: {error}"
                                  ) from None
        ids = [int(i) for i in enc["input_ids"]]
        special = [bool(f) for f in enc["special_tokens_mask"]]
        return ids, [tuple(o) for o in enc["offset_mapping"]], special

    def _ids_of(self, texts: list[str], sentence: str) -> list[list[int]]:
        """The tokenizer's ids of each rewrite in ``texts`` (of ``sentence``)."""
        try:
            return self.subword_tokenizer(texts)["input_ids"]
        except Exception:  # find the one it cannot encode, to name it
            for text in texts:
                try:
                    self.subword_tokenizer(text)
                except Exception as error:
                    name = type(self.subword_tokenizer).__name__
                    changed = _changed_part(sentence, text)
                    raise RobustTextError(f"the tokenizer {name} cannot encode {changed!r} in "
                                          f"{sentence!r}: {error}") from None
            raise

    def _plans(self, sentence: str, offsets, special):
        """Per changeable word: ``(word, start, end, its piece positions, [(candidate, the
        rewritten sentence)])``; at most one word per space-separated chunk."""
        chunks = _chunk_starts(sentence)
        used: set[int] = set()
        plans = []
        for word, start, end in word_spans(sentence, self.space.tokenizer):
            proposals = self.space.token_candidates(word, self.space._word_protected(word))
            if not proposals:
                continue
            positions = [p for p, (a, b) in enumerate(offsets)
                         if not special[p] and a < end and b > start]
            chunk = chunks[start]
            if not positions or chunk in used:
                continue
            used.add(chunk)
            written = sentence[start:end]
            rewrites = []
            for candidate in proposals:
                text = written_like(candidate, written)
                rewrites.append((text, sentence[:start] + text + sentence[end:]))
            plans.append((word, start, end, positions, rewrites))
        return plans

    def _keep(self, ids, positions, rewrites, found, start, end, sentence):
        """The word's slot, its kept ``{candidate piece id: text}`` and dropped
        ``(candidate, reason)`` pairs, from each rewrite's ids ``found``."""
        own = set(positions)
        changed = []
        for new in found:
            changed.append(None if len(new) != len(ids) else
                           [p for p, (x, y) in enumerate(zip(ids, new)) if x != y])
        votes = Counter(d[0] for d in changed if d is not None and len(d) == 1 and d[0] in own)
        slot = min(votes, key=lambda j: (-votes[j], j)) if votes else positions[0]
        kept: dict[int, str] = {}
        dropped: list[tuple[str, str]] = []
        for (text, _), new, d in zip(rewrites, found, changed, strict=True):
            if d is None:
                dropped.append((text, "piece_count"))
            elif not d:  # read as the same ids (e.g. another case): the same sentence
                continue
            elif len(d) > 1:
                dropped.append((text, "several_pieces"))
            elif d[0] != slot:
                dropped.append((text, "other_slot"))
            elif new[slot] not in kept:
                if (self.space.max_candidates is not None
                        and len(kept) >= self.space.max_candidates):
                    dropped.append((text, "max_candidates"))
                else:
                    kept[int(new[slot])] = text
        return slot, kept, dropped

    # -- rewrites as text -------------------------------------------------------------------

    def rewrite(self, sentence: str, ids) -> str:
        """The text of the rewrite of ``sentence`` whose piece ids are ``ids`` (a row of its
        set: the sentence's ids with kept candidates at changeable positions; padding after the
        sentence's pieces is ignored)."""
        reading = self.read(sentence)
        ids = [int(i) for i in ids][:len(reading.ids)]
        edits = []
        for p, (own, new) in enumerate(zip(reading.ids, ids, strict=True)):
            if own == new:
                continue
            if p not in reading.edits or new not in reading.edits[p][2]:
                raise RobustTextError(f"piece {new} at position {p} is not in the set of "
                                      f"{sentence!r}")
            start, end, texts = reading.edits[p]
            edits.append((start, end, texts[new]))
        text = sentence
        for start, end, written in sorted(edits, reverse=True):
            text = text[:start] + written + text[end:]
        return text

    def reference_ids(self, sentence: str) -> list[int]:
        """The ids the tokenizer gives ``sentence`` on its own: ``tokenizer(sentence)``."""
        return [int(i) for i in self.subword_tokenizer(sentence)["input_ids"]]

    def unknown_words(self, sentence: str) -> list[str]:
        """The pieces of ``sentence`` that the tokenizer reads as its unknown piece, as
        written in the text."""
        reading = self.read(sentence)
        _, offsets, _ = self._encode_text(sentence)
        return [sentence[offsets[p][0]:offsets[p][1]] for p in reading.unknown]

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


def check_tokenizer(tokenizer) -> None:
    """RobustTextError naming what robusttext cannot read through ``tokenizer``: a slow
    (Python) tokenizer (no offsets) or a pre-tokenizer that does not split at spaces (then a
    word's pieces could depend on another word's rewrite). The special tokens are whatever the
    tokenizer's own call adds (none, ``[CLS]`` alone, or a cls and a sep), kept as read."""
    name = type(tokenizer).__name__
    if not getattr(tokenizer, "is_fast", False):
        raise RobustTextError(f"the tokenizer {name} is a slow (Python) tokenizer; robusttext "
                              "places the pieces in the text with a fast one's offsets (load it "
                              "with AutoTokenizer.from_pretrained(..., use_fast=True))")
    backend = tokenizer.backend_tokenizer
    probe = "ab cd"
    if backend.normalizer is not None:
        probe = backend.normalizer.normalize_str(probe)
    pre = backend.pre_tokenizer
    if pre is None or len(pre.pre_tokenize_str(probe)) < 2:
        raise RobustTextError(f"the tokenizer {name} does not split words at spaces before its "
                              "model (its pre-tokenizer reads 'ab cd' as one piece of text), so "
                              "one word's pieces may depend on another's; robusttext cannot "
                              "combine rewrites of such a tokenizer soundly")


def _chunk_starts(text: str) -> list[int]:
    """Per character of ``text``: the index of the space-separated chunk it lies in."""
    out, chunk, previous_space = [], 0, False
    for char in text:
        space = char.isspace()
        if previous_space and not space:
            chunk += 1
        out.append(chunk)
        previous_space = space
    return out


def _changed_part(sentence: str, text: str) -> str:
    """The part of ``text`` that differs from ``sentence`` (common head and tail removed)."""
    head = 0
    while head < min(len(sentence), len(text)) and sentence[head] == text[head]:
        head += 1
    tail = 0
    while (tail < min(len(sentence), len(text)) - head
           and sentence[-1 - tail] == text[-1 - tail]):
        tail += 1
    return text[head:len(text) - tail]
