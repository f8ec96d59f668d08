"""The store's writer: one long-lived thread that commits queued writes in order.

Recording never waits for I/O: the ``Store`` puts write batches on a queue that this
thread drains, committing whatever has piled up in one backend call. After the first
write of a quiet spell it lets writes pile up for at most ``write_delay`` seconds, so a
busy recorder costs one commit (and one wake-up of the thread, which then competes for
the GIL) per window, not per event. Reads, flushes and ``close`` cut the window short;
reads travel through the same queue, so they see every write submitted before them.

What a commit can meet, and what happens then (``StoreStats`` counts every case):

* a retryable ``StorageError`` (server down, file locked): the batch stays queued, ahead
  of later writes, and is retried with backoff, marked as a replay (a create or delete
  that may have been applied before the fault must not fail on the second attempt;
  appends are idempotent by event id). ``max_pending_ops`` bounds the queue: beyond it
  the oldest writes are dropped, counted, and their sessions listed as lost;
* ``StorageError(data_lost=True)`` (the backend's data vanished): the sessions this process still holds
  are written again first (``recovery`` callbacks, from the session registries), then
  the queue is retried; sessions it wrote but no longer holds are listed as lost. A
  process with nothing left to write learns of it too: a flush that wrote nothing in its
  round, and ``close``, ask a backend that can tell (``DataLossCheck``), and a read that
  finds the data gone has the same effect before it is read again;
* any other failure: the batch is retried op by op, so only the op that can never
  succeed is dropped, counted and reported at the next flush.

Each committed append is acknowledged per session (``acked``): how many of this store's
events the session holds and its last ``seq`` at that commit. Live sessions compare that
with the backend's ``last_seq`` to learn cheaply whether other writers appended.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sessionware.core.errors import SessionNotFound, SessionwareError, StorageError
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DataLossCheck,
    DeleteSession,
    SessionStore,
    WriteOp,
    WriteReceipt,
)

__all__ = ["DEFAULT_WRITE_DELAY", "StoreStats", "Writer"]

logger = logging.getLogger(__name__)

DEFAULT_WRITE_DELAY = 0.05
"""Seconds the writer lets writes pile up before a commit (a crash loses at most this)."""
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
_MAX_DROPPED_IDS = 10_000  # per session, kept until its live state takes them


@dataclass
class StoreStats:
    """Counters of a store's writer, exact, for monitoring and tests."""

    submitted_ops: int = 0
    written_ops: int = 0
    pending_ops: int = 0
    write_errors: int = 0
    """Failed attempts, retried or not."""
    dropped_ops: int = 0
    """Writes given up on: they can never succeed, or the queue overflowed in an outage."""
    appended_events: int = 0
    duplicate_events: int = 0
    """Events a replayed write found already stored (skipped, not duplicated)."""
    repaired_events: int = 0
    """Events stored with unencodable text repaired (``SessionEvent.repaired``)."""
    dropped_events: int = 0
    """Events of dropped writes: recorded, never stored."""
    resets: int = 0
    """Times the backend's data vanished under this process (``StorageError.data_lost``)."""
    restored_sessions: int = 0
    """Sessions written again after a reset from what this process held."""
    lost_sessions: set[str] = field(default_factory=set)
    """Sessions with events that are not in the store as far as this process knows:
    dropped writes, or data that vanished in a reset while this process no longer held
    the session (another process that holds it writes it again)."""
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

Recovery = Callable[[], list[WriteOp]]
"""Returns the writes that restore the sessions a process holds (after its data was lost)."""


def as_replay(op: WriteOp) -> WriteOp:
    """``op`` as it is retried: a create or delete that may have been applied already
    must not fail the second time."""
    if type(op) is CreateSession and op.exclusive:
        return CreateSession(op.info, exclusive=False)
    if type(op) is DeleteSession and op.must_exist:
        return DeleteSession(op.session_id, must_exist=False)
    return op


class Writer:
    """The writer thread of one store and everything it keeps."""

    def __init__(
        self,
        backend: SessionStore,
        stats: StoreStats,
        *,
        max_pending_ops: int,
        write_delay: float,
        recovery: Callable[[], list[WriteOp]],
    ) -> None:
        self.backend = backend
        self.stats = stats
        self.max_pending_ops = max_pending_ops
        self.write_delay = write_delay
        self.recovery = recovery
        self.acked: dict[str, tuple[int, int]] = {}
        """Per session: (events of this store the backend holds, its last seq then)."""
        self.dropped_ids: dict[str, set[str]] = {}
        """Per session: ids of events given up on, until the live session takes them."""
        self.touched: set[str] = set()
        """Sessions this store has written, to name the lost ones after a reset."""
        self._urgent = threading.Event()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: list[WriteOp] = []
        self._failures = 0  # consecutive failed commits, for backoff
        self._check_data = backend.check_data if isinstance(backend, DataLossCheck) else None
        self._checked = False  # the backend's data was found there in this round
        self._dropped_since_flush = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def ensure_started(self, name: str) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    # -- the queue ------------------------------------------------------------------------

    def put(self, ops: list[WriteOp]) -> None:
        self._queue.put(ops)

    def put_urgent(self, item: object) -> None:
        """Queue something a caller waits for, cutting the batching window short."""
        self._queue.put(item)
        self._urgent.set()

    def flush_marker(self) -> Future[None]:
        marker = _Flush()
        self.put_urgent(marker)
        return marker.future

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
        call = _Call(fn, args)
        self.put_urgent(call)
        return call.future

    def stop(self, timeout: float | None) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.put_urgent(_STOP)
            self._thread.join(timeout)

    def after_fork(self) -> None:
        # The thread does not survive fork; the child starts its own on demand. What was
        # queued is the parent's to write.
        self._thread = None
        self._queue = queue.SimpleQueue()
        self._urgent = threading.Event()
        self._start_lock = threading.Lock()
        self._pending = []

    # -- the thread -----------------------------------------------------------------------

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

    def _retry_delay(self) -> float:
        return RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS)) - 1]

    def _process(self, items: list[object]) -> bool:
        self._checked = False
        for item in items:
            if type(item) is list:
                self._pending.extend(item)
                continue
            error = self.commit()
            if item is _STOP:
                if error is None:
                    self.check()
                return False
            if isinstance(item, _Flush):
                if error is None:
                    error = self.check()
                error = self._flush_error(error)
                if error is None:
                    item.future.set_result(None)
                else:
                    item.future.set_exception(error)
            elif isinstance(item, _Call):
                try:
                    item.future.set_result(self._call(item))
                except BaseException as exc:  # handed to the waiting caller, not swallowed
                    item.future.set_exception(exc)
        self.commit()
        return True

    def _call(self, call: _Call) -> Any:
        try:
            return call.fn(*call.args)
        except StorageError as exc:
            if not exc.data_lost:
                raise
        # A read found the backend's data gone: write again what this process holds, then read.
        self._checked = False
        self.check()
        return call.fn(*call.args)

    def check(self) -> StorageError | None:
        """Ask a backend that can tell whether its data vanished since this store last
        wrote (at most once a round: a commit of the round asked already); if it did,
        write again what this process holds. The error that keeps writes pending, if any."""
        if self._check_data is None or self._checked:
            return None
        try:
            self._check_data()
        except StorageError as exc:
            if exc.data_lost:
                self._checked = True
                return self._reset([], exc)
            return None  # unreachable: nothing is pending, so nothing is lost by waiting
        self._checked = True
        return None

    # -- committing -----------------------------------------------------------------------

    def commit(self) -> StorageError | None:
        """Write everything pending; return the error that kept ops pending, if any."""
        if not self._pending:
            return None
        ops, self._pending = self._pending, []
        try:
            receipt = self.backend.write(ops)
        except StorageError as exc:
            if exc.data_lost:
                return self._reset(ops, exc)
            if exc.retryable:
                return self._keep_for_retry(ops, exc)
            return self._write_one_by_one(ops)
        except SessionwareError:
            return self._write_one_by_one(ops)
        except Exception:  # a backend bug must not kill the writer thread, nor wedge the queue
            logger.exception("store writer failed at %s", self.backend.location)
            return self._write_one_by_one(ops)
        self.written(ops, receipt)
        return None

    def written(self, ops: Sequence[WriteOp], receipt: WriteReceipt | None) -> None:
        """Account for ``ops`` committed with ``receipt``."""
        if receipt is None:  # a backend written before receipts: nothing to count but the ops
            receipt = WriteReceipt()
        stats = self.stats
        stats.written_ops += len(ops)
        stats.appended_events += receipt.appended
        if receipt.duplicates:
            stats.duplicate_events += receipt.duplicates
        if receipt.repaired:
            stats.repaired_events += len(receipt.repaired)
            for note in receipt.repaired:
                logger.warning(
                    "stored event %s of session %r with unencodable text repaired in %s",
                    note.event_id,
                    note.session_id,
                    ", ".join(note.fields),
                )
        counts: dict[str, int] = {}
        touched = self.touched
        for op in ops:
            if type(op) is AppendEvents:
                counts[op.session_id] = counts.get(op.session_id, 0) + len(op.events)
            elif type(op) is CreateSession:
                touched.add(op.info.id)
        acked = self.acked
        last_seqs = receipt.last_seqs
        for session_id, count in counts.items():
            before = acked.get(session_id)
            acked[session_id] = (count + (before[0] if before else 0), last_seqs.get(session_id, 0))
            touched.add(session_id)
        self._failures = 0
        self._checked = True  # a write finds a vanished store itself
        stats.pending_ops = len(self._pending)

    def _keep_for_retry(self, ops: list[WriteOp], exc: StorageError) -> StorageError:
        self._failures += 1
        self.stats.write_errors += 1
        self.stats.last_error = str(exc)
        logger.warning("write to %s failed, will retry: %s", self.backend.location, exc)
        self._pending = [as_replay(op) for op in ops] + self._pending
        overflow = len(self._pending) - self.max_pending_ops
        if overflow > 0:
            logger.error(
                "store %s is unreachable; dropped %d oldest pending writes", self.backend.location, overflow
            )
            for op in self._pending[:overflow]:
                self._account_drop(op)
            self.stats.dropped_ops += overflow
            self._dropped_since_flush += overflow
            del self._pending[:overflow]
        self.stats.pending_ops = len(self._pending)
        return exc

    def _write_one_by_one(self, ops: list[WriteOp]) -> StorageError | None:
        # One op in the batch can never succeed: isolate it so the others still land.
        for i, op in enumerate(ops):
            try:
                receipt = self.backend.write([op])
            except StorageError as exc:
                if exc.data_lost:
                    return self._reset(ops[i:], exc)
                if exc.retryable:
                    return self._keep_for_retry(ops[i:], exc)
                self._drop(op, exc)
            except Exception as exc:  # SessionwareError or a backend bug: this op cannot succeed
                self._drop(op, exc)
            else:
                self.written([op], receipt)
        return None

    def _reset(self, ops: list[WriteOp], exc: StorageError) -> StorageError | None:
        """The backend lost its data: write again what this process holds, then retry."""
        self.stats.resets += 1
        self.stats.last_error = str(exc)
        try:
            restore = self.recovery()
        except Exception:  # the writer thread must live on: what it could not gather is lost
            logger.exception("could not gather the sessions to write again to %s", self.backend.location)
            restore = []
        restored = {op.info.id for op in restore if type(op) is CreateSession}
        lost = self.touched - restored
        self.touched = set(restored)
        self.acked.clear()  # counts of a log that no longer exists
        self.stats.restored_sessions += len(restored)
        self.stats.lost_sessions.update(lost)
        logger.error(
            "store %s lost its data (%s); writing again the %d sessions this process holds%s",
            self.backend.location,
            exc.reason,
            len(restored),
            f"; {len(lost)} others it wrote are lost" if lost else "",
        )
        self._pending = restore + [as_replay(op) for op in ops] + self._pending
        if self._failures > len(RETRY_DELAYS):  # resets in a row: back off as for an outage
            return self._keep_for_retry([], exc)
        self._failures += 1
        return self.commit()

    def _drop(self, op: WriteOp, exc: Exception) -> None:
        self.stats.write_errors += 1
        self.stats.dropped_ops += 1
        self.stats.last_error = str(exc)
        self._dropped_since_flush += 1
        self._account_drop(op)
        if type(op) is DeleteSession and isinstance(exc, SessionNotFound):
            return
        logger.error("dropped a write to %s that cannot succeed: %s", self.backend.location, exc)

    def _account_drop(self, op: WriteOp) -> None:
        if type(op) is AppendEvents:
            self.stats.dropped_events += len(op.events)
            self.stats.lost_sessions.add(op.session_id)
            ids = self.dropped_ids.setdefault(op.session_id, set())
            if len(ids) < _MAX_DROPPED_IDS:
                ids.update(e.id for e in op.events)

    def _flush_error(self, error: StorageError | None) -> StorageError | None:
        """What a flush reports: a pending failure, else writes dropped since the last flush."""
        if error is not None:
            return error  # drops meanwhile are reported by the first flush that finds none pending
        dropped, self._dropped_since_flush = self._dropped_since_flush, 0
        if dropped:
            error = StorageError(
                "write",
                self.backend.kind,
                self.backend.location,
                f"{dropped} write(s) could not be stored and were dropped;"
                f" last error: {self.stats.last_error}",
            )
        return error
