"""Labelled sentences for certification and training: Hugging Face hub ids or local files.

>>> examples = load_examples("stanfordnlp/sst2", split="validation", limit=100)
>>> examples = load_examples("dev.tsv")          # TSV/CSV with a header, or JSONL
>>> examples[0].text, examples[0].label
"""

from robusttext.data.examples import load_examples
from robusttext.data.records import Example, check_labels

__all__ = ["Example", "check_labels", "load_examples"]
