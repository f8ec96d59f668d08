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
from typing import Any

from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.store.store import Store
from sessionware.core.store.url import StoreLike, open_store
from sessionware.core.telemetry import OtelSettings, otel_settings

__all__ = ["configure", "default_otel", "default_price_book", "default_store", "resolve_store"]

_lock = threading.Lock()
_store: Store | None = None
_prices: PriceBook | None = None
_otel: OtelSettings | None = None
_KEEP: Any = object()


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


def configure(
    *,
    store: StoreLike = None,
    prices: PriceBook | None = None,
    otel: bool | OtelSettings | None = _KEEP,
) -> Store:
    """Replace the default store (and optionally the price book); return the store.

    ``otel=True`` (or ``OtelSettings(...)``) exports every call of wrapped and instrumented
    clients that did not say otherwise as OpenTelemetry spans; ``otel=False`` stops it.
    Given alone, ``otel=`` leaves the store as it is.
    """
    global _store, _prices, _otel
    if otel is not _KEEP:
        _otel = otel_settings(otel)
        if store is None and prices is None:
            return default_store()
    new_store = open_store(store)
    with _lock:
        _store = new_store
        if prices is not None:
            _prices = prices
    return new_store


def default_otel() -> OtelSettings | None:
    """The OpenTelemetry export of calls that did not choose (None: off, the default)."""
    return _otel


def resolve_store(store: StoreLike) -> Store:
    """``store`` as a ``Store``, or the default when it is None."""
    return default_store() if store is None else open_store(store)
