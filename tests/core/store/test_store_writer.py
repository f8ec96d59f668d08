"""The Store's writer: failures never reach the recorder, retryable ones are retried until they
land, permanent ones are isolated and reported at the next flush, and a closed store says so.

The backend here is a real MemoryBackend behind a thin wrapper that fails on request and
declares itself blocking, so writes go through the writer thread as they do for SQLite/Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest

from sessionware import SessionManager, StorageError
from sessionware.core.errors import SessionNotFound
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionInfo
from sessionware.core.session.registry import registry_for
from sessionware.core.store import MemoryBackend, Store, WriteOp, WriteReceipt
from sessionware.core.store.base import CreateSession, DeleteSession


class FailingBackend(MemoryBackend):
    """A memory backend on the writer thread whose next writes fail as told."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[Exception] = []
        self.poison: set[str] = set()
        """Session ids whose appends fail permanently (a write that can never succeed)."""
        self.attempts = 0

    @property
    def blocking(self) -> bool:
        return True

    @property
    def location(self) -> str:
        return "failing://test"

    def write(self, ops: Sequence[WriteOp]) -> WriteReceipt:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        for op in ops:
            if getattr(op, "session_id", None) in self.poison:
                raise RuntimeError(f"bug while writing {op.session_id}")  # type: ignore[union-attr]
        return super().write(ops)


def down() -> StorageError:
    return StorageError("write", "memory", "failing://test", "server unreachable", retryable=True)


@pytest.fixture
def backend() -> FailingBackend:
    return FailingBackend()


@pytest.fixture
def store(backend: FailingBackend) -> Iterator[Store]:
    made = Store(backend)
    yield made
    made.close()


async def test_a_retryable_failure_stays_buffered_and_lands_later(
    store: Store, backend: FailingBackend
) -> None:
    sm = SessionManager(store=store)
    await sm.user_says("first")
    await sm.flush()
    backend.failures = [down(), down(), down()]
    await sm.user_says("during the outage")  # never raises into the recorder
    with pytest.raises(StorageError, match="server unreachable") as caught:
        await sm.flush()
    assert caught.value.retryable and store.stats.pending_ops == 1 and store.stats.dropped_ops == 0
    deadline = time.monotonic() + 10
    while store.stats.pending_ops and time.monotonic() < deadline:
        time.sleep(0.02)  # the writer retries on its own, with backoff
    await sm.flush()
    assert [e.content for e in await store.aload_events(sm.session_id)] == ["first", "during the outage"]
    assert store.stats.write_errors >= 3


async def test_a_write_that_can_never_succeed_is_dropped_alone_and_reported_once(
    store: Store, backend: FailingBackend
) -> None:
    good = SessionManager("good", store=store)
    bad = SessionManager("bad", store=store)
    await good.user_says("hello")
    await bad.user_says("hello")
    await store.aflush()
    backend.poison.add("bad")
    await good.user_says("kept")
    await bad.user_says("lost")
    await good.user_says("kept too")
    with pytest.raises(StorageError, match=r"1 write\(s\) could not be stored") as caught:
        await store.aflush()
    assert "bug while writing bad" in caught.value.reason
    await store.aflush()  # reported once, not forever
    assert [e.content for e in await store.aload_events("good")] == ["hello", "kept", "kept too"]
    assert store.stats.dropped_ops == 1


async def test_a_session_deleted_elsewhere_drops_its_appends_without_blocking_others(
    store: Store, backend: FailingBackend
) -> None:
    sm = SessionManager("gone", store=store)
    other = SessionManager("other", store=store)
    await sm.user_says("x")
    await other.user_says("y")
    await store.aflush()
    MemoryBackend.write(backend, [DeleteSession("gone")])  # another process deleted it
    await sm.user_says("after the delete")
    await other.user_says("still stored")
    with pytest.raises(StorageError, match="could not be stored"):
        await store.aflush()
    assert [e.content for e in await store.aload_events("other")] == ["y", "still stored"]
    with pytest.raises(SessionNotFound):
        await store.aload_events("gone")


async def test_a_retryable_failure_while_isolating_keeps_the_rest_buffered(
    store: Store, backend: FailingBackend
) -> None:
    await SessionManager("a", store=store).user_says("one")
    await store.aflush()
    backend.failures = [RuntimeError("bug"), down()]  # the batch fails, then the first single op
    sm = SessionManager("a", store=store)
    await sm.user_says("two")
    with pytest.raises(StorageError, match="unreachable"):
        await store.aflush()
    assert store.stats.dropped_ops == 0
    await store.aflush()
    assert [e.content for e in await store.aload_events("a")] == ["one", "two"]


async def test_an_outage_longer_than_the_buffer_drops_the_oldest_writes(backend: FailingBackend) -> None:
    store = Store(backend, max_pending_ops=3)
    state = registry_for(store).open("s")
    store.flush()
    backend.failures = [down()] * 1000
    for i in range(6):
        state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=str(i))  # never raises
        with pytest.raises(StorageError, match="unreachable"):
            store.flush()
    assert store.stats.dropped_ops == 3 and store.stats.pending_ops == 3
    # The store numbers what it receives: the writes kept land in order after the outage,
    # and the ones the bounded buffer gave up are reported once and named in the figures.
    backend.failures = []
    with pytest.raises(StorageError, match="3 write\\(s\\) could not be stored"):
        store.flush()
    store.flush()
    assert [e.content for e in store.load("s").events] == ["3", "4", "5"]
    stats = store.stats
    assert (stats.dropped_ops, stats.dropped_events, stats.lost_sessions) == (3, 3, {"s"})
    store.close()


def test_a_closed_store_refuses_new_writes(backend: FailingBackend) -> None:
    store = Store(backend)
    store.submit([CreateSession(SessionInfo(id="s"))])
    store.close()
    store.close()  # twice is fine
    assert store.closed and repr(store) == "Store(memory: failing://test)"
    with pytest.raises(StorageError, match="store is closed"):
        store.submit([CreateSession(SessionInfo(id="t"))])


# -- the batching window --------------------------------------------------------------


def test_writes_submitted_within_the_window_land_in_one_commit(backend: FailingBackend) -> None:
    """The writer lets writes pile up for ``write_delay`` after the first one, so separate
    submits become one backend write, and the window ends on its own without a flush."""
    store = Store(backend, write_delay=0.2)
    for name in ("a", "b", "c"):
        store.submit([CreateSession(SessionInfo(id=name))])
    deadline = time.monotonic() + 10
    while not backend.exists("c") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.exists("a") and backend.exists("c")  # landed with nobody flushing
    assert backend.attempts == 1
    store.close()


def test_flush_reads_and_close_do_not_wait_out_the_window(backend: FailingBackend) -> None:
    """A window far longer than the test's timeouts: flush, a read and close each cut it
    short (each would otherwise time out or hang past the timeout below)."""
    from concurrent.futures import ThreadPoolExecutor

    store = Store(backend, write_delay=600)
    store.submit([CreateSession(SessionInfo(id="a"))])
    store.flush(timeout=10)
    assert backend.exists("a") and backend.attempts == 1

    store.submit([CreateSession(SessionInfo(id="b"))])
    with ThreadPoolExecutor(1) as pool:
        read = pool.submit(store.load, "b")
        assert read.result(timeout=10).id == "b"

    store.submit([CreateSession(SessionInfo(id="c"))])
    with ThreadPoolExecutor(1) as pool:
        pool.submit(store.close).result(timeout=10)
    assert backend.exists("c") and backend.attempts == 3


def test_a_negative_write_delay_is_refused(backend: FailingBackend) -> None:
    from sessionware import InvalidSessionOperation

    with pytest.raises(InvalidSessionOperation, match="write_delay"):
        Store(backend, write_delay=-1)
