"""A live session follows the store: what other writers appended is taken in before a
read, in the store's order, with this process' own uncommitted events kept after it.

Two ``Store`` objects on one SQLite file are two writers, as two processes would be.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionware import SessionManager, StorageError
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend


@pytest.fixture
def two_writers(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    # The first writer commits only when asked (a window longer than any test).
    mine = Store(SQLiteBackend(tmp_path / "shared.db"), write_delay=600)
    theirs = Store(SQLiteBackend(tmp_path / "shared.db"))
    yield mine, theirs
    mine.close()
    theirs.close()


def say(state: SessionState, text: str) -> SessionEvent:
    return state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=text)


class Extension:
    """Stands for the virtual memory: told of new events and of rewrites."""

    def __init__(self, state: SessionState) -> None:
        self.seen: list[str] = []
        self.rewinds = 0
        state.add_listener(lambda e: self.seen.append(e.text))
        state.extensions["test"] = self

    def rewound(self) -> None:
        self.rewinds += 1


def test_events_of_another_writer_after_everything_seen_are_appended(
    two_writers: tuple[Store, Store],
) -> None:
    mine, theirs = two_writers
    state = registry_for(mine).open("s")
    say(state, "mine 1")
    mine.flush()
    ext = Extension(state)
    other = registry_for(theirs).open("s")
    say(other, "theirs 1")
    say(other, "theirs 2")
    theirs.flush()
    assert state.follow() is True
    assert [(e.seq, e.text) for e in state.events] == [(1, "mine 1"), (2, "theirs 1"), (3, "theirs 2")]
    assert ext.seen == ["theirs 1", "theirs 2"] and ext.rewinds == 0
    assert state.info.totals.events == 3 and state.info.last_seq == 3
    assert state.follow() is False  # nothing new: one cheap look


def test_uncommitted_own_events_move_after_what_others_committed_meanwhile(
    two_writers: tuple[Store, Store],
) -> None:
    mine, theirs = two_writers
    state = registry_for(mine).open("s")
    say(state, "mine 1")
    mine.flush()
    other = registry_for(theirs).open("s")
    say(state, "mine 2")  # numbered 2 here, not committed yet
    ext = Extension(state)
    say(other, "theirs 1")
    theirs.flush()  # committed first: the store numbers it 2
    state.follow()  # the read commits "mine 2" first (reads wait for this writer's queue)
    assert [(e.seq, e.text) for e in state.events] == [(1, "mine 1"), (2, "theirs 1"), (3, "mine 2")]
    assert ext.rewinds == 1 and ext.seen == ["theirs 1"]
    assert [(e.seq, e.text) for e in mine.load("s").events] == [(1, "mine 1"), (2, "theirs 1"), (3, "mine 2")]
    say(state, "mine 3")
    mine.flush()
    assert [e.seq for e in mine.load("s").events] == [1, 2, 3, 4]


async def test_a_session_manager_reads_the_merged_log(two_writers: tuple[Store, Store]) -> None:
    mine, theirs = two_writers
    sm = SessionManager("chat", store=mine, system_prompt="Be brief.")
    await sm.user_says("question from worker A")
    await sm.flush()
    other = await SessionManager.load("chat", store=theirs)
    await other.ai_responds(
        "answer from worker B", model="gpt-4o-mini", usage={"input_tokens": 9, "output_tokens": 4}
    )
    await other.flush()
    messages = await sm.get_messages_for_llm()
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question from worker A"},
        {"role": "assistant", "content": "answer from worker B"},
    ]
    stats = await sm.get_stats()
    assert (stats.total_messages, stats.input_tokens, stats.output_tokens) == (2, 9, 4)


class FlakySQLite(SQLiteBackend):
    """A real SQLite file behind a link that is down while ``down`` is set."""

    down = False

    def _check_up(self) -> None:
        if self.down:
            raise StorageError("load", self.kind, self.location, "link down", retryable=True)

    def read_since(self, session_id: str, after_seq: int) -> Any:
        self._check_up()
        return super().read_since(session_id, after_seq)

    def last_seq(self, session_id: str) -> int:
        self._check_up()
        return super().last_seq(session_id)

    def write(self, ops: Any) -> Any:
        self._check_up()
        return super().write(ops)


def test_a_session_opened_during_an_outage_reads_the_whole_stored_log_when_it_can(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = Store(SQLiteBackend(path))
    say(registry_for(first).open("s"), "stored before")
    first.close()
    backend = FlakySQLite(path)
    backend.down = True
    store = Store(backend)
    state = registry_for(store).open("s")  # not refused: queued like any write
    assert not state.confirmed and state.events == []
    say(state, "during the outage")
    assert state.follow() is False  # still down: the view stays as it is
    backend.down = False
    store.flush()  # the writer's retry lands the open-or-create and the append
    assert state.follow() is True and state.confirmed
    assert [(e.seq, e.text) for e in state.events] == [(1, "stored before"), (2, "during the outage")]
    assert [e.text for e in store.load("s").events] == ["stored before", "during the outage"]
    assert store.stats.dropped_events == 0
    store.close()
