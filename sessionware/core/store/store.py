"""``Store``: a backend behind a write-behind queue, usable from sync and async code.

Recording never waits for I/O: ``submit`` puts write batches on a queue that one
long-lived writer thread per store drains in order, committing whatever has piled up
in one transaction. After the first write of a quiet spell the writer lets writes pile
up for at most ``write_delay`` seconds, so a busy recorder costs one commit (and one
wake-up of the writer, which then competes for the GIL) per window, not per event.
Reads, ``flush()`` and ``close()`` cut the window short. Reads travel through the same
queue, so they see every write submitted before them. Async callers await the writer
through a future; nothing runs on the event loop but the hand-off. Backends without
I/O (memory) run inline.

Failures never reach the code that recorded: a write that fails with a retryable
``StorageError`` stays queued and is retried with backoff; one that can never succeed
is logged and counted. ``flush()`` is where a caller who cares sees the error. At a
normal interpreter exit every live store is flushed.

Sessions may hold records whose work was deferred (``SessionState.defer``): they register
here while they do, and ``flush()``, the reads and a delete settle them first (a read or
delete of one session settles that session), so what is flushed, read or deleted includes
every record made before.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sessionware.core.errors import InvalidSessionOperation, SessionwareError, StorageError
from sessionware.core.session.models import Session, SessionEvent, SessionInfo
from sessionware.core.store.base import DeleteSession, StoreBackend, WriteOp

__all__ = ["Store", "StoreStats"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_WRITE_DELAY = 0.05
"""Seconds the writer lets writes pile up before a commit (a crash loses at most this)."""
_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
_live_stores: weakref.WeakSet[Store] = weakref.WeakSet()
_exit_hook_installed = False


@dataclass
class StoreStats:
    """Counters of a store's writer, for monitoring and tests."""

    submitted_ops: int = 0
    written_ops: int = 0
    pending_ops: int = 0
    write_errors: int = 0
    dropped_ops: int = 0
    last_error: str | None = None


class _Flush:
    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[None] = Future()


class _Call:
    __slots__ = ("args", "fn", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.future: Future[Any] = Future()


_STOP = object()


class Settles(Protocol):
    """A session holding deferred writes to this store (a ``SessionState``)."""

    @property
    def id(self) -> str: ...

    def settle(self) -> None: ...


class Store:
    """A session store. Build one from a URL with ``open_store`` or from a backend.

    >>> from sessionware.core.store.memory import MemoryBackend
    >>> store = Store(MemoryBackend())
    >>> store.kind
    'memory'
    """

    def __init__(
        self,
        backend: StoreBackend,
        *,
        max_pending_ops: int = 100_000,
        write_delay: float = DEFAULT_WRITE_DELAY,
    ) -> None:
        if write_delay < 0:
            raise InvalidSessionOperation("Store", f"write_delay must be >= 0 seconds, got {write_delay!r}")
        self.backend = backend
        self._inline = not backend.blocking
        self.max_pending_ops = max_pending_ops
        self.write_delay = write_delay
        self._urgent = threading.Event()  # set by whoever must not wait out the window
        self.stats = StoreStats()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: list[WriteOp] = []
        self._failures = 0  # consecutive failed commits, for backoff
        self._dropped_since_flush = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._unsettled: set[Settles] = set()
        self._unresolved: deque[Callable[[], None]] = deque()
        self._resolve_lock = threading.RLock()
        self._resolving: int | None = None

    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"Store({self.kind}: {self.location})"

    # -- writer thread --------------------------------------------------------------

    def _ensure_writer(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._closed:
                raise StorageError("write", self.kind, self.location, "store is closed")
            _install_exit_hook()
            _live_stores.add(self)
            self._thread = threading.Thread(
                target=self._run, name=f"sessionware-store-{self.kind}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            timeout = None if not self._pending else self._retry_delay()
            try:
                items = [self._queue.get(timeout=timeout)]
            except queue.Empty:
                items = []
            if items and type(items[0]) is list and self.write_delay:
                # Let writes pile up; whatever must not wait sets _urgent after queueing.
                self._urgent.wait(self.write_delay)
                self._urgent.clear()
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not self._process(items):
                return

    def _put_urgent(self, item: object) -> None:
        """Queue something a caller waits for, cutting the writer's batching window short."""
        self._queue.put(item)
        self._urgent.set()

    def _retry_delay(self) -> float:
        return _RETRY_DELAYS[min(self._failures, len(_RETRY_DELAYS)) - 1]

    def _process(self, items: list[object]) -> bool:
        for item in items:
            if isinstance(item, list):
                self._pending.extend(item)
                continue
            error = self._commit()
            if item is _STOP:
                return False
            if isinstance(item, _Flush):
                error = self._flush_error(error)
                if error is None:
                    item.future.set_result(None)
                else:
                    item.future.set_exception(error)
            elif isinstance(item, _Call):
                self._execute(item)
        self._commit()
        return True

    def _execute(self, call: _Call) -> None:
        try:
            call.future.set_result(call.fn(*call.args))
        except BaseException as exc:  # handed to the waiting caller, not swallowed
            call.future.set_exception(exc)

    def _commit(self) -> StorageError | None:
        """Write everything pending; return the error that kept ops pending, if any."""
        if not self._pending:
            return None
        ops, self._pending = self._pending, []
        try:
            self.backend.write(ops)
        except StorageError as exc:
            if exc.retryable:
                return self._keep_for_retry(ops, exc)
            return self._write_one_by_one(ops)
        except SessionwareError:
            return self._write_one_by_one(ops)
        except Exception:  # a backend bug must not kill the writer thread, nor wedge the queue
            logger.exception("store writer failed at %s", self.location)
            return self._write_one_by_one(ops)
        else:
            self._written(len(ops))
        return None

    def _keep_for_retry(self, ops: list[WriteOp], exc: StorageError) -> StorageError:
        self._failures += 1
        self.stats.write_errors += 1
        self.stats.last_error = str(exc)
        logger.warning("write to %s failed, will retry: %s", self.location, exc)
        self._pending = ops + self._pending
        overflow = len(self._pending) - self.max_pending_ops
        if overflow > 0:
            self.stats.dropped_ops += overflow
            logger.error("store %s is unreachable; dropped %d oldest pending writes", self.location, overflow)
            del self._pending[:overflow]
        self.stats.pending_ops = len(self._pending)
        return exc

    def _write_one_by_one(self, ops: list[WriteOp]) -> StorageError | None:
        # One op in the batch can never succeed: isolate it so the others still land.
        for i, op in enumerate(ops):
            try:
                self.backend.write([op])
            except StorageError as exc:
                if exc.retryable:
                    return self._keep_for_retry(ops[i:], exc)
                self._drop(exc)
            except Exception as exc:  # SessionwareError or a backend bug: this op cannot succeed
                self._drop(exc)
            else:
                self._written(1)
        return None

    def _drop(self, exc: Exception) -> None:
        self.stats.write_errors += 1
        self.stats.dropped_ops += 1
        self.stats.last_error = str(exc)
        self._dropped_since_flush += 1
        logger.error("dropped a write to %s that cannot succeed: %s", self.location, exc)

    def _flush_error(self, error: StorageError | None) -> StorageError | None:
        """What a flush reports: a pending failure, else writes dropped since the last flush."""
        dropped, self._dropped_since_flush = self._dropped_since_flush, 0
        if error is None and dropped:
            error = StorageError(
                "write",
                self.kind,
                self.location,
                f"{dropped} write(s) could not be stored and were dropped;"
                f" last error: {self.stats.last_error}",
            )
        return error

    def _written(self, count: int) -> None:
        self.stats.written_ops += count
        self._failures = 0
        self.stats.pending_ops = len(self._pending)

    # -- deferred records -------------------------------------------------------------

    def add_unsettled(self, holder: Settles) -> None:
        """``holder`` has deferred records for this store: settle it before flushes and reads."""
        self._unsettled.add(holder)

    def discard_unsettled(self, holder: Settles) -> None:
        self._unsettled.discard(holder)

    def defer_unresolved(self, work: Callable[[], None]) -> bool:
        """Queue ``work`` that finds its session and defers its records there, to run
        (``resolve``) before anything reads this store or any of its live sessions.

        For calls whose session is worked out off the caller's path (the adapters'
        observe mode). Returns True when nothing was queued before: the caller must then
        see that ``resolve`` runs soon.
        """
        unresolved = self._unresolved
        unresolved.append(work)
        return len(unresolved) == 1

    @property
    def unresolved(self) -> bool:
        """True while ``defer_unresolved`` work is queued."""
        return bool(self._unresolved)

    @property
    def resolving(self) -> bool:
        """True on the thread running ``resolve`` while it does."""
        return self._resolving == threading.get_ident()

    def resolve(self) -> None:
        """Run the queued ``defer_unresolved`` work, in order (a no-op inside it).

        The work only opens sessions and defers records on them: it takes no session's
        lock, so a thread holding one may resolve while another thread records.
        """
        if not self._unresolved:
            return
        me = threading.get_ident()
        if self._resolving == me:
            return
        with self._resolve_lock:
            self._resolving = me
            try:
                unresolved = self._unresolved
                while unresolved:
                    unresolved.popleft()()
            finally:
                self._resolving = None

    async def aresolve(self) -> None:
        """``resolve`` without blocking the event loop: on a worker thread when working
        out a session may wait on the backend."""
        if not self._unresolved:
            return
        if self.backend.blocking and not self.resolving:
            import asyncio  # here: only ever needed inside a running event loop (import time)

            await asyncio.to_thread(self.resolve)
        else:
            self.resolve()

    async def _caught_up(self, session_id: str | None = None) -> None:
        """Before an async read: resolve (off the event loop when that may block), then
        apply the deferred records of ``session_id`` or of every session."""
        if self._unresolved:
            await self.aresolve()
        if self._unsettled or self._unresolved:
            self.settle(session_id)

    def settle(self, session_id: str | None = None) -> None:
        """Apply the deferred records of this store's sessions, or of ``session_id`` alone
        (on this thread)."""
        if self._unresolved:
            self.resolve()
        if session_id is not None:
            for holder in list(self._unsettled):
                if holder.id == session_id:
                    holder.settle()
            return
        while self._unsettled:
            try:
                holder = self._unsettled.pop()
            except KeyError:  # emptied by another thread
                return
            holder.settle()

    # -- public write path ----------------------------------------------------------

    def submit(self, ops: Sequence[WriteOp]) -> None:
        """Queue writes. Inline for non-blocking backends (their errors raise here)."""
        if self._unsettled or self._unresolved:
            for op in ops:
                if type(op) is DeleteSession:  # records made before a delete land before it
                    self.settle(op.session_id)
        self.stats.submitted_ops += len(ops)
        if self._inline:
            self.backend.write(ops)
            self.stats.written_ops += len(ops)
            return
        self._ensure_writer()
        self._queue.put(list(ops))

    def flush_sync(self, timeout: float | None = 30.0) -> None:
        """Block until every submitted write is stored; raise ``StorageError`` if not."""
        if self._unsettled or self._unresolved:
            self.settle()
        if not self.backend.blocking or self._thread is None:
            return
        marker = _Flush()
        self._put_urgent(marker)
        marker.future.result(timeout)

    async def flush(self, timeout: float | None = 30.0) -> None:
        """Wait, without blocking the event loop, until every submitted write is stored."""
        await self._caught_up()
        if not self.backend.blocking or self._thread is None:
            return
        marker = _Flush()
        self._put_urgent(marker)
        import asyncio  # here: only ever needed inside a running event loop (import time)

        await asyncio.wait_for(asyncio.wrap_future(marker.future), timeout)

    # -- reads (ordered after every write submitted before them) --------------------

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread, after every write submitted before it."""
        if self._unsettled or self._unresolved:
            self.settle()
        return self._call_sync(fn, args)

    def _call_sync(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if not self.backend.blocking:
            return fn(*args)
        self._ensure_writer()
        call = _Call(fn, args)
        self._put_urgent(call)
        result: T = call.future.result()
        return result

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        await self._caught_up()
        return await self._call(fn, args)

    async def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if not self.backend.blocking:
            return fn(*args)
        self._ensure_writer()
        call = _Call(fn, args)
        self._put_urgent(call)
        import asyncio  # here: only ever needed inside a running event loop (import time)

        result: T = await asyncio.wrap_future(call.future)
        return result

    # Reads of one session settle that session only: opening a new one must not run
    # every other session's deferred records on the caller's thread.

    async def load(self, session_id: str) -> Session:
        await self._caught_up(session_id)
        return await self._call(self.backend.load, (session_id,))

    def load_sync(self, session_id: str) -> Session:
        if self._unsettled or self._unresolved:
            self.settle(session_id)
        return self._call_sync(self.backend.load, (session_id,))

    async def load_info(self, session_id: str) -> SessionInfo:
        await self._caught_up(session_id)
        return await self._call(self.backend.load_info, (session_id,))

    async def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        await self._caught_up(session_id)
        return await self._call(self.backend.load_events, (session_id, after_seq))

    async def exists(self, session_id: str) -> bool:
        if self._unresolved:
            await self.aresolve()
        return await self._call(self.backend.exists, (session_id,))

    def exists_sync(self, session_id: str) -> bool:
        if self._unresolved:
            self.resolve()
        return self._call_sync(self.backend.exists, (session_id,))

    async def list_sessions(
        self, *, parent_id: str | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        return await self.call(lambda: self.backend.list_sessions(parent_id=parent_id, limit=limit))

    def list_sessions_sync(
        self, *, parent_id: str | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        return self.call_sync(lambda: self.backend.list_sessions(parent_id=parent_id, limit=limit))

    async def load_pages(self, session_id: str) -> dict[str, str]:
        await self._caught_up(session_id)
        return await self._call(self.backend.load_pages, (session_id,))

    # -- lifecycle ------------------------------------------------------------------

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer and close the backend. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush_sync(timeout)
        finally:
            self._closed = True
            if self._thread is not None and self._thread.is_alive():
                self._put_urgent(_STOP)
                self._thread.join(timeout)
            self.backend.close()
            _live_stores.discard(self)

    def _after_fork(self) -> None:
        # The writer thread does not survive fork; the child starts its own on demand.
        self._thread = None
        self._queue = queue.SimpleQueue()
        self._urgent = threading.Event()
        self._start_lock = threading.Lock()
        self._resolve_lock = threading.RLock()
        self._resolving = None


def _flush_all_at_exit() -> None:
    for store in list(_live_stores):
        try:
            store.close(timeout=10.0)
        except Exception as exc:
            logger.error("could not flush %r at exit: %s", store, exc)


def _reset_after_fork() -> None:
    for store in list(_live_stores):
        store._after_fork()


def _install_exit_hook() -> None:
    global _exit_hook_installed
    if not _exit_hook_installed:
        _exit_hook_installed = True
        atexit.register(_flush_all_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_after_fork)
