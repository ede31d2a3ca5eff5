"""``python -m robusttext``: the same as the ``robusttext`` command."""

import sys

from robusttext.cli import main

if __name__ == "__main__":
    sys.exit(main())
