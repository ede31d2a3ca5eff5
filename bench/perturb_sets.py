"""Substitution sets of the 872 SST-2 dev sentences: coverage, size and encoding time.

For each source (counter-fitted neighbours, WordNet) with and without word-level QWERTY flips,
and for the character-level spaces, build the sets of every dev sentence under a vocabulary of
the SST-2 train and dev tokens and print:

- load: seconds to load the source; encode: seconds to encode the 872 sentences once loaded
  (fresh per-word caches); restrict: seconds for ``space.restrict_to(vocab)``;
- coverage: share of tokens with at least one candidate; cands/token: mean candidates per
  token (after mapping through the vocabulary); K: most candidates at one position;
- median set size at budget 1 and 3 (exact counts);
- the same coverage with the stop-word list switched off, to compare with the published
  figure (about half of SST-2 tokens have a counter-fitted neighbour, Jia et al. 2019).

Run from the repository root: ``python bench/perturb_sets.py`` (reads ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from robusttext.perturb import (
    CharacterFlips,
    CounterFittedSynonyms,
    PerturbationSpace,
    Vocabulary,
    WordNetSynonyms,
    tokenize,
)
from robusttext.perturb.counting import count_sentences

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines if line.strip()]


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def measure(name, make_sources, sentences, vocab, level="word"):
    sources, load = timed(make_sources)
    space = PerturbationSpace(sources, budget=None, level=level)
    batch, encode = timed(lambda: space.encode(sentences, vocab))
    counts = batch.num_candidates
    real = batch.mask.bool()
    tokens = real.sum().item()
    covered = ((counts > 0) & real).sum().item() / tokens
    per_token = counts[real].sum().item() / tokens
    sizes = {b: [] for b in (1, 3)}
    for row, length in zip(counts.tolist(), real.sum(1).tolist(), strict=True):
        for b in sizes:
            sizes[b].append(count_sentences(row[:length], b))
    open_space = PerturbationSpace(sources, budget=None, level=level, stop_words=[])
    open_batch = open_space.encode(sentences, vocab)
    covered_all = ((open_batch.num_candidates > 0) & real).sum().item() / tokens
    restricted, restrict = timed(lambda: space.restrict_to(vocab))
    size_kb = len(json.dumps(restricted.to_json())) / 1024
    return {
        "space": name, "load_s": load, "encode_s": encode, "restrict_s": restrict,
        "coverage": covered, "coverage_no_stop": covered_all, "cands_per_token": per_token,
        "K": batch.candidate_ids.shape[-1],
        "median_b1": statistics.median(sizes[1]), "median_b3": statistics.median(sizes[3]),
        "json_kb": size_kb,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args(argv)
    dev_path = args.data / "sst2" / "dev.tsv"
    if not dev_path.is_file():
        print(f"{dev_path} is absent (see ../shared/data/NOTICE.md)", file=sys.stderr)
        return 1
    dev = read_sentences(dev_path)
    train = read_sentences(args.data / "sst2" / "train.tsv")
    words = Vocabulary.build(tokenize(s) for s in train + dev)
    chars = Vocabulary.build(list(" ".join(tokenize(s))) for s in train + dev)
    neighbors = args.data / "counterfitted_neighbors.json"
    enkey = args.data / "character_substitution_enkey_sub1.json"
    print(f"{len(dev)} dev sentences, {sum(len(tokenize(s)) for s in dev)} tokens; "
          f"word vocabulary {len(words)}, character vocabulary {len(chars)}")

    def wordnet():
        source = WordNetSynonyms()
        source.index._members.clear()  # encode from cold per-synset caches
        return source

    configs = [
        ("counterfitted", lambda: [CounterFittedSynonyms.from_path(neighbors)], words, "word"),
        ("counterfitted + qwerty flips",
         lambda: [CounterFittedSynonyms.from_path(neighbors), CharacterFlips()], words, "word"),
        ("wordnet", lambda: [wordnet()], words, "word"),
        ("wordnet + qwerty flips", lambda: [wordnet(), CharacterFlips()], words, "word"),
        ("char level, qwerty", lambda: [CharacterFlips()], chars, "char"),
        ("char level, enkey_sub1", lambda: [CharacterFlips(enkey)], chars, "char"),
    ]
    rows = [measure(name, make, dev, vocab, level) for name, make, vocab, level in configs]
    header = ("| space | load s | encode s | coverage | coverage, no stop words | "
              "cands/token | K | median set, budget 1 | median set, budget 3 | "
              "restrict s | restricted JSON KiB |")
    print(header)
    print("|" + "---|" * 11)
    for r in rows:
        print(f"| {r['space']} | {r['load_s']:.2f} | {r['encode_s']:.2f} | "
              f"{r['coverage']:.1%} | {r['coverage_no_stop']:.1%} | "
              f"{r['cands_per_token']:.2f} | {r['K']} | {r['median_b1']:,.0f} | "
              f"{r['median_b3']:,.0f} | {r['restrict_s']:.2f} | {r['json_kb']:,.0f} |")
    print("published: about half of SST-2 tokens have a counter-fitted neighbour "
          "(Jia et al. 2019)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
