"""WordNet synonyms through nltk, restricted to a word's most frequent senses.

WordNet comes from nltk's data path (``python -m nltk.downloader wordnet``) if present, else
from Debian's ``wordnet-base`` and ``wordnet-sense-index`` files under ``/usr/share/wordnet``,
copied once into ``<cache>/wordnet/corpora/wordnet`` together with the ``lexnames`` file that
nltk's reader needs and Debian does not ship (nltk refuses symbolic links out of its data roots,
so the files are copied, about 36 MB).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
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


@lru_cache(maxsize=4)
def load_wordnet(cache_dir: str | None = None):
    """nltk's WordNet reader: nltk's own data if installed, else the Debian files."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    try:
        nltk.data.find("corpora/wordnet")
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except LookupError:
        pass
    if not DEBIAN_WORDNET.is_dir():
        raise RobustTextError(_missing_message("not on nltk's data path nor in /usr/share"))
    root = arrange_debian_wordnet(cache_dir)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        return WordNetCorpusReader(str(root / "corpora" / "wordnet"), None)


class WordNetSynonyms(SubstitutionSource):
    """Single-word lemmas that share one of ``word``'s ``max_senses`` most frequent senses.

    Senses are the synsets that list ``word`` itself as a lemma (no lemmatisation, so
    "movies" is not given "film"), ranked by the WordNet sense count of that lemma (ties in
    WordNet's order). Senses never seen in the tagged corpus (count 0) are used only when the
    word has no counted sense, and then only its first. This keeps rare senses out: "terrible"
    gets "awful" and "dreadful" but not "tremendous" (its 0-count "frightful" sense).
    """

    kind = "wordnet"

    def __init__(self, max_senses: int = 1, cache_dir: str | Path | None = None):
        if not isinstance(max_senses, int) or max_senses < 1:
            raise RobustTextError(f"max_senses must be a positive integer, got {max_senses!r}")
        self.max_senses = max_senses
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.wordnet = load_wordnet(self.cache_dir)
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def name(self) -> str:
        return f"wordnet(max_senses={self.max_senses})"

    def senses(self, word: str) -> list:
        """The synsets used for ``word``, most frequent first."""
        ranked = []
        for order, synset in enumerate(self.wordnet.synsets(word)):
            lemma = next((m for m in synset.lemmas() if m.name().lower() == word), None)
            if lemma is not None:
                ranked.append((-lemma.count(), order, synset))
        ranked.sort(key=lambda item: item[:2])
        counted = [synset for count, _, synset in ranked if count < 0]
        if not counted:
            return [synset for _, _, synset in ranked[:1]]
        return counted[: self.max_senses]

    def word_candidates(self, word: str) -> tuple[str, ...]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        found: list[str] = []
        if _SINGLE_WORD.fullmatch(word):
            for synset in self.senses(word):
                for name in synset.lemma_names():
                    name = name.lower()
                    if name != word and _SINGLE_WORD.fullmatch(name) and name not in found:
                        found.append(name)
        self._cache[word] = result = tuple(found)
        return result

    def to_json(self) -> dict:
        return {"kind": self.kind, "max_senses": self.max_senses}

    @classmethod
    def from_json(cls, obj: dict) -> WordNetSynonyms:
        return cls(max_senses=obj.get("max_senses", 1))

    def restrict_to(self, vocab_tokens, keep):
        """Table over the vocabulary's words and every word that shares a synset with one
        (only those can have an in-vocabulary synonym)."""
        vocab = set(vocab_tokens)
        words: set[str] = set()
        for token in vocab:
            if _SINGLE_WORD.fullmatch(token):
                words.add(token)
                for synset in self.wordnet.synsets(token):
                    words.update(n.lower() for n in synset.lemma_names())
        items = ((w, self.word_candidates(w)) for w in sorted(words))
        return restrict_table(items, vocab, keep, self.name)
