"""WordNet synonyms, restricted to a word's most frequent senses.

WordNet comes from nltk's data path (``python -m nltk.downloader wordnet``) if present, else
from Debian's ``wordnet-base`` and ``wordnet-sense-index`` files under ``/usr/share/wordnet``,
copied once into ``<cache>/wordnet/corpora/wordnet`` together with the ``lexnames`` file that
nltk's reader needs and Debian does not ship (nltk refuses symbolic links out of its data roots,
so the files are copied, about 36 MB). That folder is one nltk's ``WordNetCorpusReader`` reads
(``nltk_wordnet_reader``).

Look-ups read the same files directly: sense keys, synset offsets and tag counts from
``index.sense`` and synset members from ``data.*``. nltk's reader takes about 10 s to start on a
2-core machine, these files well under one; a test checks both give the same senses.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from robusttext.errors import RobustTextError
from robusttext.perturb.cache import default_cache_dir
from robusttext.perturb.sources import SubstitutionSource, restrict_table

DEBIAN_WORDNET = Path("/usr/share/wordnet")
WORDNET_FILES = (
    "cntlist.rev", "index.sense", "index.adj", "index.adv", "index.noun", "index.verb",
    "data.adj", "data.adv", "data.noun", "data.verb", "adj.exc", "adv.exc", "noun.exc",
    "verb.exc",
)
# The 45 lexicographer files of WordNet 3.0, in number order (lexnames(5WN)).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_SINGLE_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")


def lexnames_text() -> str:
    """The content of WordNet's ``lexnames`` file: number, name, syntactic category."""
    return "".join(
        f"{i:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
        for i, name in enumerate(LEXNAMES)
    )


def arrange_debian_wordnet(cache_dir: str | Path | None = None,
                           debian_dir: Path = DEBIAN_WORDNET) -> Path:
    """Copy Debian's WordNet files into ``<cache>/wordnet/corpora/wordnet`` (once) and write
    ``lexnames``; return the data root (``<cache>/wordnet``) to put on nltk's data path."""
    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "wordnet"
    corpus = root / "corpora" / "wordnet"
    if corpus.is_dir() and all((corpus / f).is_file() for f in (*WORDNET_FILES, "lexnames")):
        return root
    missing = [f for f in WORDNET_FILES if not (debian_dir / f).is_file()]
    if missing:
        raise RobustTextError(_missing_message(f"{debian_dir} lacks {', '.join(missing)}"))
    corpus.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=corpus.parent, prefix="wordnet."))
    try:
        for name in WORDNET_FILES:
            shutil.copyfile(debian_dir / name, staging / name)
        (staging / "lexnames").write_text(lexnames_text(), encoding="ascii")
        if corpus.exists():
            shutil.rmtree(corpus)
        staging.rename(corpus)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def _missing_message(detail: str) -> str:
    return (
        f"WordNet is not available ({detail}); get it with `python -m nltk.downloader wordnet` "
        "or `apt-get install wordnet-base wordnet-sense-index`"
    )


_FILE_POS = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}  # ss_type -> data file
_POS_ORDER = {"n": 0, "v": 1, "a": 2, "r": 3}  # nltk's order of parts of speech
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")


def wordnet_files(cache_dir: str | Path | None = None):
    """The WordNet folder: nltk's path pointer to its own data if installed, else the
    ``Path`` of the Debian files arranged in the cache."""
    import nltk

    try:
        return nltk.data.find("corpora/wordnet")
    except LookupError:
        pass
    if not DEBIAN_WORDNET.is_dir():
        raise RobustTextError(_missing_message("not on nltk's data path nor in /usr/share"))
    return arrange_debian_wordnet(cache_dir) / "corpora" / "wordnet"


def _read_file(files, name: str) -> bytes:
    if isinstance(files, Path):
        return (files / name).read_bytes()
    with files.join(name).open() as handle:
        data = handle.read()
    return data if isinstance(data, bytes) else data.encode("utf-8")


def nltk_wordnet_reader(cache_dir: str | Path | None = None):
    """nltk's ``WordNetCorpusReader`` on the same files (slow to start: about 10 s)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    files = wordnet_files(cache_dir)
    if isinstance(files, Path):
        root = str(files.parent.parent)
        if root not in nltk.data.path:
            nltk.data.path.append(root)  # nltk reads only below its data roots
        files = str(files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        return WordNetCorpusReader(files, None)


class WordNetIndex:
    """Senses and synset members of WordNet 3.0, read from ``index.sense`` and ``data.*``.

    ``senses[lemma]``: ``(tag count, part-of-speech rank, sense number, data file, offset)``
    for every sense of the lemma; ``lemma_names(pos, offset)``: the synset's lemmas in order.
    """

    def __init__(self, files):
        def read(name: str) -> bytes:
            return _read_file(files, name)

        self.senses: dict[str, list[tuple[int, int, int, str, int]]] = defaultdict(list)
        for line in read("index.sense").decode("utf-8").splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue
            key, offset, number, count = parts
            lemma, _, rest = key.partition("%")
            pos = _FILE_POS[rest[0]]
            self.senses[lemma].append((int(count), _POS_ORDER[pos], int(number), pos, int(offset)))
        self._data = {pos: read(f"data.{name}") for pos, name in
                      (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv"))}
        self._members: dict[tuple[str, int], tuple[str, ...]] = {}

    def lemma_names(self, pos: str, offset: int) -> tuple[str, ...]:
        key = (pos, offset)
        names = self._members.get(key)
        if names is None:
            data = self._data[pos]
            fields = data[offset: data.index(b"\n", offset)].decode("utf-8").split()
            count = int(fields[3], 16)
            names = tuple(_ADJ_MARKER.sub("", fields[4 + 2 * i]).lower() for i in range(count))
            self._members[key] = names
        return names


@lru_cache(maxsize=4)
def load_wordnet_index(cache_dir: str | None = None) -> WordNetIndex:
    return WordNetIndex(wordnet_files(cache_dir))


class WordNetSynonyms(SubstitutionSource):
    """Single-word lemmas that share one of ``word``'s ``max_senses`` most frequent senses.

    Senses are the synsets that list ``word`` itself as a lemma (no lemmatisation, so
    "movies" is not given "film"), ranked by WordNet's tag count of that sense (ties in nltk's
    order: noun, verb, adjective, adverb, then sense number). Senses never seen in the tagged
    corpus (count 0) are used only when the word has no counted sense, and then only its
    first. This keeps rare senses out: "terrible" gets "awful" and "dreadful" but not
    "tremendous" (its 0-count "frightful" sense).
    """

    kind = "wordnet"

    def __init__(self, max_senses: int = 1, cache_dir: str | Path | None = None):
        if isinstance(max_senses, bool) or not isinstance(max_senses, int) or max_senses < 1:
            raise RobustTextError(f"max_senses must be a positive integer, got {max_senses!r}")
        self.max_senses = max_senses
        self.index = load_wordnet_index(None if cache_dir is None else str(cache_dir))
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def name(self) -> str:
        return f"wordnet(max_senses={self.max_senses})"

    def senses(self, word: str) -> list[tuple[str, int]]:
        """``(data file, offset)`` of the synsets used for ``word``, most frequent first."""
        ranked = sorted(self.index.senses.get(word, ()), key=lambda s: (-s[0], s[1], s[2]))
        counted = [s for s in ranked if s[0] > 0][: self.max_senses]
        return [(pos, offset) for _, _, _, pos, offset in (counted or ranked[:1])]

    def word_candidates(self, word: str) -> tuple[str, ...]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        found: dict[str, None] = {}
        if _SINGLE_WORD.fullmatch(word):
            for pos, offset in self.senses(word):
                for name in self.index.lemma_names(pos, offset):
                    if name != word and _SINGLE_WORD.fullmatch(name):
                        found[name] = None
        self._cache[word] = result = tuple(found)
        return result

    def to_json(self) -> dict:
        return {"kind": self.kind, "max_senses": self.max_senses}

    @classmethod
    def from_json(cls, obj: dict) -> WordNetSynonyms:
        return cls(max_senses=obj.get("max_senses", 1))

    def restrict_to(self, vocab_tokens, keep):
        """Table over the vocabulary's words and every word one of whose used senses is a
        sense of a vocabulary word (only those can have an in-vocabulary synonym)."""
        vocab = set(vocab_tokens)
        vocab_synsets = {(s[3], s[4]) for token in vocab for s in self.index.senses.get(token, ())}
        words = {t for t in vocab if _SINGLE_WORD.fullmatch(t)}
        for pos, offset in vocab_synsets:
            for name in self.index.lemma_names(pos, offset):
                if name not in words and _SINGLE_WORD.fullmatch(name):
                    if any(sense in vocab_synsets for sense in self.senses(name)):
                        words.add(name)
        items = ((w, self.word_candidates(w)) for w in sorted(words))
        return restrict_table(items, vocab, keep, self.name)
