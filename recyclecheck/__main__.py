"""``python -m recyclecheck``: the same command line as the ``recyclecheck`` script."""

from __future__ import annotations

import sys

from recyclecheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
