"""The never-break-the-app rule: bookkeeping failures are logged and counted, not raised.

Everything an adapter does besides forwarding the app's call (reading the request,
resolving the session, accumulating a stream, recording) runs under ``report`` when it
fails. The app's call then proceeds as if it were not wrapped. Provider errors are not
bookkeeping failures: adapters re-raise those unchanged and never pass them here.

Strict mode re-raises instead, so a bug of ours is visible where it happens. It is an
explicit switch: the environment variable ``SESSIONWARE_STRICT=1`` (read when a failure
happens, so setting it before the first call is enough; sessionware's own test suite
sets it), or ``set_strict(True)`` / ``set_strict(False)`` in code, which wins over the
variable; ``set_strict(None)`` goes back to the variable. It is never inferred: an app
that merely imports ``pytest`` runs in production behaviour.

Work deferred to the recorder thread (``background``) fails away from the app: there,
``report`` logs and counts in every mode and never raises (the thread must live on). In
strict mode the failure is also kept and re-raised on the app's side at the next place
the app touches the adapters: its next wrapped call (before anything is sent) or
``sessionware.adapters.api.settle()``. Deferred work that runs on an app thread instead
(a read of the session settles it first) is handled like any other: in strict mode it
raises there, from that read.

>>> health().internal_errors >= 0
True
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from sessionware.core.store.store import StoreHealth, store_health

__all__ = [
    "STRICT_ENV",
    "AdapterHealth",
    "health",
    "is_strict",
    "mark_recorder_thread",
    "raise_deferred",
    "report",
    "set_strict",
]

logger = logging.getLogger(__name__)

STRICT_ENV = "SESSIONWARE_STRICT"
"""The environment variable that turns strict mode on (``1``, ``true``, ``yes``, ``on``)."""
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass
class AdapterHealth:
    """Counters of bookkeeping failures, for monitoring (and for tests); ``stores`` and the
    properties after it say what the process's stores did with what was recorded."""

    internal_errors: int = 0
    last_error: str | None = None
    last_where: str | None = None

    @property
    def stores(self) -> StoreHealth:
        """Pending, dropped, repaired and duplicate-skipped writes of every store, summed."""
        return store_health()

    @property
    def dropped_events(self) -> int:
        """Recorded events that will never be stored (exact: a replay is not a drop)."""
        return store_health().dropped_events

    @property
    def repaired_events(self) -> int:
        """Events stored with text repaired (lone surrogates from a provider or a call)."""
        return store_health().repaired_events

    @property
    def lost_sessions(self) -> frozenset[str]:
        """Sessions with recorded events missing from their store."""
        return store_health().lost_sessions


_health = AdapterHealth()
_lock = threading.Lock()
_strict: bool | None = None
_recorder_thread: int | None = None
kept: BaseException | None = None
"""A strict-mode failure of the recorder thread, waiting to be re-raised (read on every call)."""


def health() -> AdapterHealth:
    """The process's adapter failure counters (a live object, not a copy)."""
    return _health


def set_strict(value: bool | None) -> None:
    """Re-raise bookkeeping failures (``True``), swallow them (``False``), or follow the
    ``SESSIONWARE_STRICT`` environment variable (``None``, the default)."""
    global _strict
    _strict = value


def is_strict() -> bool:
    """Whether bookkeeping failures are raised: ``set_strict``'s choice, else the switch."""
    if _strict is not None:
        return _strict
    return os.environ.get(STRICT_ENV, "").strip().lower() in _TRUE


def report(where: str, exc: BaseException) -> None:
    """Record a bookkeeping failure; re-raise it in strict mode (on the recorder thread,
    keep it for ``raise_deferred`` instead).

    Call it from an ``except Exception`` block: the app's call continues afterwards.
    """
    on_recorder = threading.get_ident() == _recorder_thread
    _count(where, exc, keep=on_recorder and is_strict())
    if on_recorder:
        logger.warning("sessionware could not record %s; it is left out of the session: %r", where, exc)
        return
    if is_strict():
        raise exc
    logger.warning("sessionware could not record %s; the call proceeds unrecorded: %r", where, exc)


def _count(where: str, exc: BaseException, *, keep: bool) -> None:
    """Count the failure and, with ``keep``, hold it for ``raise_deferred``: both under one
    lock, so whoever sees the count (``health``) finds the failure kept."""
    global kept
    with _lock:
        if keep and kept is None:  # the first failure is the informative one
            kept = exc
        _health.internal_errors += 1
        _health.last_error = f"{type(exc).__name__}: {exc}"
        _health.last_where = where


def mark_recorder_thread() -> None:
    """Called by the recorder thread as it starts: failures there are kept, not raised."""
    global _recorder_thread
    _recorder_thread = threading.get_ident()


def raise_deferred() -> None:
    """Re-raise the recorder thread's kept failure (strict mode), once."""
    global kept
    if kept is None:
        return
    with _lock:
        exc, kept = kept, None
    if exc is not None:
        raise exc
