"""PerturbationSpace: the set of rewrites of a sentence that a certificate covers.

A space is a list of substitution sources, a level ("word": tokens are words; "char": tokens
are the characters of the tokenised sentence joined by single spaces), a tokenizer, a budget
(at most that many positions change; None: any number) and filters shared by every source:

- ``stop_words``: words never substituted (default: the project's list at the word level, none
  at the char level; at the char level the characters of these words are not flipped);
- ``allow``: if given, only these tokens are substituted; ``deny``: tokens never substituted
  and never offered as substitutes (tokens are words at the word level, characters at the char
  level);
- ``max_candidates``: at most this many candidates per position (default: no limit). A cut
  list is never silent: it is recorded in ``space.truncations`` and warned about
  (``on_cut="warn"``) or refused (``on_cut="raise"``).

Candidates are mapped through a vocabulary, deduplicated after mapping, and never include the
position's own id (so out-of-vocabulary variants collapse into one unknown-token candidate,
and none at all when the original word is itself unknown).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence

from robusttext.errors import RobustTextError
from robusttext.perturb.counting import count_sentences, enumerate_sentences
from robusttext.perturb.encoded import EncodedBatch
from robusttext.perturb.loading import load_source
from robusttext.perturb.sources import SubstitutionSource, source_from_json
from robusttext.perturb.stopwords import STOP_WORDS
from robusttext.perturb.tokenizers import (
    check_style,
    check_text,
    tokenize,
    word_spans,
    written_like,
)
from robusttext.perturb.vocabulary import Vocabulary

LEVELS = ("word", "char")
FORMAT = "robusttext.perturbation_space"
VERSION = 1

Entry = tuple[int, tuple[int, ...]]  # (token id, candidate ids)


def _word_set(words: Iterable[str] | None, what: str) -> frozenset[str] | None:
    if words is None:
        return None
    if isinstance(words, str):
        raise RobustTextError(f"{what} must be a list of tokens, not a string")
    words = list(words)
    if not all(isinstance(w, str) for w in words):
        raise RobustTextError(f"{what} must hold strings")
    return frozenset(w.lower() for w in words)


def _check_budget(budget: object) -> int | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise RobustTextError(f"budget must be an integer >= 0 or None, got {budget!r}")
    if budget < 0:
        raise RobustTextError(f"budget must be >= 0, got {budget}")
    return budget


class PerturbationSpace:
    """Substitution sets of sentences under a budget. See the module docstring.

    ``sources``: SubstitutionSource objects, or names and paths that ``load_source`` takes
    (``"wordnet"``, ``"typos"``, a JSON file).
    """

    def __init__(
        self,
        sources: Sequence[SubstitutionSource | str] | SubstitutionSource,
        budget: int | None,
        level: str = "word",
        tokenizer: str = "glue",
        max_candidates: int | None = None,
        stop_words: Iterable[str] | None = None,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] | None = None,
        on_cut: str = "warn",
    ):
        if isinstance(sources, (SubstitutionSource, str)):
            sources = [sources]
        self.sources = [s if isinstance(s, SubstitutionSource) else load_source(s)
                        for s in sources]
        for source in self.sources:
            if not isinstance(source, SubstitutionSource):
                raise RobustTextError(f"not a substitution source: {source!r}")
        if level not in LEVELS:
            raise RobustTextError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
        for source in self.sources:
            if level not in source.levels:
                raise RobustTextError(f"source {source.name!r} does not work at the {level} level")
        self.level = level
        self.tokenizer = check_style(tokenizer)
        self.budget = _check_budget(budget)
        if max_candidates is not None and (
            isinstance(max_candidates, bool) or not isinstance(max_candidates, int)
            or max_candidates < 1
        ):
            raise RobustTextError(f"max_candidates must be a positive integer or None, "
                                  f"got {max_candidates!r}")
        self.max_candidates = max_candidates
        if on_cut not in ("warn", "raise"):
            raise RobustTextError(f"on_cut must be 'warn' or 'raise', got {on_cut!r}")
        self.on_cut = on_cut
        default_stop = STOP_WORDS if level == "word" else frozenset()
        self.stop_words = (default_stop if stop_words is None
                           else _word_set(stop_words, "stop_words"))
        self.allow = _word_set(allow, "allow")
        self.deny = _word_set(deny, "deny") or frozenset()
        self.truncations: dict[str, tuple[int, int]] = {}
        """token -> (candidates available, candidates kept) for every list ``max_candidates``
        cut so far."""
        self._strings: dict[tuple[str, bool], tuple[str, ...]] = {}
        self._entries: weakref.WeakKeyDictionary[Vocabulary, dict] = weakref.WeakKeyDictionary()
        self._new_cuts: list[str] = []

    def __repr__(self) -> str:
        return f"PerturbationSpace({self.describe()})"

    def describe(self) -> str:
        budget = ("any number of changed positions" if self.budget is None else
                  f"at most {self.budget} changed position{'' if self.budget == 1 else 's'}")
        names = ", ".join(s.name for s in self.sources) or "no sources"
        cut = "" if self.max_candidates is None else f", max {self.max_candidates} candidates"
        return (f"{self.level} level, {self.tokenizer} tokens, {budget}; "
                f"sources: {names}{cut}")

    # -- tokens and their candidate strings -------------------------------------------------

    def split(self, sentence: str, what: str = "sentence") -> tuple[list[str], list[bool]]:
        """The tokens of ``sentence`` at this level and whether each is protected (no
        candidates because of the stop-word or allow/deny filters or being a space)."""
        words = tokenize(check_text(sentence, what), self.tokenizer)
        if self.level == "word":
            return words, [self._word_protected(w) for w in words]
        tokens: list[str] = []
        protected: list[bool] = []
        for i, word in enumerate(words):
            if i:
                tokens.append(" ")
                protected.append(True)
            stop = word in self.stop_words
            for char in word:
                tokens.append(char)
                protected.append(stop or self._word_protected(char))
        return tokens, protected

    def _word_protected(self, token: str) -> bool:
        return (
            token in self.stop_words if self.level == "word" else False
        ) or token in self.deny or (self.allow is not None and token not in self.allow)

    def token_candidates(self, token: str, protected: bool = False) -> tuple[str, ...]:
        """Candidate strings of one token after the filters, before any vocabulary."""
        key = (token, protected)
        cached = self._strings.get(key)
        if cached is not None:
            return cached
        found: dict[str, None] = {}
        if not protected and not token.isspace():
            for source in self.sources:
                proposals = (source.word_candidates(token) if self.level == "word"
                             else source.char_candidates(token))
                for candidate in proposals:
                    if candidate != token and candidate not in self.deny:
                        found[candidate] = None
        self._strings[key] = result = tuple(found)
        return result

    # -- mapping through a vocabulary -------------------------------------------------------

    def _entry(self, table: dict, vocab: Vocabulary, token: str, protected: bool) -> Entry:
        key = (token, protected)
        entry = table.get(key)
        if entry is not None:
            return entry
        token_id = vocab.id(token)
        ids: dict[int, None] = {}
        for candidate in self.token_candidates(token, protected):
            candidate_id = vocab.id(candidate)
            if candidate_id != token_id:
                ids[candidate_id] = None
        kept = tuple(ids)
        if self.max_candidates is not None and len(kept) > self.max_candidates:
            if self.on_cut == "raise":
                raise RobustTextError(
                    f"token {token!r} has {len(kept)} candidates, more than max_candidates="
                    f"{self.max_candidates}; raise the limit or use on_cut='warn'"
                )
            self.truncations[token] = (len(kept), self.max_candidates)
            self._new_cuts.append(token)
            kept = kept[: self.max_candidates]
        table[key] = entry = (token_id, kept)
        return entry

    def _table(self, vocab: Vocabulary) -> dict:
        if not isinstance(vocab, Vocabulary):
            raise RobustTextError(f"expected a Vocabulary, got {type(vocab).__name__}")
        table = self._entries.get(vocab)
        if table is None:
            table = self._entries[vocab] = {}
        return table

    def _report_cuts(self) -> None:
        if self._new_cuts:
            shown = ", ".join(repr(t) for t in self._new_cuts[:5])
            more = "" if len(self._new_cuts) <= 5 else f" and {len(self._new_cuts) - 5} more"
            warnings.warn(
                f"max_candidates={self.max_candidates} cut the candidate lists of {shown}{more}; "
                "the space is smaller than its sources (see space.truncations)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._new_cuts = []

    def candidates(self, sentence: str, vocab: Vocabulary) -> tuple[list[str], list[Entry]]:
        """Tokens of ``sentence`` and, per position, (token id, candidate ids)."""
        table = self._table(vocab)
        tokens, protected = self.split(sentence)
        entries = [self._entry(table, vocab, t, p) for t, p in zip(tokens, protected, strict=True)]
        self._report_cuts()
        return tokens, entries

    # -- the contract -----------------------------------------------------------------------

    def encode(self, sentences: str | Sequence[str], vocab: Vocabulary) -> EncodedBatch:
        """Token ids ``[batch, length]`` and candidate ids ``[batch, length, candidates]`` of a
        sentence or a list of sentences (see EncodedBatch)."""
        rows, token_lists = self.rows(sentences, vocab)
        return EncodedBatch.from_rows(rows, vocab.pad_id, token_lists)

    def rows(self, sentences: str | Sequence[str], vocab: Vocabulary
             ) -> tuple[list[list[Entry]], list[list[str]]]:
        """What ``encode`` pads into tensors: per sentence, per position ``(token id,
        candidate ids)``, and the tokens; ``EncodedBatch.from_rows(rows, vocab.pad_id,
        tokens)`` of any subset of the rows is the encoding of those sentences."""
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, (list, tuple)) or not sentences:
            raise RobustTextError("encode takes a sentence or a non-empty list of sentences")
        table = self._table(vocab)
        token_lists, rows = [], []
        for index, sentence in enumerate(sentences):
            tokens, protected = self.split(sentence, what=f"sentence {index}")
            token_lists.append(tokens)
            rows.append([self._entry(table, vocab, t, p)
                         for t, p in zip(tokens, protected, strict=True)])
        self._report_cuts()
        return rows, token_lists

    def count(self, sentence: str, vocab: Vocabulary) -> int:
        """Exact number of distinct sentences in the set, the original included."""
        _, entries = self.candidates(sentence, vocab)
        return count_sentences([len(c) for _, c in entries], self.budget)

    def enumerate(
        self, sentence: str, vocab: Vocabulary, limit: int | None = None
    ) -> Iterator[list[int]]:
        """Every sentence of the set as token ids, the original first. With ``limit``, raise
        RobustTextError (before yielding anything) if the set holds more sentences."""
        _, entries = self.candidates(sentence, vocab)
        if limit is not None:
            size = count_sentences([len(c) for _, c in entries], self.budget)
            if size > limit:
                raise RobustTextError(
                    f"the set has {size} sentences, more than the limit of {limit}"
                )
        return enumerate_sentences([t for t, _ in entries], [c for _, c in entries], self.budget)

    # -- rewrites as text -------------------------------------------------------------------

    def rewrite(self, sentence: str, vocab: Vocabulary, ids) -> str:
        """The text of the rewrite of ``sentence`` whose token ids are ``ids`` (a row of its
        set; padding after its tokens is ignored): each changed word's characters in the text
        replaced by the first candidate the vocabulary reads as the new id, in the word's case
        (at the char level, the changed characters). Which candidate names an unknown-token
        id is a choice among equals: the model reads them all alike."""
        tokens, entries = self.candidates(sentence, vocab)
        ids = [int(i) for i in ids][:len(entries)]
        changed: dict[int, dict[int, str]] = {}  # word index -> {char or 0: new text}
        spans = word_spans(sentence, self.tokenizer)
        owner = self._owners(spans)
        protected = self.split(sentence)[1]
        for p, ((own, _), new) in enumerate(zip(entries, ids, strict=True)):
            if own == new:
                continue
            found = [c for c in self.token_candidates(tokens[p], protected[p])
                     if vocab.id(c) == new]
            if not found:
                raise RobustTextError(f"token {new} at position {p} is not in the set of "
                                      f"{sentence!r}")
            word, char = owner[p]
            changed.setdefault(word, {})[char] = found[0]
        text = sentence
        for index in sorted(changed, reverse=True):
            word, start, end = spans[index]
            written = text[start:end]
            if self.level == "word":
                new_word = written_like(changed[index][0], written)
            else:
                chars = list(written if written.lower() == word else word)
                for i, c in changed[index].items():
                    chars[i] = c.upper() if chars[i].isupper() else c
                new_word = "".join(chars)
            text = text[:start] + new_word + text[end:]
        return text

    def _owners(self, spans) -> list[tuple[int, int]]:
        """Per position of the split: ``(word index, character in the word)`` (the spaces of
        the char level belong to no word: ``(-1, 0)``)."""
        if self.level == "word":
            return [(i, 0) for i in range(len(spans))]
        out: list[tuple[int, int]] = []
        for i, (word, _, _) in enumerate(spans):
            if i:
                out.append((-1, 0))
            out.extend((i, j) for j in range(len(word)))
        return out

    def reference_ids(self, sentence: str, vocab: Vocabulary) -> list[int]:
        """The ids a robusttext model reads for ``sentence``: its GLUE tokens (``tokenize``),
        each looked up in ``vocab`` (at the char level, their characters)."""
        words = tokenize(sentence, self.tokenizer)
        if self.level == "word":
            return [vocab.id(w) for w in words]
        return [vocab.id(c) for c in " ".join(words)]

    # -- serialising ------------------------------------------------------------------------

    def settings(self) -> dict:
        """Everything but the sources, as JSON."""
        return {
            "level": self.level,
            "tokenizer": self.tokenizer,
            "budget": self.budget,
            "max_candidates": self.max_candidates,
            "on_cut": self.on_cut,
            "stop_words": sorted(self.stop_words),
            "allow": None if self.allow is None else sorted(self.allow),
            "deny": sorted(self.deny),
        }

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **self.settings(),
                "sources": [source.to_json() for source in self.sources]}

    @classmethod
    def from_json(cls, obj: dict) -> PerturbationSpace:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise RobustTextError(f"not a perturbation space in JSON (no format {FORMAT!r})")
        if obj.get("version") != VERSION:
            raise RobustTextError(f"perturbation space version {obj.get('version')!r} is not "
                                  f"supported (this robusttext reads version {VERSION})")
        sources = [source_from_json(s) for s in obj.get("sources", [])]
        keys = ("level", "tokenizer", "budget", "max_candidates", "on_cut", "stop_words",
                "allow", "deny")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise RobustTextError(f"perturbation space JSON lacks {', '.join(missing)}")
        return cls(sources, **{k: obj[k] for k in keys})

    def restrict_to(self, vocab: Vocabulary) -> PerturbationSpace:
        """The same space under ``vocab`` with every large source replaced by an in-memory
        table restricted to what matters under ``vocab`` (so a checkpoint can carry it)."""
        self._table(vocab)
        deny = self.deny
        sources = [s.restrict_to(vocab.known, lambda c: c not in deny) for s in self.sources]
        return PerturbationSpace(sources, **self.settings())
