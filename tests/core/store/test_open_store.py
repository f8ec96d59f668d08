"""Choosing a store: by URL, by path, by instance; and the injected store is the one written to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionware import (
    InvalidSessionOperation,
    SessionManager,
    StorageError,
    configure,
    open_store,
    track_conversation,
)
from sessionware.core.defaults import default_store
from sessionware.core.session.registry import registry_for
from sessionware.core.store import MemoryBackend, Store
from sessionware.core.store.sqlite import SQLiteBackend


@pytest.fixture
def restore_default_store() -> Iterator[None]:
    yield
    configure(store="memory://")


def test_memory_urls_and_none_give_a_new_in_memory_store_each_time() -> None:
    a, b, c = open_store("memory://"), open_store(None), open_store("memory://")
    assert a.kind == b.kind == c.kind == "memory"
    assert a is not c


def test_sqlite_urls_follow_the_three_slash_convention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///data/rel.db")
    assert relative.kind == "sqlite" and relative.location == str(tmp_path / "data" / "rel.db")
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")  # sqlite:////tmp/... for an absolute path
    assert absolute.location == str(tmp_path / "abs.db")
    relative.close()
    absolute.close()


@pytest.mark.parametrize("name", ["plain.db", "plain.sqlite", "plain.sqlite3"])
def test_a_path_or_a_bare_file_name_means_sqlite(tmp_path: Path, name: str) -> None:
    by_path = open_store(tmp_path / name)
    by_text = open_store(str(tmp_path / name))
    assert by_path.kind == "sqlite"
    assert by_text is by_path  # one Store (one writer) per file while it is alive
    by_path.close()


def test_the_same_file_opened_twice_shares_one_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = open_store("sqlite:///same.db")
    assert open_store(f"sqlite:///{tmp_path}/same.db") is first
    first.close()
    reopened = open_store("sqlite:///same.db")
    assert reopened is not first and not reopened.closed
    reopened.close()


@pytest.mark.redis
def test_a_redis_url_opens_the_redis_backend(redis_url: str) -> None:
    store = open_store(redis_url)
    assert store.kind == "redis" and store.location == redis_url
    assert open_store(redis_url) is store
    store.close()


def test_a_store_or_backend_instance_is_used_as_given(tmp_path: Path) -> None:
    store = Store(MemoryBackend())
    assert open_store(store) is store
    backend = SQLiteBackend(tmp_path / "given.db")
    wrapped = open_store(backend)
    assert wrapped.backend is backend
    wrapped.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://relative.db", "sqlite:///path/to/file.db"),
        ("sqlite:///", "sqlite:///path/to/file.db"),
        ("ftp://host/x", "unknown store 'ftp'"),
        ("mysql://db", "use memory://, sqlite:///path.db, redis://host:port/db or postgresql://user@host/db"),
    ],
)
def test_a_bad_url_is_refused_with_the_accepted_forms(url: str, message: str) -> None:
    with pytest.raises(InvalidSessionOperation, match=message.replace(".", r"\.").replace("/", "/")):
        open_store(url)


async def test_the_injected_store_receives_every_write(tmp_path: Path) -> None:
    injected = Store(SQLiteBackend(tmp_path / "injected.db"))
    sm = SessionManager(store=injected, system_prompt="Be brief.")
    await sm.user_says("hello")
    await sm.ai_responds("hi", model="gpt-4o-mini")
    child = await sm.create_child()
    await child.user_says("in the child")
    exchange = await track_conversation("q", "a", store=injected)
    await sm.flush()
    for session_id, count in ((sm.session_id, 2), (child.session_id, 1), (exchange.session_id, 2)):
        assert (await injected.aload(session_id)).last_seq == count
        assert not await default_store().aexists(session_id)
    listed = {i.id for i in await SessionManager.list_sessions(store=injected)}
    assert listed == {sm.session_id, child.session_id, exchange.session_id}
    injected.close()


async def test_configure_replaces_the_default_store(tmp_path: Path, restore_default_store: None) -> None:
    configured = configure(store=tmp_path / "default.db")
    assert default_store() is configured and configured.kind == "sqlite"
    sm = SessionManager()
    await sm.user_says("to the configured default")
    await sm.flush()
    assert (await configured.aload(sm.session_id)).last_seq == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:notaport/0", "malformed Redis URL 'redis://127.0.0.1:notaport/0'"),
        ("redis://127.0.0.1:6379/zero", "the database must be a number"),
        (
            "redis://:hunter2@127.0.0.1:notaport/0",
            "malformed Redis URL 'redis://:\\*\\*\\*@127.0.0.1:notaport/0'",
        ),
        ("mysql://db.example/sessions", "unknown store 'mysql' in 'mysql://db.example/sessions'"),
        ("unix://", "a unix:// URL needs the socket's path"),
        ("sqlite:/relative.db", "SQLite URLs look like"),
        ("sqlite:///bad\x00name.db", "cannot hold a NUL"),
    ],
    ids=["port", "database", "password-masked", "scheme", "unix-no-path", "sqlite-form", "nul"],
)
def test_a_malformed_store_url_is_a_typed_error_naming_it(url: str, message: str) -> None:
    with pytest.raises(InvalidSessionOperation, match=message) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)


def test_a_sqlite_path_that_cannot_hold_a_database_is_a_storage_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    with pytest.raises(StorageError, match="is a folder") as caught:
        open_store(f"sqlite:///{folder}")
    assert caught.value.location == str(folder)
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(StorageError, match="is not a folder"):
        open_store(f"sqlite:///{regular}/below.db")


def test_a_file_that_is_not_a_sqlite_database_is_refused_at_open(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my notes, not a database\n")
    with pytest.raises(StorageError, match="file is not a database") as caught:
        open_store(f"sqlite:///{notes}")
    assert caught.value.location == str(notes)
    assert notes.read_text() == "my notes, not a database\n"  # left as it was
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file becomes a database
    store = open_store(empty)
    store.close()


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "a" * 257, "line\nbreak", "tab\there", "nul\x00", "lone \ud800", 42, None],
    ids=["empty", "blank", "too-long", "newline", "tab", "nul", "surrogate", "int", "none-explicit"],
)
async def test_session_ids_are_checked_at_every_door(bad: object) -> None:
    import sessionware

    if bad is None:
        bad = b"bytes"
    with pytest.raises(InvalidSessionOperation, match="session id"):
        SessionManager(bad, store="memory://")  # type: ignore[arg-type]
    with pytest.raises(InvalidSessionOperation, match="session id"):
        sessionware.session(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidSessionOperation, match="session id"):
        await registry_for(open_store("memory://")).aopen(bad)  # type: ignore[arg-type]
    ok = "ticket-42 · ünïcode ✓" + "x" * 200
    assert SessionManager(ok, store="memory://").session_id == ok


def test_former_sync_names_still_work_for_a_release_and_say_so(tmp_path: Path) -> None:
    store = open_store(tmp_path / "old-names.db")
    registry = registry_for(store)
    with pytest.warns(DeprecationWarning, match="use SessionRegistry.open"):
        registry.open_sync("s")
    with pytest.warns(DeprecationWarning, match=r"use Store\.flush \(async twins carry the 'a' prefix"):
        store.flush_sync()
    with pytest.warns(DeprecationWarning, match=r"use Store\.load"):
        assert store.load_sync("s").id == "s"
    with pytest.warns(DeprecationWarning, match=r"use Store\.exists"):
        assert store.exists_sync("s")
    with pytest.warns(DeprecationWarning, match=r"use Store\.list_sessions"):
        assert [i.id for i in store.list_sessions_sync()] == ["s"]
    with pytest.warns(DeprecationWarning, match=r"use Store\.call"):
        assert store.call_sync(store.backend.exists, "s")
    store.close()
