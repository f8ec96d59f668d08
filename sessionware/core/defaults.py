"""The process's default store and price book: explicit, lazily built, replaceable.

Nothing is created at import. The first use builds an in-memory store and a
``PriceBook``; ``configure`` replaces them (for example with a SQLite store), and
everything that was given no explicit ``store=`` uses the current default.

>>> from sessionware.core.defaults import configure, default_store
>>> configure(store="memory://").kind
'memory'
"""

from __future__ import annotations

import threading

from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.store.store import Store
from sessionware.core.store.url import StoreLike, open_store

__all__ = ["configure", "default_price_book", "default_store", "resolve_store"]

_lock = threading.Lock()
_store: Store | None = None
_prices: PriceBook | None = None


def default_store() -> Store:
    """The store used when none is given (in-memory unless ``configure`` changed it)."""
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = open_store(None)
    return _store


def default_price_book() -> PriceBook:
    global _prices
    if _prices is None:
        with _lock:
            if _prices is None:
                _prices = PriceBook()
    return _prices


def configure(*, store: StoreLike = None, prices: PriceBook | None = None) -> Store:
    """Replace the default store (and optionally the price book); return the store."""
    global _store, _prices
    new_store = open_store(store)
    with _lock:
        _store = new_store
        if prices is not None:
            _prices = prices
    return new_store


def resolve_store(store: StoreLike) -> Store:
    """``store`` as a ``Store``, or the default when it is None."""
    return default_store() if store is None else open_store(store)
