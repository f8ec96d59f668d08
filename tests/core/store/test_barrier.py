"""The deferral barrier with the adapters' recorder thread: a flush, a close or a read on
one thread waits for the deferred records another thread is running at that moment, and
two threads running two sessions' records that each flush never wait for each other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from sessionware.core.session.enums import EventSource, EventType
from sessionware.core.session.registry import SessionRegistry
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store
from sessionware.core.store.url import open_store


def slow_record(state: SessionState, text: str) -> tuple[threading.Event, threading.Event]:
    """Defer a record that starts, then waits to be released before it records."""
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        assert release.wait(10)
        state.record(EventType.MESSAGE, EventSource.USER, content=text)

    state.defer(work)
    return started, release


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        fn()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def test_a_close_waits_for_the_records_the_recorder_thread_is_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    store = open_store(url)
    state = SessionRegistry(store).open("s")
    started, release = slow_record(state, "hello")
    recorder, _ = in_thread(store.barrier.settle)  # what the recorder thread runs
    assert started.wait(10)

    closer, closed = in_thread(store.close)
    assert not closed.wait(0.3)  # the record is not submitted yet: the close waits for it
    release.set()
    recorder.join(10)
    closer.join(10)
    assert closed.is_set()

    again = open_store(url)
    assert [e.content for e in again.load("s").events] == ["hello"]
    again.close()


def test_a_read_of_the_session_waits_for_them_too(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'chat.db'}")
    state = SessionRegistry(store).open("s")
    started, release = slow_record(state, "hello")
    recorder, _ = in_thread(store.barrier.settle)
    assert started.wait(10)

    read: list[int] = []
    reader, done = in_thread(lambda: read.append(len(store.load_events("s"))))
    assert not done.wait(0.3)
    release.set()
    recorder.join(10)
    reader.join(10)
    assert read == [1]
    assert not store.barrier.pending
    store.close()


def flushing_record(
    store: Store, state: SessionState, mine: threading.Event, theirs: threading.Event
) -> None:
    def work() -> None:
        mine.set()
        assert theirs.wait(10)
        store.flush()  # each session's records are in the barrier while the other runs
        state.record(EventType.MESSAGE, EventSource.USER, content=state.id)

    state.defer(work)


def test_two_threads_running_two_sessions_records_that_flush_do_not_wait_for_each_other(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'chat.db'}")
    registry = SessionRegistry(store)
    first, second = registry.open("a"), registry.open("b")
    a_runs, b_runs = threading.Event(), threading.Event()
    flushing_record(store, first, a_runs, b_runs)
    flushing_record(store, second, b_runs, a_runs)

    one, one_done = in_thread(first.settle)
    two, two_done = in_thread(second.settle)
    assert one_done.wait(10) and two_done.wait(10)  # neither waits for the other's lock
    store.flush()
    assert [e.content for e in store.load("a").events] == ["a"]
    assert [e.content for e in store.load("b").events] == ["b"]
    assert not store.barrier.pending
    store.close()


def test_a_session_left_in_the_barrier_with_nothing_to_run_leaves_it_on_its_next_settle(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'chat.db'}")
    state = SessionRegistry(store).open("s")
    store.barrier.add_unsettled(state)  # as a defer racing a settle on another thread can
    assert store.barrier.pending
    store.flush()
    assert not store.barrier.pending
    store.close()
