"""Finalising what the garbage collector found, outside the collector.

An abandoned stream is noticed by ``__del__`` or by its generator being closed, both of
which the cyclic garbage collector may run at any allocation: inside a lock the
recording path itself needs (a deadlock), or halfway through an import. So those
finalisations only enqueue (``SimpleQueue.put`` is safe there) and one long-lived daemon
thread, started on first use, records them; at exit the queue is drained before stores
flush. ``settle()`` waits for what is queued (tests, and apps about to read stats).
"""

from __future__ import annotations

import atexit
import gc
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from sessionware.adapters import _guard

__all__ = ["collecting", "defer", "settle", "watch_collector"]

logger = logging.getLogger(__name__)

_gc_thread: int | None = None


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _gc_thread
    _gc_thread = threading.get_ident() if phase == "start" else None


def collecting() -> bool:
    """True while the cyclic garbage collector runs on this thread."""
    return _gc_thread == threading.get_ident()


def watch_collector() -> None:
    """Let ``collecting`` see collections (installed once, with the first recording stream)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


_deferred: queue.SimpleQueue[Callable[[], None] | threading.Event] = queue.SimpleQueue()
_finalizer: threading.Thread | None = None
_finalizer_lock = threading.Lock()


def defer(action: Callable[[], None]) -> None:
    """Run ``action`` soon on the finalizer thread (safe to call from ``__del__``)."""
    _deferred.put(action)
    if _finalizer is None or not _finalizer.is_alive():
        _start_finalizer()


def _start_finalizer() -> None:
    global _finalizer
    if sys.is_finalizing():
        return
    # Never wait here: this may run inside a collection triggered while this very lock is
    # held. Whoever holds it is starting the thread, which will find the queued action.
    if not _finalizer_lock.acquire(blocking=False):
        return
    try:
        if _finalizer is not None and _finalizer.is_alive():
            return
        _finalizer = threading.Thread(target=_run_deferred, name="sessionware-finalizer", daemon=True)
        _finalizer.start()
        atexit.register(settle, 5.0)
    finally:
        _finalizer_lock.release()


def _run_one(item: Callable[[], None] | threading.Event) -> None:
    if isinstance(item, threading.Event):
        item.set()
        return
    try:
        item()
    except Exception as exc:
        # Strict mode re-raises here too; the thread must survive it.
        try:
            _guard.report("an abandoned stream", exc)
        except Exception:
            logger.exception("sessionware could not record an abandoned stream")


def _run_deferred() -> None:
    while True:
        _run_one(_deferred.get())


def settle(timeout: float | None = 5.0) -> bool:
    """Wait until every abandoned stream noticed so far is recorded; False on timeout."""
    if _finalizer is None or not _finalizer.is_alive():
        while True:  # no thread (yet, or any more): run what is queued here
            try:
                _run_one(_deferred.get_nowait())
            except queue.Empty:
                return True
    marker = threading.Event()
    _deferred.put(marker)
    return marker.wait(timeout)
