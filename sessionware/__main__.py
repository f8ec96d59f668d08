"""``python -m sessionware``: the same as the ``sessionware`` command."""

from __future__ import annotations

import sys

from sessionware.cli import main

if __name__ == "__main__":
    sys.exit(main())
