"""The recorder thread: the adapters' bookkeeping, done off the app's path.

One long-lived daemon thread per process, started on first use, runs what the adapters
hand it, in the order they hand it over:

* **deferred records**: a wrapped call in observe mode only captures references (the
  request body, the response or error, timings, the session) and queues the work of
  recording them on the session (``SessionState.defer``); ``schedule(state)`` asks this
  thread to settle it. Any code that reads or writes the session before then settles it
  itself (``SessionState.settle``), so nothing is ever read stale or out of order.
* **finalisations the garbage collector found** (abandoned streams): noticed by
  ``__del__`` or a generator being closed, both of which the cyclic collector may run at
  any allocation, inside a lock the recording path needs or halfway through an import.
  Those only enqueue (``SimpleQueue.put`` is safe there) through ``defer``.

Work is taken in batches: once woken, the thread lets work pile up for ``LINGER``
seconds before it takes the GIL, then runs everything queued. One hand-off of the GIL per
batch instead of one per call saves two context switches a call, and the app runs on
undisturbed in between (a waiting thread takes the GIL at the app's next release of it,
which the SDKs make on every call, so per-call wake-ups would land in every call).
A longer batch is also cheaper per item (the recording code and the sessions it touches
stay in the CPU's caches: ~65 µs of the thread's CPU per mocked chat call at 20 ms, ~50
at 100 ms) and lands in fewer of the app's calls. While work keeps coming, the thread
looks for it every ``LINGER`` instead of blocking on its queue, whose first new item
would wake it at once (one more hand-off per burst of calls). Nothing waits on that
delay: every read of a session settles it first, and ``settle()`` cuts it short.

``settle()`` waits until everything queued so far has run (tests, and apps about to read
stats, though reads settle by themselves); at a normal interpreter exit it runs before
the stores flush, so nothing is lost. Failures of the work are the work's to report
(``guard``); one that escapes is logged and the thread carries on. ``stats()`` counts the
thread's batches, items and CPU time.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.core.store.store import before_exit_flush

__all__ = [
    "IDLE_POLLS",
    "LINGER",
    "RecorderStats",
    "collecting",
    "defer",
    "hold",
    "on_recorder_thread",
    "schedule",
    "schedule_resolution",
    "settle",
    "stats",
    "watch_collector",
]

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


LINGER = 0.1
"""Seconds the recorder thread lets work pile up once woken."""

IDLE_POLLS = 10
"""Empty looks at the queue (one per ``LINGER``) before the thread blocks on it."""


@dataclass
class RecorderStats:
    """What the recorder thread has done (for monitoring and benchmarks)."""

    batches: int = 0
    items: int = 0
    cpu_ns: int = 0
    """CPU time of the thread itself (``time.thread_time_ns``)."""


_queue: queue.SimpleQueue[Callable[[], None] | threading.Event] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
_primed = False
_urgent = threading.Event()
_stats = RecorderStats()
_running = False
"""True from the thread's start until it ends (read on every call: cheaper than ``is_alive``)."""


def stats() -> RecorderStats:
    """The recorder thread's counters (a live object, not a copy)."""
    return _stats


def defer(action: Callable[[], None]) -> None:
    """Run ``action`` soon on the recorder thread (safe to call from ``__del__``)."""
    _queue.put(action)
    if not _running:
        _start()


def schedule(state: Any) -> None:
    """Have the recorder thread settle ``state`` (a ``SessionState`` with deferred records).

    The first work of the process is run right here instead: recording imports what it
    needs on first use (the price data imports ``httpx2``), and a module being imported on
    another thread is visible half-initialised to code that probes ``sys.modules`` for it
    (openai does, for ``httpx2``), so those imports happen on the app's thread.
    """
    _run_soon(state.settle)


def schedule_resolution(store: Any) -> None:
    """Have the recorder thread run a store's queue of calls whose session is not worked
    out yet (``DeferralBarrier.defer_unresolved``), then settle what they deferred (as ``schedule``)."""
    _run_soon(store.barrier.settle)


def _run_soon(action: Callable[[], None]) -> None:
    global _primed
    if not _primed:
        _primed = True
        action()
        return
    _queue.put(action)
    if not _running:
        _start()


def _start() -> None:
    global _thread, _running
    if sys.is_finalizing():
        return
    # Never wait here: this may run inside a collection triggered while this very lock is
    # held. Whoever holds it is starting the thread, which will find the queued action.
    if not _start_lock.acquire(blocking=False):
        return
    try:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_run, name="sessionware-recorder", daemon=True)
        _running = True
        _thread.start()
        if not _hooks_installed:
            _install_hooks()
    finally:
        _start_lock.release()


def _run_one(item: Callable[[], None] | threading.Event) -> None:
    if isinstance(item, threading.Event):
        item.set()
        return
    try:
        item()
    except Exception as exc:
        # The work reports its own failures (``guard.report`` keeps them on this thread);
        # what escapes it is a bug in that reporting, counted the same way.
        guard.report("deferred work", exc)


_hooks_installed = False


def _install_hooks() -> None:
    global _hooks_installed
    _hooks_installed = True
    atexit.register(_settle_at_exit)
    # Stores flush and close at exit too; registered later than this hook they would run
    # first and close under what the recorder still holds.
    before_exit_flush(_settle_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)


def _settle_at_exit() -> None:
    settle(10.0)


def _after_fork() -> None:
    # The thread does not survive fork; the child starts its own on demand. What was
    # queued is the parent's to record (the child settles a session it reads, though).
    global _thread, _running, _queue
    _thread, _running, _queue = None, False, queue.SimpleQueue()


def _run() -> None:
    global _running
    try:
        _loop()
    finally:
        _running = False


def _loop() -> None:
    guard.mark_recorder_thread()
    while True:
        item: Callable[[], None] | threading.Event | None = _queue.get()  # idle: block for work
        if not isinstance(item, threading.Event):
            _urgent.wait(LINGER)  # let the batch grow; settle() cuts the wait short
        idle = 0
        while idle < IDLE_POLLS:
            # Busy: the next batch a LINGER later, looking at the queue without blocking on
            # it (a put would wake the thread, which then takes the GIL from the app once
            # more), so a batch costs the app one hand-off. After IDLE_POLLS empty looks
            # the thread blocks again: an app that pauses between bursts of calls keeps
            # its batches, one that went quiet costs no wake-ups.
            _urgent.clear()
            if item is None:
                try:
                    item = _queue.get_nowait()
                except queue.Empty:
                    idle += 1
            if item is not None:
                idle = 0
                _run_batch(item)
                item = None
            _urgent.wait(LINGER)


def _run_batch(first: Callable[[], None] | threading.Event) -> None:
    started = time.thread_time_ns()
    count = 1
    _run_one(first)
    while True:
        try:
            item = _queue.get_nowait()
        except queue.Empty:
            break
        _run_one(item)
        count += 1
    _stats.batches += 1
    _stats.items += count
    _stats.cpu_ns += time.thread_time_ns() - started


def on_recorder_thread() -> bool:
    """True on the recorder thread itself."""
    return _thread is not None and threading.current_thread() is _thread


def settle(timeout: float | None = 10.0) -> bool:
    """Wait until everything queued so far has run; False on timeout.

    In strict mode (tests), a bookkeeping failure the recorder thread met since the last
    call is re-raised here.
    """
    if on_recorder_thread():
        return True  # waiting for ourselves would never end; our queue runs in order anyway
    if _thread is None or not _thread.is_alive():
        while True:  # no thread (yet, or any more): run what is queued here
            try:
                _run_one(_queue.get_nowait())
            except queue.Empty:
                break
        done = True
    else:
        marker = threading.Event()
        _queue.put(marker)  # before the flag: a look at the queue after the flag finds it
        _urgent.set()
        done = marker.wait(timeout)
    guard.raise_deferred()
    return done


@contextmanager
def hold(timeout: float = 10.0) -> Iterator[None]:
    """Keep the recorder thread busy for the block: nothing queued runs there meanwhile.

    A seam for tests and diagnostics: deferred records made inside the block stay
    pending until something reads or writes their session (or the block ends), which
    is how tests check that reads and writes settle by themselves.
    """
    entered, release = threading.Event(), threading.Event()

    def wait() -> None:
        entered.set()
        release.wait(timeout)

    defer(wait)
    entered.wait(timeout)
    try:
        yield
    finally:
        release.set()
