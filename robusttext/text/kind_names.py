"""The names of the text-model kinds, torch-free so that ``robusttext train --help`` can list
them without loading torch; ``robusttext.text.kinds.MODEL_KINDS`` holds their classes under the
same names, in the same order (``tests/test_cli_vocabulary.py`` checks that they agree)."""

MODEL_KIND_NAMES = ("char-cnn", "word-cnn", "bow", "lstm", "transformer", "bert", "xlm")

__all__ = ["MODEL_KIND_NAMES"]
