"""Choosing a store by URL: ``memory://``, ``sqlite:///path.db``, ``redis://host:6379/0``,
``postgresql://user@host/db``.

Every malformed URL is refused here, before anything is written, with a typed error
naming it (its password masked): an unknown scheme or a bad port or database number is
``InvalidSessionOperation``; a SQLite path that cannot hold a database (a folder, a file
or folder this process may not write) is ``StorageError``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.store.base import StoreBackend
from sessionware.core.store.memory import MemoryBackend
from sessionware.core.store.store import Store

__all__ = ["StoreLike", "open_store"]

_lock = threading.Lock()
# One Store per file or server URL while it is in use, so every recorder of a session
# in this process shares one writer and one live session state.
_shared: weakref.WeakValueDictionary[str, Store] = weakref.WeakValueDictionary()

#: What ``store=`` accepts everywhere: a URL, a ``Store``, a backend, or None (memory).
StoreLike = str | Path | Store | StoreBackend | None


def open_store(store: StoreLike = None) -> Store:
    """Return a ``Store`` for a URL, a path, a backend or an existing store.

    ``sqlite:///relative/file.db`` and ``sqlite:////absolute/file.db`` follow the usual
    convention (three slashes, then the path); a bare path ending in ``.db``,
    ``.sqlite`` or ``.sqlite3`` also means SQLite. Opening the same file or server
    twice returns the same ``Store`` while it is alive; each ``memory://`` is new.

    >>> open_store("memory://").kind
    'memory'
    """
    if store is None:
        return Store(MemoryBackend())
    if isinstance(store, Store):
        return store
    if isinstance(store, Path):
        return _sqlite(str(store))
    if not isinstance(store, str):
        return Store(store)
    if store.startswith("memory:"):
        return Store(MemoryBackend())
    if store.startswith("sqlite:"):
        if not store.startswith("sqlite:///") or store == "sqlite:///":
            raise InvalidSessionOperation(
                "open_store", f"SQLite URLs look like sqlite:///path/to/file.db, got {store!r}"
            )
        return _sqlite(store[len("sqlite:///") :])
    if store.startswith(("redis:", "rediss:", "unix:")):
        return _shared_store(store, _redis)
    if store.startswith(("postgresql:", "postgres:")):
        return _shared_store(store, _postgres)
    if store.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in store:
        return _sqlite(store)
    from sessionware.core.store.redis import redacted_url  # standard library only at import

    try:
        scheme = urlsplit(store).scheme or store
    except ValueError:
        scheme = store
    raise InvalidSessionOperation(
        "open_store",
        f"unknown store {scheme!r} in {redacted_url(store)!r};"
        " use memory://, sqlite:///path.db, redis://host:port/db or postgresql://user@host/db",
    )


def _shared_store(key: str, build: Callable[[str], Store]) -> Store:
    with _lock:
        found = _shared.get(key)
        if found is None or found.closed:
            found = _shared[key] = build(key)
        return found


def _sqlite(path: str) -> Store:
    def build(resolved: str) -> Store:
        from sessionware.core.store.sqlite import SQLiteBackend

        backend = SQLiteBackend(resolved)
        backend.check_path()
        return Store(backend)

    if "\x00" in path:
        raise InvalidSessionOperation("open_store", f"a SQLite path cannot hold a NUL character: {path!r}")
    return _shared_store(str(Path(path).expanduser().resolve()), build)


def _redis(url: str) -> Store:
    from sessionware.core.store.redis import RedisBackend

    return Store(RedisBackend(url))


def _postgres(url: str) -> Store:
    from sessionware.core.store.postgres import PostgresBackend

    return Store(PostgresBackend(url))
