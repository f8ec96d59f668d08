"""SQLite on real files: appends only, write-behind and sync durability, damaged and locked
files, retries, exit without flush, and use from plain threads without an event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionware import InvalidSessionOperation, SessionManager, StorageError
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store, open_store
from sessionware.core.store.sqlite import SQLiteBackend


def rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Read the file with a connection of its own, as another process would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def event_count(path: Path, session_id: str) -> int:
    return int(rows(path, "SELECT count(*) FROM events WHERE session_id = ?", session_id)[0][0])


@pytest.fixture
def lock_holder(sqlite_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection that can hold the file's write lock."""
    conn = sqlite3.connect(sqlite_path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


async def test_recording_appends_rows_and_never_rewrites_an_event(sqlite_path: Path) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    sm = SessionManager(store=store)
    await sm.user_says("first")
    await sm.flush()
    # Any UPDATE or DELETE of an event row from now on aborts the write.
    rows(sqlite_path, "SELECT 1")
    conn = sqlite3.connect(sqlite_path)
    conn.executescript(
        """
        CREATE TRIGGER events_are_append_only BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'event row rewritten'); END;
        CREATE TRIGGER events_are_never_deleted BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'event row deleted'); END;
        """
    )
    conn.close()
    header_sizes = []
    for turn in range(200):
        await sm.user_says(f"question {turn}")
        await sm.ai_responds(f"answer {turn}", model="gpt-4o-mini")
        if turn in (9, 199):
            await sm.flush()  # raises if any write was refused by the triggers
            header_sizes.append(
                rows(
                    sqlite_path,
                    "SELECT length(header) + length(totals) FROM sessions WHERE id = ?",
                    sm.session_id,
                )[0][0]
            )
    await sm.flush()
    assert event_count(sqlite_path, sm.session_id) == 401
    assert store.stats.dropped_ops == 0 and store.stats.write_errors == 0
    # The session row holds a header and totals, not the conversation: it does not grow with it.
    assert header_sizes[1] <= header_sizes[0] + 64
    store.close()


async def test_write_behind_lands_by_flush_and_another_connection_sees_it(sqlite_path: Path) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    sm = SessionManager(store=store)
    for i in range(20):
        await sm.user_says(f"m{i}")
    await sm.flush()
    assert event_count(sqlite_path, sm.session_id) == 20
    assert [r[0] for r in rows(sqlite_path, "SELECT seq FROM events ORDER BY seq")] == list(range(1, 21))
    store.close()


async def test_sync_durability_persists_before_each_call_returns(sqlite_path: Path) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    sm = SessionManager(store=store, durability="sync")
    await sm.user_says("one")
    assert event_count(sqlite_path, sm.session_id) == 1
    await sm.ai_responds("two", model="gpt-4o-mini")
    assert event_count(sqlite_path, sm.session_id) == 2
    await sm.tool_used("calc", {"x": 1}, 2)
    assert event_count(sqlite_path, sm.session_id) == 3
    store.close()


async def test_a_corrupt_file_gives_a_storage_error_naming_the_path_and_is_left_alone(
    sqlite_path: Path,
) -> None:
    garbage = b"this is not a database, " * 200
    sqlite_path.write_bytes(garbage)
    with pytest.raises(StorageError, match="file is not a database") as refused:
        open_store(sqlite_path)  # refused at the door
    assert refused.value.location == str(sqlite_path) and not refused.value.retryable
    store = Store(SQLiteBackend(sqlite_path))  # a backend built by hand: refused at first use
    with pytest.raises(StorageError) as caught:
        await SessionManager.load("any", store=store)
    assert caught.value.location == str(sqlite_path)
    assert str(sqlite_path) in str(caught.value)
    assert not caught.value.retryable
    with pytest.raises(StorageError, match=str(sqlite_path)):
        await SessionManager(store=store).user_says("hello")
    assert sqlite_path.read_bytes() == garbage
    store.close()


async def test_a_locked_file_buffers_writes_reports_the_path_and_lands_them_later(
    sqlite_path: Path, lock_holder: sqlite3.Connection
) -> None:
    store = Store(SQLiteBackend(sqlite_path, busy_timeout=0.05))
    sm = SessionManager(store=store)
    await sm.user_says("before the lock")
    await sm.flush()

    lock_holder.execute("BEGIN IMMEDIATE")
    # Recording does not wait for the file and does not fail.
    await sm.ai_responds("while locked", model="gpt-4o-mini")
    await sm.user_says("still locked")
    with pytest.raises(StorageError) as caught:
        await sm.flush()
    assert caught.value.retryable
    assert caught.value.location == str(sqlite_path) and str(sqlite_path) in str(caught.value)
    assert "locked" in caught.value.reason
    assert store.stats.pending_ops > 0 and store.stats.dropped_ops == 0
    assert len(await sm.get_conversation()) == 3

    lock_holder.execute("ROLLBACK")
    await sm.flush()
    assert event_count(sqlite_path, sm.session_id) == 3
    assert store.stats.pending_ops == 0
    store.close()


async def test_sync_durability_on_a_locked_file_raises_and_still_keeps_the_event(
    sqlite_path: Path, lock_holder: sqlite3.Connection
) -> None:
    store = Store(SQLiteBackend(sqlite_path, busy_timeout=0.05))
    sm = SessionManager(store=store, durability="sync")
    await sm.user_says("before")
    lock_holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StorageError, match="locked"):
        await sm.user_says("during")
    lock_holder.execute("ROLLBACK")
    await sm.flush()
    assert [r[0] for r in rows(sqlite_path, "SELECT seq FROM events ORDER BY seq")] == [1, 2]
    store.close()


@pytest.mark.slow
def test_a_process_that_exits_normally_without_flushing_loses_no_event(tmp_path: Path) -> None:
    path = tmp_path / "exit.db"
    script = textwrap.dedent(
        f"""
        import asyncio
        from sessionware import SessionManager

        async def main():
            sm = SessionManager("exiting", store={str(path)!r})
            for i in range(300):
                await sm.user_says(f"question {{i}}")
                await sm.ai_responds(f"answer {{i}}", model="gpt-4o-mini")
            # no flush, no close: the interpreter's exit must persist everything

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert event_count(path, "exiting") == 600
    store = Store(SQLiteBackend(path))
    loaded = store.load("exiting")
    assert loaded.last_seq == 600 and loaded.totals.messages_by_role[Role.ASSISTANT] == 300
    store.close()


def test_sync_code_records_from_threads_without_an_event_loop(sqlite_path: Path) -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    store = open_store(f"sqlite:///{sqlite_path}")
    state = registry_for(store).open("threads")

    def record(worker: int) -> None:
        for i in range(250):
            state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=f"{worker}:{i}")

    workers = [threading.Thread(target=record, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.flush()
    loaded = Store(SQLiteBackend(sqlite_path)).load("threads")
    assert [e.seq for e in loaded.events] == list(range(1, 1001))
    assert sorted(str(e.content) for e in loaded.events) == sorted(
        f"{w}:{i}" for w in range(4) for i in range(250)
    )
    assert registry_for(store).open("threads") is state
    store.close()


async def test_a_fresh_store_on_the_same_file_reloads_what_another_wrote(sqlite_path: Path) -> None:
    first = Store(SQLiteBackend(sqlite_path))
    sm = await SessionManager.create("shared", store=first, system_prompt="Be brief.")
    await sm.user_says("hi")
    await sm.ai_responds("hello", model="gpt-4o-mini")
    first.close()
    second = Store(SQLiteBackend(sqlite_path))
    again = await SessionManager.load("shared", store=second)
    assert [e.text for e in await again.get_conversation()] == ["hi", "hello"]
    assert again.system_prompt == "Be brief."
    await again.user_says("more")
    await again.flush()
    assert [e.seq for e in (await second.aload("shared")).events][-1] == 3
    second.close()


@pytest.mark.parametrize(
    ("bad", "message", "operation"),
    [
        ("x" * (16 * 1024 * 1024 + 1), "exceeds max_event_bytes", "record"),
        ("lone surrogate \ud800", "message holds a lone surrogate", "user_says"),
        ([{"type": "text", "text": object()}], r"message\[0\]\.text is not JSON-serialisable", "user_says"),
    ],
    ids=["oversized", "surrogate", "unserialisable-part"],
)
async def test_bad_content_is_refused_and_nothing_stored_is_touched(
    sqlite_path: Path, bad: object, message: str, operation: str
) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    sm = SessionManager(store=store)
    await sm.user_says("before")
    await sm.flush()
    snapshot = rows(sqlite_path, "SELECT seq, body FROM events")
    with pytest.raises(InvalidSessionOperation, match=message) as caught:
        await sm.user_says(bad)  # type: ignore[arg-type]
    assert caught.value.operation == operation
    with pytest.raises(InvalidSessionOperation, match=r"metadata\.when is not JSON-serialisable"):
        await sm.user_says("fine text", when=object())
    await sm.user_says("after")
    await sm.flush()
    assert rows(sqlite_path, "SELECT seq, body FROM events")[:1] == snapshot
    assert [r[0] for r in rows(sqlite_path, "SELECT seq FROM events ORDER BY seq")] == [1, 2]
    assert store.stats.dropped_ops == 0
    store.close()


def test_several_events_are_recorded_atomically_in_one_write(sqlite_path: Path) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    state = registry_for(store).open("batch")
    store.flush()
    before = store.stats.submitted_ops
    events = state.record_many(
        [
            (EventType.MESSAGE, EventSource.LLM, {"role": Role.ASSISTANT, "content": None, "metadata": {}}),
            (EventType.TOOL_CALL, EventSource.TOOL, {"role": Role.TOOL, "tool_name": "t", "tool_result": 1}),
        ]
    )
    assert [e.seq for e in events] == [1, 2] and events[0].timestamp == events[1].timestamp
    assert store.stats.submitted_ops == before + 1
    with pytest.raises(InvalidSessionOperation):
        state.record_many(
            [
                (EventType.MESSAGE, EventSource.USER, {"role": Role.USER, "content": "ok"}),
                (
                    EventType.MESSAGE,
                    EventSource.USER,
                    {"role": Role.USER, "content": "x" * (17 * 1024 * 1024)},
                ),
            ]
        )
    store.flush()
    assert [e.seq for e in store.load("batch").events] == [1, 2]  # all or nothing
    store.close()


def test_a_database_of_another_app_is_refused_and_left_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()

    store = Store(SQLiteBackend(foreign))
    with pytest.raises(StorageError) as caught:
        store.list_sessions()
    assert str(foreign) in str(caught.value)
    assert "orders" in caught.value.reason
    assert rows(foreign, "SELECT name FROM sqlite_master WHERE type = 'table'") == [("orders",)]
    store.close()


def test_a_file_written_by_a_newer_schema_is_refused(sqlite_path: Path) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    store.list_sessions()
    store.close()
    conn = sqlite3.connect(sqlite_path)
    conn.execute("UPDATE sessionware_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()

    again = Store(SQLiteBackend(sqlite_path))
    with pytest.raises(StorageError, match="newer sessionware"):
        again.list_sessions()
    again.close()


def test_a_reader_connects_and_reads_while_another_process_holds_the_write_lock(sqlite_path: Path) -> None:
    store = Store(SQLiteBackend(sqlite_path))
    store.list_sessions()  # the file and its schema exist
    store.close()
    writer = sqlite3.connect(sqlite_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as a writer mid-batch, in another process
    try:
        reader = Store(SQLiteBackend(sqlite_path, busy_timeout=0.2))
        assert reader.list_sessions() == []  # no write lock taken to connect
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_batch_of_appends_is_written_as_one_append_per_run_of_one_session(sqlite_path: Path) -> None:
    """The writer hands the backend one batch of per-event appends: consecutive appends to
    one session become one append (one header read and rewrite), in order, and the
    totals still count every event."""
    from sessionware.core.session.models import SessionInfo, trusted_event, utcnow
    from sessionware.core.store.base import AppendEvents, CreateSession, SaveHeader, WriteOp

    backend = SQLiteBackend(sqlite_path)
    backend.write([CreateSession(SessionInfo(id="a")), CreateSession(SessionInfo(id="b"))])
    seqs = {"a": 0, "b": 0}

    def append(session_id: str) -> AppendEvents:
        seqs[session_id] += 1
        fields = {"role": Role.USER, "content": f"{session_id}{seqs[session_id]}"}
        event = trusted_event(
            fields, f"{session_id}-{seqs[session_id]}", session_id, seqs[session_id], utcnow(),
            EventType.MESSAGE, EventSource.USER,
        )  # fmt: skip
        return AppendEvents(session_id, (event,))

    ops: list[WriteOp] = [
        *(append("a"), append("a"), append("b"), append("a")),
        SaveHeader(SessionInfo(id="b")),
        append("b"),
    ]
    header_reads: list[str] = []
    backend._connect().set_trace_callback(
        lambda sql: header_reads.append(sql) if sql.startswith("SELECT last_seq") else None
    )
    backend.write(ops)
    assert len(header_reads) == 4  # a a | b | a | b: the SaveHeader keeps the two b runs apart
    for session_id, count in (("a", 3), ("b", 2)):
        events = backend.load_events(session_id)
        assert [e.content for e in events] == [f"{session_id}{n}" for n in range(1, count + 1)]
        info = backend.load_info(session_id)
        assert info.totals.events == count and info.last_seq == count
    backend.close()


async def test_an_event_is_stored_without_its_default_fields_and_older_full_rows_still_load(
    sqlite_path: Path,
) -> None:
    """Rows leave out fields at their defaults (about half the bytes of a full dump); a row
    holding a full dump, as earlier versions wrote, loads the same."""
    sm = SessionManager(store=f"sqlite:///{sqlite_path}")
    await sm.user_says("hello")
    await sm.flush()
    ((seq, type_, ts, body),) = rows(
        sqlite_path, "SELECT seq, type, ts, body FROM events WHERE session_id = ?", sm.session_id
    )
    assert isinstance(body, str)
    assert (seq, type_) == (1, "message") and isinstance(ts, str) and ts.startswith("20") and ts in body
    assert '"content":"hello"' in body and '"role":"user"' in body
    assert "tool_call_id" not in body and "usage" not in body and "metadata" not in body
    stored = SQLiteBackend(sqlite_path)
    (loaded,) = stored.load_events(sm.session_id)
    full = loaded.model_dump_json()
    assert len(full) > 2 * len(body)
    conn = sqlite3.connect(sqlite_path)
    conn.execute("UPDATE events SET body = ? WHERE session_id = ?", (full, sm.session_id))
    conn.commit()
    conn.close()
    assert stored.load_events(sm.session_id) == [loaded]
    stored.close()
    sm.store.close()


def test_a_sqlite_without_json_functions_is_refused_with_a_clear_error(
    sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes insert a batch through json_each; a SQLite build without JSON functions (all
    builds since 3.38 have them) is refused when the file is opened, naming the path."""
    import sessionware.core.store.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "_JSON_PROBE", "SELECT json_function_this_build_lacks('[]')")
    backend = SQLiteBackend(sqlite_path)
    with pytest.raises(StorageError, match="no JSON functions") as caught:
        backend.exists("any")
    assert str(sqlite_path) in str(caught.value) and not caught.value.retryable


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(sqlite_path: Path) -> None:
    """SQLite forbids using a connection across fork(): the child of a process that had the
    file open (a pre-forking server, multiprocessing's fork) opens its own, and leaves the
    inherited one untouched, so the parent keeps writing to an intact file."""
    import os

    store = open_store(f"sqlite:///{sqlite_path}")
    parent = SessionManager(store=store)
    asyncio.run(parent.user_says("before the fork"))
    store.flush()
    pid = os.fork()
    if pid == 0:  # the child: record in a session of its own, flush, close, leave
        code = 1
        try:
            child = SessionManager(store=store)
            asyncio.run(child.user_says("from the child"))
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    asyncio.run(parent.ai_responds("after the fork", model="gpt-4o-mini"))
    store.flush()
    assert rows(sqlite_path, "PRAGMA integrity_check") == [("ok",)]
    texts = sorted(str(r[0]) for r in rows(sqlite_path, "SELECT json_extract(body, '$.content') FROM events"))
    assert texts == ["after the fork", "before the fork", "from the child"]
    assert store.load(parent.session_id).last_seq == 2
    store.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_fork_during_a_write_waits_for_it_and_the_child_can_write(sqlite_path: Path) -> None:
    """A thread of the parent is inside a write (a transaction open) when another thread
    forks. SQLite's lock bookkeeping is copied into the child, where no thread would ever
    finish that write, so the fork waits for it; the child then writes on a connection of
    its own (without the wait it finds the file locked for good)."""
    import os
    import signal

    from sessionware.core.session.models import SessionInfo
    from sessionware.core.store.base import CreateSession

    backend = SQLiteBackend(sqlite_path)
    backend.write([CreateSession(SessionInfo(id="parent"))])
    inside, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        with backend._tx("write") as conn:  # a write in progress, as on the writer thread
            conn.execute("UPDATE sessions SET header = header WHERE id = 'parent'")
            inside.set()
            release.wait(10)

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert inside.wait(10)
    threading.Timer(0.3, release.set).start()  # the write ends while fork() waits for it
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(20)  # a wedged child dies instead of hanging the test
            backend.write([CreateSession(SessionInfo(id="child"))])
            code = 0 if backend.exists("child") else 2
        except BaseException as exc:
            sys.stderr.write(f"child failed: {exc!r}\n")
        finally:
            os._exit(code)
    writer.join(10)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.exists("child") and backend.exists("parent")
    assert rows(sqlite_path, "PRAGMA integrity_check") == [("ok",)]
    backend.close()
