"""``python -m robusttext``: the same as the ``robusttext`` command.

Run from the folder that holds a clone named ``robusttext``, Python finds that folder first (a
namespace package without ``__init__.py``, whose ``data/`` would stand for ``robusttext.data``)
while this file comes from the installed package. Before anything else is imported, the
stand-in is dropped and the folder above this package is put first on the path, so that
``robusttext`` is this package again.
"""

import sys
from pathlib import Path


def _own_package() -> None:
    package = sys.modules.get("robusttext")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    for name in [n for n in sys.modules if n == "robusttext" or n.startswith("robusttext.")]:
        del sys.modules[name]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


_own_package()

from robusttext.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
