"""Defaults of certification, torch-free so that ``robusttext certify --help`` can show them
without loading torch."""

DEFAULT_BUDGETS = (1, 2, 3)
DEFAULT_ENUMERATE_LIMIT = 10_000

__all__ = ["DEFAULT_BUDGETS", "DEFAULT_ENUMERATE_LIMIT"]
