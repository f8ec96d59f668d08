"""``Store``: a ``SessionStore`` backend behind a write-behind queue, for sync and async code.

Writes (``submit``) never wait for I/O: a writer thread per store commits them in order
(see ``writer``); backends without I/O (memory) are written inline. Reads go through the
same queue, so they see every write submitted before them. Every method that may wait
comes in two spellings, as httpx does it: ``load`` blocks the calling thread, ``aload``
is its async twin and never blocks the event loop.

Failures never reach the code that recorded: see ``writer`` for retries, drops and
resets, and ``stats`` for their exact counts. ``flush()`` is where a caller who cares sees
an error. At a normal interpreter exit every live store is flushed.

Records whose work was deferred by a recorder wait in the store's ``barrier``
(``DeferralBarrier``); flushes, reads and deletes settle them first.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sessionware.core.errors import InvalidSessionOperation, StorageError
from sessionware.core.session.models import Session, SessionEvent, SessionInfo
from sessionware.core.store.barrier import DeferralBarrier
from sessionware.core.store.base import DeleteSession, SessionStore, SessionVersion, WriteOp
from sessionware.core.store.locks import DEFAULT_LOCK_TIMEOUT, SessionLocking
from sessionware.core.store.writer import DEFAULT_WRITE_DELAY, Recovery, StoreStats, Writer

__all__ = ["DEFAULT_WRITE_DELAY", "Store", "StoreHealth", "StoreStats", "live_stores", "store_health"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_live_stores: weakref.WeakSet[Store] = weakref.WeakSet()
_exit_hook_installed = False


def live_stores() -> list[Store]:
    """The stores of this process that have started writing (closed ones too, while alive)."""
    return list(_live_stores)


@dataclass(frozen=True)
class StoreHealth:
    """What every store of this process did with what was recorded, summed (``health()``)."""

    pending_writes: int = 0
    """Writes queued, not stored yet (an outage keeps them here, retried)."""
    dropped_writes: int = 0
    dropped_events: int = 0
    """Recorded events that will never be stored."""
    repaired_events: int = 0
    """Events stored with unencodable text repaired (``SessionEvent.repaired``)."""
    duplicate_events: int = 0
    """Events a replayed write found stored already (skipped, so not duplicated)."""
    resets: int = 0
    restored_sessions: int = 0
    lost_sessions: frozenset[str] = frozenset()
    """Sessions with recorded events that are not in their store (see ``StoreStats``)."""
    last_error: str | None = None


def store_health() -> StoreHealth:
    """The figures of every store this process has written to, summed."""
    stores = [s.stats for s in list(_live_stores)]
    return StoreHealth(
        pending_writes=sum(s.pending_ops for s in stores),
        dropped_writes=sum(s.dropped_ops for s in stores),
        dropped_events=sum(s.dropped_events for s in stores),
        repaired_events=sum(s.repaired_events for s in stores),
        duplicate_events=sum(s.duplicate_events for s in stores),
        resets=sum(s.resets for s in stores),
        restored_sessions=sum(s.restored_sessions for s in stores),
        lost_sessions=frozenset().union(*(s.lost_sessions for s in stores)),
        last_error=next((s.last_error for s in stores if s.last_error), None),
    )


class Store:
    """A session store. Build one from a URL with ``open_store`` or from a backend.

    >>> from sessionware.core.store.memory import MemoryBackend
    >>> store = Store(MemoryBackend())
    >>> store.kind
    'memory'
    """

    def __init__(
        self,
        backend: SessionStore,
        *,
        max_pending_ops: int = 100_000,
        write_delay: float = DEFAULT_WRITE_DELAY,
    ) -> None:
        if write_delay < 0:
            raise InvalidSessionOperation("Store", f"write_delay must be >= 0 seconds, got {write_delay!r}")
        self.backend = backend
        self._inline = not backend.blocking
        # Checked once: a runtime Protocol check costs microseconds, and exclusive() runs per record.
        self._locking: SessionLocking | None = (
            backend if not self._inline and isinstance(backend, SessionLocking) else None
        )
        self.stats = StoreStats()
        self.barrier = DeferralBarrier(blocking=backend.blocking)
        self._recoveries: list[weakref.WeakMethod[Recovery]] = []
        self._writer = Writer(
            backend,
            self.stats,
            max_pending_ops=max_pending_ops,
            write_delay=write_delay,
            recovery=self._recovery_ops,
        )
        self._closed = False

    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def inline(self) -> bool:
        """True when writes are applied on the caller's thread (a backend without I/O)."""
        return self._inline

    @property
    def max_pending_ops(self) -> int:
        return self._writer.max_pending_ops

    @property
    def write_delay(self) -> float:
        return self._writer.write_delay

    def __repr__(self) -> str:
        return f"Store({self.kind}: {self.location})"

    # -- what live sessions ask -----------------------------------------------------------

    def acked(self, session_id: str) -> tuple[int, int]:
        """(events of this store the backend has acknowledged for the session, its last
        ``seq`` at the latest of those commits)."""
        return self._writer.acked.get(session_id, (0, 0))

    def has_dropped(self, session_id: str) -> bool:
        """True when events of the session were given up on since its live state looked."""
        return session_id in self._writer.dropped_ids

    def take_dropped(self, session_id: str) -> set[str]:
        """Ids of the session's events given up on (and forget them)."""
        return self._writer.dropped_ids.pop(session_id, set())

    def last_seq(self, session_id: str) -> int:
        """The backend's committed log length for the session, asked directly (not queued
        behind pending writes): a cheap probe, ``StorageError`` when unreachable."""
        return self.backend.last_seq(session_id)

    def add_recovery(self, recovery: Recovery) -> None:
        """After the backend lost its data, write ``recovery()``'s ops first (held weakly: pass a
        bound method of an object that lives as long as what it restores)."""
        self._recoveries.append(weakref.WeakMethod(recovery))

    def _recovery_ops(self) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for ref in list(self._recoveries):
            recovery = ref()
            if recovery is None:
                self._recoveries.remove(ref)
            else:
                ops.extend(recovery())
        return ops

    # -- writes -----------------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        if self._closed:
            raise StorageError("write", self.kind, self.location, "store is closed")
        _install_exit_hook()
        _live_stores.add(self)
        self._writer.ensure_started(f"sessionware-store-{self.kind}")

    def submit(self, ops: Sequence[WriteOp]) -> None:
        """Queue writes. Inline for non-blocking backends (their errors raise here)."""
        barrier = self.barrier
        if barrier.unsettled or barrier.unresolved:
            for op in ops:
                if type(op) is DeleteSession:  # records made before a delete land before it
                    barrier.settle(op.session_id)
        stats = self.stats
        stats.submitted_ops += len(ops)
        if self._inline:
            self.backend.write(ops)
            stats.written_ops += len(ops)
            return
        if not self._writer.started or self._closed:
            self._ensure_writer()
        self._writer.put(list(ops))

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every submitted write is stored; raise ``StorageError`` if not."""
        if self.barrier.pending:
            self.barrier.settle()
        if self._inline or not self._writer.started:
            return
        self._writer.flush_marker().result(timeout)

    async def aflush(self, timeout: float | None = 30.0) -> None:
        """``flush`` without blocking the event loop."""
        await self.barrier.acaught_up()
        if self._inline or not self._writer.started:
            return
        future = self._writer.flush_marker()
        import asyncio  # here: only ever needed inside a running event loop (import time)

        await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    # -- one session at a time across processes ---------------------------------------------

    @contextmanager
    def exclusive(self, session_id: str, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[bool]:
        """Hold ``session_id`` against every other process of this store for the block, and
        keep holding it until what the block submitted is committed (see ``core.store.locks``).

        Yields True when held. A store that only this process sees (memory), one whose
        backend has no locks, or one that is unreachable yields False and the block runs
        unlocked; so does a lock not released within ``timeout`` seconds. A commit that
        takes longer than ``timeout`` is left to the writer. Neither ever raises.
        """
        backend = self._locking
        if backend is None or self._closed:
            yield False
            return
        stack = ExitStack()
        try:
            held = stack.enter_context(backend.lock_session(session_id, timeout))
        except StorageError as exc:
            logger.debug("session %r is recorded unlocked: %s", session_id, exc)
            held = False
        if not held:
            logger.debug("session %r is recorded unlocked: its lock was not free", session_id)
        try:
            yield held
            if held and self._writer.started:
                try:  # every write queued before this marker, committed (errors stay the writer's)
                    self._writer.call(_nothing, ()).result(timeout)
                except TimeoutError:
                    logger.debug("session %r: its commit outlasted the lock's %.1f s", session_id, timeout)
        finally:
            try:
                stack.close()
            except StorageError as exc:
                logger.debug("session %r: its lock was not released (it expires): %s", session_id, exc)

    # -- reads (ordered after every write submitted before them) ----------------------------

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._inline:
            return fn(*args)
        self._ensure_writer()
        result: T = self._writer.call(fn, args).result()
        return result

    async def _arun(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._inline:
            return fn(*args)
        self._ensure_writer()
        future = self._writer.call(fn, args)
        import asyncio  # here: only ever needed inside a running event loop (import time)

        result: T = await asyncio.wrap_future(future)
        return result

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread, after every write submitted before it."""
        if self.barrier.pending:
            self.barrier.settle()
        return self._run(fn, args)

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        await self.barrier.acaught_up()
        return await self._arun(fn, args)

    # Reads of one session settle that session only: opening a new one must not run
    # every other session's deferred records on the caller's thread.

    def _settle(self, session_id: str) -> None:
        if self.barrier.pending:
            self.barrier.settle(session_id)

    def load(self, session_id: str) -> Session:
        self._settle(session_id)
        return self._run(self.backend.load, (session_id,))

    async def aload(self, session_id: str) -> Session:
        await self.barrier.acaught_up(session_id)
        return await self._arun(self.backend.load, (session_id,))

    def load_info(self, session_id: str) -> SessionInfo:
        self._settle(session_id)
        return self._run(self.backend.load_info, (session_id,))

    async def aload_info(self, session_id: str) -> SessionInfo:
        await self.barrier.acaught_up(session_id)
        return await self._arun(self.backend.load_info, (session_id,))

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        self._settle(session_id)
        return self._run(self.backend.load_events, (session_id, after_seq))

    async def aload_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        await self.barrier.acaught_up(session_id)
        return await self._arun(self.backend.load_events, (session_id, after_seq))

    def load_pages(self, session_id: str) -> dict[str, str]:
        self._settle(session_id)
        return self._run(self.backend.load_pages, (session_id,))

    async def aload_pages(self, session_id: str) -> dict[str, str]:
        await self.barrier.acaught_up(session_id)
        return await self._arun(self.backend.load_pages, (session_id,))

    def exists(self, session_id: str) -> bool:
        if self.barrier.unresolved:
            self.barrier.resolve()
        return self._run(self.backend.exists, (session_id,))

    async def aexists(self, session_id: str) -> bool:
        if self.barrier.unresolved:
            await self.barrier.aresolve()
        return await self._arun(self.backend.exists, (session_id,))

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        return self.call(lambda: self.backend.list_sessions(parent_id=parent_id, limit=limit))

    async def alist_sessions(
        self, *, parent_id: str | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        return await self.acall(lambda: self.backend.list_sessions(parent_id=parent_id, limit=limit))

    def session_versions(self) -> dict[str, SessionVersion]:
        """Every session's ``SessionVersion``: what changed since an earlier look, cheaply."""
        return self.call(self.backend.session_versions)

    async def asession_versions(self) -> dict[str, SessionVersion]:
        return await self.acall(self.backend.session_versions)

    def _read_since(self, session_id: str, after_seq: int) -> tuple[int, SessionInfo, list[SessionEvent]]:
        # On the writer thread: the acknowledged count and the snapshot agree exactly.
        acked = self.acked(session_id)[0]
        info, events = self.backend.read_since(session_id, after_seq)
        return acked, info, events

    def read_since(self, session_id: str, after_seq: int) -> tuple[int, SessionInfo, list[SessionEvent]]:
        """(``acked(session_id)[0]`` at the read, the header, the events after ``after_seq``),
        after every write submitted before; for a live session following the store."""
        return self._run(self._read_since, (session_id, after_seq))

    async def aread_since(
        self, session_id: str, after_seq: int
    ) -> tuple[int, SessionInfo, list[SessionEvent]]:
        return await self._arun(self._read_since, (session_id, after_seq))

    # -- former names (one release) ---------------------------------------------------------

    def flush_sync(self, timeout: float | None = 30.0) -> None:
        """Deprecated: ``flush``."""
        _renamed("flush_sync", "flush")
        self.flush(timeout)

    def load_sync(self, session_id: str) -> Session:
        """Deprecated: ``load``."""
        _renamed("load_sync", "load")
        return self.load(session_id)

    def exists_sync(self, session_id: str) -> bool:
        """Deprecated: ``exists``."""
        _renamed("exists_sync", "exists")
        return self.exists(session_id)

    def list_sessions_sync(
        self, *, parent_id: str | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        """Deprecated: ``list_sessions``."""
        _renamed("list_sessions_sync", "list_sessions")
        return self.list_sessions(parent_id=parent_id, limit=limit)

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Deprecated: ``call``."""
        _renamed("call_sync", "call")
        return self.call(fn, *args)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer and close the backend. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._writer.stop(timeout)
            self.backend.close()

    def _after_fork(self) -> None:
        self._writer.after_fork()
        self.barrier.after_fork()


def _nothing() -> None:
    """What the writer runs to tell when everything queued before it was committed."""


def _renamed(old: str, new: str) -> None:
    warnings.warn(
        f"Store.{old} is deprecated and will be removed in the next release; use Store.{new}"
        f" (async twins carry the 'a' prefix: Store.a{new})",
        DeprecationWarning,
        stacklevel=3,
    )


_before_exit_flush: list[Callable[[], None]] = []


def before_exit_flush(step: Callable[[], None]) -> None:
    """Run ``step`` at interpreter exit before the stores are flushed and closed, whatever
    order the exit hooks were registered in (deferred recording settles there, so what it
    still holds reaches an open store)."""
    if step not in _before_exit_flush:
        _before_exit_flush.append(step)


def _flush_all_at_exit() -> None:
    for step in list(_before_exit_flush):
        try:
            step()
        except Exception as exc:
            logger.error("exit step %r failed: %s", step, exc)
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
