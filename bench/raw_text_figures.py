"""The shipped models on SST-2 dev as GLUE writes it and as people write it.

SST-2's dev sentences are GLUE-tokenised (``it 's a charming , often affecting journey .``).
This script writes each one back as running text with nltk's Treebank detokenizer and a
capital first letter (``It's a charming, often affecting journey.``), certifies both forms
with each shipped text model at its own budget, and prints per model and form the clean,
verified and exhaustive accuracy, the sentences whose outcome differs between the forms, and
the tokens the model does not know.

    python bench/raw_text_figures.py --limit 872 --models word-counterfitted char-flips

Results: ``bench/raw_text_results.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robusttext.certify import certify  # noqa: E402
from robusttext.data import load_examples  # noqa: E402
from robusttext.data.examples import Example  # noqa: E402
from robusttext.perturb.tokenizers import tokenize  # noqa: E402
from robusttext.text import load_text_model  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"


def running_text(glue: str) -> str:
    """A GLUE sentence as running text: Treebank-detokenised, first letter capitalised."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    text = TreebankWordDetokenizer().detokenize(glue.split())
    return text[:1].upper() + text[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=872)
    parser.add_argument("--models", nargs="+", default=["word-counterfitted", "word-wordnet",
                                                        "char-flips"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    glue = load_examples(str(DEV), limit=args.limit)
    raw = [Example(running_text(e.text), e.label, e.origin) for e in glue]
    same = sum(tokenize(r.text) == g.text.split() for r, g in zip(raw, glue, strict=True))
    print(f"{len(glue)} dev sentences; running text reads as the GLUE words in {same}")
    for name in args.models:
        bundle = load_text_model(name)
        rows = {}
        for form, examples in (("glue", glue), ("raw", raw)):
            start = time.perf_counter()
            result = certify(bundle.model, bundle.vocab, bundle.space, examples)
            budget = result.summaries[0].budget
            s = result.summary(budget)
            rows[form] = result
            unknown = result.settings["unknown_tokens"]
            exhaustive = ("-" if s.exhaustive_accuracy is None
                          else f"{100 * s.exhaustive_accuracy:.1f}")
            print(f"{name:24s} {form:4s} budget {budget}: clean {100 * s.clean_accuracy:.1f} "
                  f"verified {100 * s.verified_accuracy:.1f} exhaustive {exhaustive} "
                  f"unknown tokens {unknown['tokens']} of {unknown['of_tokens']} "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)
        differ = sum((a.certified, a.prediction, a.exhaustive) != (b.certified, b.prediction,
                                                                    b.exhaustive)
                     for a, b in zip(rows["glue"].examples, rows["raw"].examples, strict=True))
        print(f"{name:24s} sentences whose outcome differs between the forms: {differ}")


if __name__ == "__main__":
    main()
