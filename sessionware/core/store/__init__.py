"""Session storage: the ``SessionStore`` contract, its backends, and the ``Store`` facade."""

from __future__ import annotations

from sessionware.core.store.barrier import DeferralBarrier
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    SessionStore,
    SessionVersion,
    StoreBackend,
    WriteOp,
    WriteReceipt,
)
from sessionware.core.store.memory import MemoryBackend
from sessionware.core.store.store import Store, StoreStats
from sessionware.core.store.url import StoreLike, open_store

__all__ = [
    "AppendEvents",
    "CreateSession",
    "DeferralBarrier",
    "DeleteSession",
    "MemoryBackend",
    "PutPages",
    "SaveHeader",
    "SessionStore",
    "SessionVersion",
    "Store",
    "StoreBackend",
    "StoreLike",
    "StoreStats",
    "WriteOp",
    "WriteReceipt",
    "open_store",
]
