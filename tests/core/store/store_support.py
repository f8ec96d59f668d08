"""Clients of one backend's data, for the store tests (see ``conftest.py``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sessionware.core.store import MemoryBackend, SessionStore
from sessionware.core.store.postgres import PostgresBackend
from sessionware.core.store.redis import RedisBackend
from sessionware.core.store.sqlite import SQLiteBackend

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


class BackendKind:
    """Clients of one backend's data: each ``client()`` is what another process would open."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.kind = kind
        self._opened: list[SessionStore] = []
        self._memory = MemoryBackend()
        self._path = tmp_path / "contract.db"
        # A fresh key prefix per test keeps tests independent on the shared server.
        self._prefix = f"test-{uuid.uuid4().hex[:12]}"
        self._redis_url: str | None = request.getfixturevalue("redis_url") if kind == "redis" else None
        # A fresh PostgreSQL schema per test, likewise (created by the first client's migration).
        self._postgres_url: str | None = (
            f"{request.getfixturevalue('postgres_url')}?schema=t_{uuid.uuid4().hex[:12]}"
            if kind == "postgresql"
            else None
        )

    def client(self) -> SessionStore:
        made: SessionStore
        if self.kind == "memory":
            return self._memory  # one process: every writer shares the object
        if self.kind == "sqlite":
            made = SQLiteBackend(self._path)
        elif self.kind == "postgresql":
            assert self._postgres_url is not None
            made = PostgresBackend(self._postgres_url)
        else:
            assert self._redis_url is not None
            made = RedisBackend(self._redis_url, prefix=self._prefix)
        self._opened.append(made)
        return made

    def close(self) -> None:
        for made in self._opened:
            made.close()
