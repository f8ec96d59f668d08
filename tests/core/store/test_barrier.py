"""The deferral barrier: flushes and reads wait for deferred records, including the ones
another thread (the adapters' recorder) is running at that moment."""

from __future__ import annotations

import threading

from sessionware.core.store.barrier import DeferralBarrier


class SlowSession:
    """Settles as ``SessionState`` does: under its lock, a no-op once its records ran."""

    id = "s"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()
        self.ran = False

    def settle(self) -> None:
        with self.lock:
            if self.ran:
                return
            self.started.set()
            self.release.wait(10)
            self.ran = True


def test_a_settle_waits_for_records_another_thread_took_out_and_is_still_running() -> None:
    barrier = DeferralBarrier(blocking=True)
    session = SlowSession()
    barrier.add_unsettled(session)
    recorder = threading.Thread(target=barrier.settle)
    recorder.start()
    assert session.started.wait(10)
    assert not barrier.unsettled and barrier.pending  # out of the set, not done yet

    flushed = threading.Event()

    def flush() -> None:
        barrier.settle()  # what Store.flush and Store.close do first
        flushed.set()

    flusher = threading.Thread(target=flush)
    flusher.start()
    assert not flushed.wait(0.3)  # it waits: the records are not submitted yet
    session.release.set()
    recorder.join(10)
    flusher.join(10)
    assert flushed.is_set() and session.ran and not barrier.pending


def test_a_settle_of_one_session_waits_for_it_too() -> None:
    barrier = DeferralBarrier(blocking=True)
    session = SlowSession()
    barrier.add_unsettled(session)
    recorder = threading.Thread(target=barrier.settle)
    recorder.start()
    assert session.started.wait(10)
    reader = threading.Thread(target=barrier.settle, args=("s",))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()
    session.release.set()
    recorder.join(10)
    reader.join(10)
    assert not reader.is_alive() and session.ran
