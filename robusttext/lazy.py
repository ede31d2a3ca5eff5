"""Packages whose exported names are imported on first use, so that the command line's
``--help`` (which imports the packages of its commands) loads no torch.

``lazy_exports(__name__, {"certify": "robusttext.certify.certifier", ...})`` at the end of a
package's ``__init__`` makes ``from robusttext.certify import certify`` import
``robusttext.certify.certifier`` then, not before. A submodule named like an exported function
(``robusttext.certify.margins`` and its ``margins``) does not replace the function when it
loads, so the package's name keeps meaning what an eager import made it mean.
"""

from __future__ import annotations

import importlib
import sys
import types


class LazyPackage(types.ModuleType):
    """A package module whose names in ``_lazy`` (name -> module) are imported on first use."""

    def __getattr__(self, name: str):
        where = self.__dict__.get("_lazy", {}).get(name)
        if where is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value) -> None:
        lazy = self.__dict__.get("_lazy", {})
        if (name in lazy and isinstance(value, types.ModuleType)
                and value.__name__ == f"{self.__name__}.{name}"):
            return  # the import system binding a submodule over an exported function
        super().__setattr__(name, value)


def lazy_exports(package: str, names: dict[str, str]) -> None:
    """Make ``names`` (exported name -> the module that defines it) of ``package`` lazy."""
    module = sys.modules[package]
    module.__dict__["_lazy"] = dict(names)
    module.__class__ = LazyPackage


__all__ = ["LazyPackage", "lazy_exports"]
