"""Turning text into words: the GLUE convention, from raw text or from GLUE's own files.

robusttext's models read words as GLUE's SST-2 files write them: Penn Treebank tokens,
lower-cased (``"it 's a charming , often affecting journey ."``). ``tokenize`` gives those
words for any text: a sentence as people write it (``"It's a charming, often affecting
journey."``) and its GLUE form give the same list. It is nltk's Treebank tokenizer (no
downloaded data) with three of its rules adjusted so that text already in GLUE form comes back
unchanged, split on its spaces:

- ``''`` after a space stays a closing quote (Treebank turns it into an opening one);
- ``&`` inside a word stays in it (``r&d``), runs of ``?`` and ``!`` stay one token (``?!?``);
- ``'n'`` (``rock 'n' roll``) stays one token;
- a word in square brackets stays one word (``[CLS]``, as a whitespace split reads it; GLUE's
  files have no brackets);
- ``cannot`` stays one word (GLUE's files write ``can not``, which reads as two; the project's
  demo sentences write ``cannot``, and the shipped models' figures on them are kept).

On SST-2's dev file every sentence gives exactly its whitespace split (``tests/
test_tokenizers.py`` checks it); on the training file a few sentence-final abbreviations
differ (``u.s.`` at the end of a sentence reads as ``u.s .``). The same function serves
training and certification. ``word_spans`` gives each word with its place in the text, so a
rewrite is an edit of the text itself.

The two style names (``glue``, ``raw``) are the same tokenizer; both are kept because
checkpoints record the name.
"""

from __future__ import annotations

import re
from functools import lru_cache

from robusttext.errors import RobustTextError

TOKENIZER_STYLES = ("glue", "raw")


@lru_cache(maxsize=1)
def _treebank():
    from nltk.tokenize import TreebankWordTokenizer

    class GlueWordTokenizer(TreebankWordTokenizer):
        """Treebank rules that leave GLUE-form text as it is (see the module docstring)."""

        STARTING_QUOTES = [
            *TreebankWordTokenizer.STARTING_QUOTES[:2],
            (re.compile(r"([ \(\[{<])(\")"), r"\1 `` "),
        ]
        PUNCTUATION = [
            (re.compile(r"([:,])([^\d])"), r" \1 \2"),
            (re.compile(r"([:,])$"), r" \1 "),
            (re.compile(r"\.\.\."), r" ... "),
            (re.compile(r"[;@#$%]"), r" \g<0> "),
            (re.compile(r"(?<!\w)&|&(?!\w)"), r" \g<0> "),
            (re.compile(r"([^\.])(\.)([\]\)}>\"\']*)\s*$"), r"\1 \2\3 "),
            (re.compile(r"[?!]+"), r" \g<0> "),
            (re.compile(r"(?<!\s')(?<!^')([^'])' "), r"\1 ' "),
        ]
        PARENS_BRACKETS = (re.compile(r"\[\w+\]|[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
        CONTRACTIONS2 = TreebankWordTokenizer.CONTRACTIONS2[1:]  # keeps "cannot" whole
        ENDING_QUOTES = [
            *TreebankWordTokenizer.ENDING_QUOTES[:2],
            (re.compile(r"(?<!\s')(?<!^')([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
            *TreebankWordTokenizer.ENDING_QUOTES[3:],
        ]

    return GlueWordTokenizer()


def check_text(text: object, what: str = "text") -> str:
    """Return ``text`` if it is a non-empty string, else raise RobustTextError."""
    if not isinstance(text, str):
        raise RobustTextError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RobustTextError(f"{what} is empty")
    return text


def check_style(style: str) -> str:
    if style not in TOKENIZER_STYLES:
        raise RobustTextError(
            f"unknown tokenizer {style!r}; choose one of {', '.join(TOKENIZER_STYLES)}"
        )
    return style


def tokenize(text: str, style: str = "glue") -> list[str]:
    """The lower-cased GLUE words of ``text`` (see the module docstring):
    ``"It's charming."`` -> ``["it", "'s", "charming", "."]``."""
    check_style(style)
    return [word.lower() for word in _tokens(check_text(text))]


def word_spans(text: str, style: str = "glue") -> list[tuple[str, int, int]]:
    """``(word, start, end)`` per word of ``text``: the lower-cased GLUE word and the
    characters ``text[start:end]`` it is read from (for a double quote ``"`` the word is
    ````` or ``''``, as in GLUE)."""
    check_style(style)
    check_text(text)
    words = _tokens(text)
    try:
        spans = list(_treebank().span_tokenize(text))
    except ValueError:  # nltk cannot place a word it rewrote; never seen on real text
        raise RobustTextError(f"cannot place the words of {text!r} in the text") from None
    if len(spans) != len(words):
        raise RobustTextError(f"cannot place the words of {text!r} in the text")
    return [(w.lower(), s, e) for w, (s, e) in zip(words, spans, strict=True)]


@lru_cache(maxsize=65536)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_treebank().tokenize(text))


def written_like(candidate: str, written: str) -> str:
    """``candidate`` in the case of the text it replaces: ALL CAPS when ``written`` is (two
    letters or more), a capital first letter when ``written`` has one, else as it is
    (``written_like("enchanting", "Charming") == "Enchanting"``)."""
    letters = [c for c in written if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return candidate.upper()
    if written[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate
