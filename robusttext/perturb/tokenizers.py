"""Turning text into tokens: SST-2's GLUE format and raw text.

Both styles lower-case. ``glue`` splits on whitespace (GLUE's SST-2 files are already tokenised,
punctuation included); ``raw`` uses nltk's Treebank tokenizer, which needs no downloaded data.
"""

from __future__ import annotations

from functools import lru_cache

from robusttext.errors import RobustTextError

TOKENIZER_STYLES = ("glue", "raw")


@lru_cache(maxsize=1)
def _treebank():
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer()


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
    """Split ``text`` into lower-cased tokens.

    ``style="glue"``: whitespace split (SST-2 GLUE format). ``style="raw"``: nltk's
    TreebankWordTokenizer (``"isn't"`` -> ``["is", "n't"]``).
    """
    check_style(style)
    check_text(text)
    lowered = text.lower()
    if style == "glue":
        return lowered.split()
    return _treebank().tokenize(lowered)
