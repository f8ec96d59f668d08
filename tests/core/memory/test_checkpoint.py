"""A process meeting a long stored session starts from the memory checkpoint another
process wrote, folds only the events after it, and builds exactly the context a warm
process (or a full replay) builds. A checkpoint that is damaged, stale, of another log,
format or policy, or written by two processes at once never changes what is built: the
log is replayed instead."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from memory_support import add_turn, context_text

from sessionware.core.memory import abuild, build, checkpoint
from sessionware.core.memory.search_state import LazyMap
from sessionware.core.memory.transcript import Turn
from sessionware.core.memory.vm import CHECKPOINT_PAGE, VirtualMemory
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store import Store
from sessionware.core.store.base import PutPages
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"
TURNS = 160
BUDGET = 2000


@pytest.fixture
def indexed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Page ids folded into turns: a replay folds every page, a restore only later ones."""
    added: list[str] = []
    real = Turn.add

    def counted(self: Turn, event: Any, page_id: str) -> None:
        added.append(page_id)
        real(self, event, page_id)

    monkeypatch.setattr(Turn, "add", counted)
    return added


class Process:
    """A process of its own on the SQLite file: its own store, registry and memory."""

    def __init__(self, path: Path, session_id: str = "long") -> None:
        self.store = Store(SQLiteBackend(path))
        self.state: SessionState = registry_for(self.store).open(session_id)

    def build(self, budget: int = BUDGET, **kwargs: Any) -> str:
        return context_text(build(self.state, model=MODEL, budget=budget, **kwargs).messages)

    def close(self) -> None:
        self.store.flush()
        self.store.close()


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    """A stored session of ``TURNS`` turns, built once (which writes its checkpoint)."""
    db = tmp_path / "checkpoint.db"
    writer = Process(db)
    for i in range(TURNS):
        add_turn(writer.state, i, tool=i % 10 == 3)
    writer.build()
    writer.close()
    yield db


def _replayed(path: Path, monkeypatch: pytest.MonkeyPatch, turns: range = range(0), **kwargs: Any) -> str:
    """The context a process builds without any checkpoint (the reference), on a copy of
    the file (what it records stays there)."""
    copy = path.with_name(f"reference-{path.name}")
    for part in path.parent.glob(f"{path.name}*"):
        shutil.copy(part, copy.with_name(part.name.replace(path.name, copy.name)))
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "MIN_EVENTS", 10**9)
        reader = Process(copy)
        for i in turns:
            add_turn(reader.state, i)
        text = reader.build(**kwargs)
        reader.close()
    for part in path.parent.glob(f"{copy.name}*"):
        part.unlink()
    return text


def _stored_checkpoint(path: Path) -> str:
    store = Store(SQLiteBackend(path))
    raw = store.load_pages("long")[CHECKPOINT_PAGE]
    store.close()
    return raw


def _replace_checkpoint(path: Path, raw: str, session_id: str = "long") -> None:
    store = Store(SQLiteBackend(path))
    store.submit([PutPages(session_id, {CHECKPOINT_PAGE: raw})])
    store.close()


def test_a_fresh_process_restores_the_checkpoint_and_builds_the_warm_context(
    tmp_path: Path, indexed: list[str]
) -> None:
    db = tmp_path / "warm.db"
    writer = Process(db)
    for i in range(TURNS):
        add_turn(writer.state, i, tool=i % 10 == 3)
    writer.build()
    add_turn(writer.state, TURNS)
    warm = writer.build()
    writer.close()
    indexed.clear()
    fresh = Process(db)
    assert fresh.build() == warm
    assert len(indexed) < 10  # the turns after the checkpoint, not the whole log
    for i in range(TURNS + 1, TURNS + 40):  # later compactions go on as a warm process's do
        add_turn(fresh.state, i, tool=i % 10 == 3)
        fresh.build()
    later = fresh.build()
    fresh.close()
    replay = Process(db)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(checkpoint, "MIN_EVENTS", 10**9)
        assert replay.build() == later
    replay.store.close()


async def test_async_builds_restore_it_too(
    path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _replayed(path, monkeypatch)
    indexed.clear()
    fresh = Process(path)
    built = await abuild(fresh.state, model=MODEL, budget=BUDGET)
    assert context_text(built.messages) == reference
    assert indexed == []
    fresh.store.close()


def test_the_catch_up_folds_only_the_events_after_it(
    path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _replayed(path, monkeypatch, range(TURNS, TURNS + 5))
    indexed.clear()
    fresh = Process(path)
    for i in range(TURNS, TURNS + 5):
        add_turn(fresh.state, i)
    assert fresh.build() == reference
    assert len(indexed) == 10
    fresh.store.close()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="cut"),
        pytest.param(
            lambda raw: raw.replace('"tokens"', '"tokenz"', 1).replace("msg_7", "msg_8", 1), id="edited"
        ),
        pytest.param(lambda raw: "not json\n{}", id="garbage"),
        pytest.param(
            lambda raw: raw.replace(f'"format": {checkpoint.FORMAT}', '"format": 99', 1), id="other-format"
        ),
        pytest.param(lambda raw: raw.replace('"version": "', '"version": "0.0.0-', 1), id="other-version"),
    ],
)
def test_a_damaged_or_foreign_checkpoint_is_replayed_instead(
    path: Path,
    indexed: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: Any,
) -> None:
    reference = _replayed(path, monkeypatch)
    _replace_checkpoint(path, damage(_stored_checkpoint(path)))
    indexed.clear()
    fresh = Process(path)
    with caplog.at_level(logging.WARNING, logger="sessionware.core.memory.checkpoint"):
        assert fresh.build() == reference
    assert len(indexed) > TURNS  # replayed
    assert "checkpoint is unusable" in caplog.text
    fresh.store.close()


def test_a_checkpoint_of_another_log_is_replayed_instead(
    tmp_path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer's events ordered otherwise, or another session's checkpoint under
    this session's key: same sizes, other identity."""
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    for db, offset in ((first, 0), (second, 1000)):
        writer = Process(db)
        for i in range(TURNS):
            add_turn(writer.state, i + offset)
        writer.build()
        writer.close()
    _replace_checkpoint(second, _stored_checkpoint(first))
    reference = _replayed(second, monkeypatch)
    indexed.clear()
    fresh = Process(second)
    assert fresh.build() == reference
    assert len(indexed) > TURNS
    fresh.store.close()


def test_a_stale_checkpoint_is_caught_up_from_where_it_stops(
    path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older checkpoint overwriting a newer one (two writers): a longer catch-up."""
    old = _stored_checkpoint(path)
    writer = Process(path)
    for i in range(TURNS, TURNS + 200):
        add_turn(writer.state, i)
    writer.build()
    writer.close()
    assert _stored_checkpoint(path) != old
    _replace_checkpoint(path, old)
    reference = _replayed(path, monkeypatch)
    indexed.clear()
    fresh = Process(path)
    assert fresh.build() == reference
    assert len(indexed) == 400
    fresh.store.close()


def test_another_policy_restores_the_pages_and_replays_only_its_plan(
    path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionware.core.memory import ContextPolicy

    policy = ContextPolicy(summary_ratio=0.3)
    reference = _replayed(path, monkeypatch, policy=policy)
    indexed.clear()
    fresh = Process(path)
    assert fresh.build(policy=policy) == reference
    assert indexed == []
    fresh.store.close()


@pytest.mark.slow
def test_two_writers_of_one_session_never_make_a_wrong_context(
    path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes append to the session and write checkpoints in turn; a third
    process builds what a replay of the stored log builds."""
    one, two = Process(path), Process(path)
    for i in range(TURNS, TURNS + 300, 2):
        one.state.follow()
        add_turn(one.state, i)
        one.build()
        two.state.follow()
        add_turn(two.state, i + 1)
        two.build()
    one.close()
    two.close()
    reference = _replayed(path, monkeypatch)
    third = Process(path)
    assert third.build() == reference
    third.store.close()


def test_pins_made_in_a_process_keep_its_memory_out_of_checkpoints(path: Path) -> None:
    before = _stored_checkpoint(path)
    writer = Process(path)
    writer.build()
    vm = VirtualMemory.of(writer.state)
    assert vm is not None
    vm.pin("msg_3")
    for i in range(TURNS, TURNS + 200):
        add_turn(writer.state, i)
    writer.build()
    writer.close()
    assert _stored_checkpoint(path) == before


def test_short_sessions_neither_read_nor_write_one(tmp_path: Path) -> None:
    writer = Process(tmp_path / "short.db")
    for i in range(20):
        add_turn(writer.state, i)
    writer.build()
    writer.close()
    store = Store(SQLiteBackend(tmp_path / "short.db"))
    assert CHECKPOINT_PAGE not in store.load_pages("long")
    store.close()


def test_search_after_a_restore_finds_what_a_replay_finds(
    path: Path, indexed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index comes with the checkpoint (its rows read when first used), not folded again."""

    def hits(process: Process) -> list[tuple[str, float]]:
        vm = VirtualMemory.of(process.state)
        assert vm is not None
        return [(h.page_id, h.score) for h in vm.index.search("subject 13 lookup reasons", limit=8)]

    with monkeypatch.context() as m:
        m.setattr(checkpoint, "MIN_EVENTS", 10**9)
        replay = Process(path)
        replay.build()
        expected = hits(replay)
        replay.store.close()
    indexed.clear()
    fresh = Process(path)
    fresh.build()
    assert indexed == []
    assert hits(fresh) == expected and expected
    fresh.store.close()


def test_the_damage_cases_change_the_checkpoint(path: Path) -> None:
    """The damaged variants above really differ from the stored checkpoint."""
    raw = _stored_checkpoint(path)
    assert f'"format": {checkpoint.FORMAT}' in raw and '"version": "' in raw and '"tokens"' in raw


def test_the_checkpoint_is_made_by_the_stores_writer_not_in_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = checkpoint.snapshot

    def snapshot(*args: Any, **kwargs: Any) -> checkpoint.Snapshot | None:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "snapshot", snapshot)
    writer = Process(tmp_path / "writer.db")
    for i in range(TURNS):
        add_turn(writer.state, i)
    writer.build()
    writer.close()
    assert threads and threading.get_ident() not in threads
    store = Store(SQLiteBackend(tmp_path / "writer.db"))
    assert CHECKPOINT_PAGE in store.load_pages("long")
    store.close()


@pytest.mark.parametrize("restored", [False, True], ids=["replayed", "restored"])
def test_a_snapshot_writes_the_same_text_after_the_memory_moved_on(path: Path, restored: bool) -> None:
    """What a checkpoint's text is made of is copied under the memory's lock; the text
    itself is made without it, while builds fold more events (new pages, terms, postings
    and index rows parsed from a restored checkpoint's text) and must not change it."""
    process = Process(path)
    if not restored:
        process.store.submit([PutPages("long", {CHECKPOINT_PAGE: "unusable"})])
        process.store.flush()
        process = Process(path)
    process.build()
    vm = VirtualMemory.of(process.state)
    assert vm is not None and isinstance(vm.index.columns().docs, LazyMap) == restored
    with vm.lock:
        taken = checkpoint.snapshot(vm)
    assert taken is not None
    before = taken.text()
    for i in range(TURNS, TURNS + 12):
        add_turn(process.state, i, tool=i % 4 == 0)
        process.build()
    vm.index.search("item tool result weather")
    assert taken.text() == before
    with vm.lock:
        assert checkpoint.dump(vm) != before
    process.close()


def test_a_build_does_not_wait_while_the_writer_makes_the_checkpoints_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, go_on, built = threading.Event(), threading.Event(), threading.Event()
    real = checkpoint.Snapshot.text

    def slow_text(self: checkpoint.Snapshot) -> str:
        writing.set()
        go_on.wait(30)
        return real(self)

    monkeypatch.setattr(checkpoint.Snapshot, "text", slow_text)
    writer = Process(tmp_path / "writer.db")
    for i in range(TURNS):
        add_turn(writer.state, i)
    warm = writer.build()
    assert writing.wait(30)  # the store's writer thread is making the text now

    def build_again() -> None:
        writer.build()
        built.set()

    thread = threading.Thread(target=build_again)
    thread.start()
    try:
        assert built.wait(30)
    finally:
        go_on.set()
        thread.join(30)
    writer.close()
    fresh = Process(tmp_path / "writer.db")
    assert fresh.build() == warm
    vm = VirtualMemory.of(fresh.state)
    assert vm is not None and vm.marks.covered > 0
    fresh.close()
