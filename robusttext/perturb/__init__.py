"""Text perturbation spaces: which rewrites of a sentence a certificate covers.

Tokenising (GLUE and raw text), synonym sources (counter-fitted neighbours, WordNet),
keyboard character flips, and ``PerturbationSpace``, which turns sentences into token and
candidate id tensors under a budget, counts and enumerates the set, and serialises it.
"""

from robusttext.lazy import lazy_exports
from robusttext.perturb.counterfitted import CounterFittedSynonyms
from robusttext.perturb.flips import CharacterFlips
from robusttext.perturb.loading import load_source
from robusttext.perturb.sources import SubstitutionSource, SynonymTable, source_from_json
from robusttext.perturb.stopwords import STOP_WORDS
from robusttext.perturb.tokenizers import tokenize
from robusttext.perturb.vocabulary import Vocabulary
from robusttext.perturb.wordnet import WordNetSynonyms

# Imported on first use: they load torch, which the command line's --help does without.
_LAZY = {"EncodedBatch": "robusttext.perturb.encoded",
         "PerturbationSpace": "robusttext.perturb.space"}

lazy_exports(__name__, _LAZY)


__all__ = [
    "CharacterFlips",
    "CounterFittedSynonyms",
    "EncodedBatch",
    "PerturbationSpace",
    "STOP_WORDS",
    "SubstitutionSource",
    "SynonymTable",
    "Vocabulary",
    "WordNetSynonyms",
    "load_source",
    "source_from_json",
    "tokenize",
]
