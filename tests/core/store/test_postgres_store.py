"""What only the PostgreSQL store has: URLs, versioned migrations, outages of a real server.

The store contract itself (ordering at commit, idempotent appends, typed errors...) runs
on PostgreSQL with every other backend in ``test_store_contract.py``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from postgres_server import PostgresServer

from sessionware.core.errors import InvalidSessionOperation, StorageError
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store import AppendEvents, CreateSession, Store, open_store
from sessionware.core.store.postgres import PostgresBackend
from sessionware.core.store.postgres_schema import SCHEMA_VERSION

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(session_id: str, n: int, **fields: Any) -> SessionEvent:
    values: dict[str, Any] = {
        "type": EventType.MESSAGE,
        "source": EventSource.USER,
        "role": Role.USER,
        "content": f"message {n}",
        **fields,
    }
    return SessionEvent(
        id=uuid.uuid4().hex, session_id=session_id, seq=1, timestamp=T0 + timedelta(seconds=n), **values
    )


def info(session_id: str) -> SessionInfo:
    return SessionInfo(id=session_id, created_at=T0, updated_at=T0)


@pytest.fixture
def schema_url(postgres_url: str) -> str:
    return f"{postgres_url}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def opened() -> Iterator[Callable[[str], PostgresBackend]]:
    made: list[PostgresBackend] = []

    def open_(url: str) -> PostgresBackend:
        backend = PostgresBackend(url, connect_timeout=2.0)
        made.append(backend)
        return backend

    yield open_
    for backend in made:
        backend.close()


def test_a_store_url_opens_the_postgresql_backend(schema_url: str) -> None:
    store = open_store(schema_url)
    try:
        assert store.kind == "postgresql"
        store.submit([CreateSession(info("by-url"))])
        store.flush()
        assert store.exists("by-url")
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@127.0.0.1:notaport/db",
        "postgresql://user@127.0.0.1/db?schema=Robert'); DROP TABLE students;--",
        "postgresql://user@127.0.0.1/db?schema=",
    ],
)
def test_a_malformed_url_is_refused_with_a_typed_error_naming_it(url: str) -> None:
    with pytest.raises(InvalidSessionOperation) as refused:
        PostgresBackend(url)
    assert "postgresql://user@127.0.0.1" in str(refused.value)


def test_a_password_never_appears_in_the_location_or_errors() -> None:
    backend = PostgresBackend("postgresql://ana:s3cret@127.0.0.1:1/db", connect_timeout=1.0)
    assert "s3cret" not in backend.location
    with pytest.raises(StorageError) as failed:
        backend.exists("x")
    assert failed.value.retryable
    assert "s3cret" not in str(failed.value)


def test_opening_creates_the_schema_and_records_its_version(
    schema_url: str, postgres_url: str, opened: Callable[[str], PostgresBackend]
) -> None:
    backend = opened(schema_url)
    backend.write([CreateSession(info("s"))])
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute(
            f"SELECT value FROM {backend.schema}.meta WHERE key = 'schema_version'"
        ).fetchone()
    assert version == (str(SCHEMA_VERSION),)


def test_many_processes_opening_a_new_database_at_once_migrate_it_once(
    schema_url: str, opened: Callable[[str], PostgresBackend]
) -> None:
    backends = [opened(schema_url) for _ in range(6)]
    errors: list[BaseException] = []

    def first_use(backend: PostgresBackend) -> None:
        try:
            backend.exists("nothing")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_database_from_a_newer_sessionware_is_refused(
    schema_url: str, postgres_url: str, opened: Callable[[str], PostgresBackend]
) -> None:
    backend = opened(schema_url)
    backend.exists("x")  # migrated
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {backend.schema}.meta SET value = %s WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    with pytest.raises(StorageError) as refused:
        opened(schema_url).exists("x")
    assert "newer sessionware" in str(refused.value)
    assert not refused.value.retryable


def test_text_postgresql_cannot_hold_is_stored_as_sent(
    schema_url: str, opened: Callable[[str], PostgresBackend]
) -> None:
    backend = opened(schema_url)
    backend.write([CreateSession(info("nul"))])
    sent = event("nul", 1, content="before\x00after \U0001f600", metadata={"k\x00": "v\x00"})
    backend.write([AppendEvents("nul", (sent,))])
    stored = backend.load_events("nul")[0]
    assert stored.content == "before\x00after \U0001f600"
    assert stored.metadata == {"k\x00": "v\x00"}


def test_a_server_outage_loses_nothing_the_app_recorded(
    postgres_server: PostgresServer, schema_url: str
) -> None:
    store = Store(PostgresBackend(schema_url, connect_timeout=1.0))
    try:
        store.submit([CreateSession(info("outage"))])
        store.submit([AppendEvents("outage", (event("outage", 0),))])
        store.flush()
        postgres_server.kill()
        try:
            for n in range(1, 21):  # recorded while the server is down: queued, not raised
                store.submit([AppendEvents("outage", (event("outage", n),))])
        finally:
            postgres_server.restart()
        store.flush(timeout=60)
        stored = store.load_events("outage", 0)
    finally:
        store.close()
    assert [e.content for e in stored] == [f"message {n}" for n in range(21)]
    assert [e.seq for e in stored] == list(range(1, 22))
