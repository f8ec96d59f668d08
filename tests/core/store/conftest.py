"""Every backend behind the same fixtures, so one contract test runs on all of them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store import MemoryBackend, Store, StoreBackend
from sessionware.core.store.postgres import PostgresBackend
from sessionware.core.store.redis import RedisBackend
from sessionware.core.store.sqlite import SQLiteBackend

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "sqlite":
        return SQLiteBackend(tmp_path / "contract.db")
    if kind == "postgresql":
        # A fresh PostgreSQL schema per test (created by the backend's migration on first use).
        return PostgresBackend(f"{request.getfixturevalue('postgres_url')}?schema=t_{uuid.uuid4().hex[:12]}")
    url: str = request.getfixturevalue("redis_url")
    # A fresh key prefix per test keeps tests independent on the shared server.
    return RedisBackend(url, prefix=f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    made = make_backend(request.param, request, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = Store(make_backend(request.param, request, tmp_path))
    yield made
    made.close()


def _info(session_id: str, *, minutes: int = 0, **fields: Any) -> SessionInfo:
    when = T0 + timedelta(minutes=minutes)
    return SessionInfo(id=session_id, created_at=when, updated_at=when, **fields)


def _event(session_id: str, seq: int, **fields: Any) -> SessionEvent:
    defaults: dict[str, Any] = {
        "type": EventType.MESSAGE,
        "source": EventSource.USER,
        "role": Role.USER,
        "content": f"message {seq}",
    }
    return SessionEvent(
        id=uuid.uuid4().hex,
        session_id=session_id,
        seq=seq,
        timestamp=T0 + timedelta(seconds=seq),
        **{**defaults, **fields},
    )


@pytest.fixture
def info() -> Callable[..., SessionInfo]:
    """``info(id, minutes=0, **fields)``: a session header created ``minutes`` after T0."""
    return _info


@pytest.fixture
def event() -> Callable[..., SessionEvent]:
    """``event(session_id, seq, **fields)``: a user message event unless fields say otherwise."""
    return _event
