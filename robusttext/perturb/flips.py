"""Character flips: a character may be replaced by one of its neighbours on a keyboard map.

At the character level (Huang et al. 2019) each character position gets the neighbours of its
character. At the word level a word gets its variants with 1 to ``max_flips_per_word`` flipped
characters (distinct positions), which the perturbation space maps through the vocabulary
(out-of-vocabulary variants become the unknown token).
"""

from __future__ import annotations

import json
from importlib import resources
from itertools import combinations, product
from pathlib import Path

from robusttext.errors import RobustTextError
from robusttext.perturb.sources import SubstitutionSource, read_json_file

BUILTIN_KEYBOARDS = ("qwerty",)


def builtin_keyboard(name: str) -> dict[str, list[str]]:
    """A keyboard map shipped in ``robusttext/assets`` (``qwerty``: US QWERTY letter adjacency)."""
    if name not in BUILTIN_KEYBOARDS:
        known = ", ".join(BUILTIN_KEYBOARDS)
        raise RobustTextError(f"unknown keyboard {name!r}; built in: {known}")
    text = resources.files("robusttext").joinpath(f"assets/keyboard_{name}.json").read_text()
    return json.loads(text)


def check_keyboard(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    """Validate a character -> list of substitute characters map."""
    if not isinstance(raw, dict) or not raw:
        raise RobustTextError(f"{where}: a keyboard map is a non-empty JSON object char -> list")
    keyboard = {}
    for key, values in raw.items():
        if not isinstance(key, str) or len(key) != 1:
            raise RobustTextError(f"{where}: key {key!r} is not a single character")
        if not isinstance(values, list) or not all(
            isinstance(v, str) and len(v) == 1 for v in values
        ):
            raise RobustTextError(
                f"{where}: the value of key {key!r} must be a list of single characters, "
                f"got {values!r}"
            )
        keyboard[key] = tuple(dict.fromkeys(v for v in values if v != key))
    return keyboard


class CharacterFlips(SubstitutionSource):
    """Keyboard-neighbour substitutions of characters.

    ``keyboard``: ``"qwerty"`` (the project's US QWERTY adjacency map), a path to a JSON map
    character -> list of characters (e.g. Huang et al.'s ``character_substitution_enkey_sub1``
    map), or such a dict. ``max_flips_per_word``: how many characters of one word a word-level
    substitution may flip (1 by default).
    """

    kind = "char_flips"
    levels = frozenset({"word", "char"})

    def __init__(self, keyboard: str | Path | dict = "qwerty", max_flips_per_word: int = 1):
        if not isinstance(max_flips_per_word, int) or max_flips_per_word < 1:
            raise RobustTextError(
                f"max_flips_per_word must be a positive integer, got {max_flips_per_word!r}"
            )
        if isinstance(keyboard, dict):
            self.keyboard_name, raw, where = "custom", keyboard, "keyboard map"
        elif str(keyboard) in BUILTIN_KEYBOARDS:
            name = str(keyboard)
            self.keyboard_name, raw, where = name, builtin_keyboard(name), name
        else:
            path = Path(keyboard)
            self.keyboard_name, raw, where = path.stem, read_json_file(path), str(path)
        self.keyboard = check_keyboard(raw, str(where))
        self.max_flips_per_word = max_flips_per_word
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def name(self) -> str:
        flips = "" if self.max_flips_per_word == 1 else f", {self.max_flips_per_word} per word"
        return f"char_flips({self.keyboard_name}{flips})"

    def char_candidates(self, char: str) -> tuple[str, ...]:
        return self.keyboard.get(char, ())

    def word_candidates(self, word: str) -> tuple[str, ...]:
        """Variants of ``word`` with 1..max_flips_per_word flipped characters: fewer flips
        first, then by position, then in keyboard order."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        options = [(i, self.keyboard[c]) for i, c in enumerate(word) if self.keyboard.get(c)]
        variants: dict[str, None] = {}
        for flips in range(1, min(self.max_flips_per_word, len(options)) + 1):
            for chosen in combinations(options, flips):
                positions = [i for i, _ in chosen]
                for replacement in product(*(subs for _, subs in chosen)):
                    chars = list(word)
                    for i, c in zip(positions, replacement, strict=True):
                        chars[i] = c
                    variants["".join(chars)] = None
        variants.pop(word, None)
        self._cache[word] = result = tuple(variants)
        return result

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "keyboard_name": self.keyboard_name,
            "keyboard": {c: list(v) for c, v in sorted(self.keyboard.items())},
            "max_flips_per_word": self.max_flips_per_word,
        }

    @classmethod
    def from_json(cls, obj: dict) -> CharacterFlips:
        source = cls(dict(obj["keyboard"]), max_flips_per_word=obj.get("max_flips_per_word", 1))
        source.keyboard_name = obj.get("keyboard_name", "custom")
        return source
