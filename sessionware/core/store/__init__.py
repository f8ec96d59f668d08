"""Session storage: the ``StoreBackend`` contract, its backends, and the ``Store`` facade."""

from __future__ import annotations

from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    StoreBackend,
    WriteOp,
)
from sessionware.core.store.memory import MemoryBackend
from sessionware.core.store.store import Store, StoreStats
from sessionware.core.store.url import StoreLike, open_store

__all__ = [
    "AppendEvents",
    "CreateSession",
    "DeleteSession",
    "MemoryBackend",
    "PutPages",
    "SaveHeader",
    "Store",
    "StoreBackend",
    "StoreLike",
    "StoreStats",
    "WriteOp",
    "open_store",
]
