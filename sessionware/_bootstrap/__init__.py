"""The directory ``sessionware run`` puts first on ``PYTHONPATH`` (see ``sitecustomize``).

It holds nothing else, so no module of the program can be shadowed by it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BOOTSTRAP_DIR"]

#: The directory to put on ``PYTHONPATH``.
BOOTSTRAP_DIR = str(Path(__file__).resolve().parent)
