"""Pausing the cyclic garbage collector while a long session is read into memory.

Reading a stored session of 10,000 turns makes some 23,000 events and their fields at
once, and restoring its memory checkpoint tens of thousands of pages and index rows. The
collector runs every few hundred new containers and, as the heap grows, rescans the
older generations again and again: measured, it doubled the time of both (the events of
a 10k-turn SQLite session: 2.1 s with it, 0.9 s paused). None of these objects is
garbage yet, so nothing is lost by not looking: the collector is paused for the burst
and runs again as before after it.

Pauses nest and may overlap across threads: the collector is enabled again when the
last pause ends, and only if it was enabled when the first began (an app that turned it
off keeps it off).

>>> import gc
>>> with paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]


class _Pauses:
    """How many pauses are under way, and whether the collector ran before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = False


_PAUSES = _Pauses()


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector off for the block (see the module doc)."""
    pauses = _PAUSES
    with pauses.lock:
        if pauses.depth == 0:
            pauses.was_enabled = gc.isenabled()
            gc.disable()
        pauses.depth += 1
    try:
        yield
    finally:
        with pauses.lock:
            pauses.depth -= 1
            if pauses.depth == 0 and pauses.was_enabled:
                gc.enable()
