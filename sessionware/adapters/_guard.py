"""The never-break-the-app rule: bookkeeping failures are logged and counted, not raised.

Everything an adapter does besides forwarding the app's call (reading the request,
resolving the session, accumulating a stream, recording) runs under ``report`` when it
fails. The app's call then proceeds as if it were not wrapped. Provider errors are not
bookkeeping failures: adapters re-raise those unchanged and never pass them here.

Strict mode re-raises instead, so a bug of ours is visible where it happens. It is on
by default when ``pytest`` has been imported (``"pytest" in sys.modules``), and can be
forced either way with ``set_strict(True)`` / ``set_strict(False)``; ``set_strict(None)``
goes back to the automatic choice.

>>> health().internal_errors >= 0
True
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass

__all__ = ["AdapterHealth", "health", "is_strict", "report", "set_strict"]

logger = logging.getLogger(__name__)


@dataclass
class AdapterHealth:
    """Counters of bookkeeping failures, for monitoring (and for tests)."""

    internal_errors: int = 0
    last_error: str | None = None
    last_where: str | None = None


_health = AdapterHealth()
_lock = threading.Lock()
_strict: bool | None = None


def health() -> AdapterHealth:
    """The process's adapter failure counters (a live object, not a copy)."""
    return _health


def set_strict(value: bool | None) -> None:
    """Re-raise bookkeeping failures (``True``), swallow them (``False``), or decide
    automatically (``None``: strict when pytest is imported)."""
    global _strict
    _strict = value


def is_strict() -> bool:
    if _strict is not None:
        return _strict
    return "pytest" in sys.modules


def report(where: str, exc: BaseException) -> None:
    """Record a bookkeeping failure; re-raise it in strict mode.

    Call it from an ``except Exception`` block: the app's call continues afterwards.
    """
    with _lock:
        _health.internal_errors += 1
        _health.last_error = f"{type(exc).__name__}: {exc}"
        _health.last_where = where
    if is_strict():
        raise exc
    logger.warning("sessionware could not record %s; the call proceeds unrecorded: %r", where, exc)
