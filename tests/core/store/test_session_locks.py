"""Per-session locks across processes (``Store.exclusive``, ``core.store.locks``).

Each shared backend is tested with two clients in this process (as two stores of one
app would be) and with a holder in another process (a second worker), including one
killed while it holds the lock.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from store_support import BackendKind

from sessionware.core.store import MemoryBackend, SessionStore, Store
from sessionware.core.store.postgres import PostgresBackend
from sessionware.core.store.redis import RedisBackend
from sessionware.core.store.sqlite import SQLiteBackend

SHARED = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]

# Builds the same backend in another process from a description, holds a session until
# its stdin closes (or until it is killed), and says when it holds it.
_HOLDER = """
import json, sys
from sessionware.core.store import Store
from sessionware.core.store.postgres import PostgresBackend
from sessionware.core.store.redis import RedisBackend
from sessionware.core.store.sqlite import SQLiteBackend

spec = json.loads(sys.argv[1])
if spec["kind"] == "sqlite":
    backend = SQLiteBackend(spec["path"])
elif spec["kind"] == "redis":
    backend = RedisBackend(spec["url"], prefix=spec["prefix"])
else:
    backend = PostgresBackend(spec["url"])
store = Store(backend)
with store.exclusive(spec["session"], timeout=10) as held:
    print("held" if held else "not held", flush=True)
    sys.stdin.read()
store.close()
"""


def describe(backend: SessionStore, session: str) -> str:
    if isinstance(backend, SQLiteBackend):
        return json.dumps({"kind": "sqlite", "path": str(backend.path), "session": session})
    if isinstance(backend, RedisBackend):
        return json.dumps({"kind": "redis", "url": backend.url, "prefix": backend.prefix, "session": session})
    assert isinstance(backend, PostgresBackend)
    return json.dumps({"kind": "postgresql", "url": backend.url, "session": session})


@contextmanager
def holder_process(backend: SessionStore, session: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, describe(backend, session)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture(params=SHARED)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendKind]:
    kind = BackendKind(request.param, request, tmp_path)
    yield kind
    kind.close()


def test_a_session_held_by_another_process_is_waited_for_and_others_are_free(shared: BackendKind) -> None:
    store = Store(shared.client())
    try:
        with holder_process(store.backend, "s1") as holder:
            with store.exclusive("s1", timeout=0.2) as held:
                assert not held  # the other process has it
            with store.exclusive("s2", timeout=0.2) as held:
                assert held  # another session of the same store is free
            assert holder.stdin is not None

            def release_soon() -> None:
                time.sleep(0.3)
                assert holder.stdin is not None
                holder.stdin.close()

            releaser = threading.Thread(target=release_soon)
            releaser.start()
            started = time.monotonic()
            with store.exclusive("s1", timeout=20) as held:
                waited = time.monotonic() - started
                assert held
            releaser.join()
            assert waited >= 0.2  # it waited for the release, not for nothing
    finally:
        store.close()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def test_a_holder_killed_while_holding_frees_the_session(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    made = BackendKind(kind, request, tmp_path)
    store = Store(made.client())
    try:
        with holder_process(store.backend, "s1") as holder:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            with store.exclusive("s1", timeout=10) as held:
                assert held  # the kernel (SQLite) or the server (PostgreSQL) let it go
    finally:
        store.close()
        made.close()


@pytest.mark.redis
def test_a_redis_holder_that_died_keeps_the_session_only_for_its_lease(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    made = BackendKind("redis", request, tmp_path)
    backend = made.client()
    assert isinstance(backend, RedisBackend)
    store = Store(backend)
    try:
        with holder_process(backend, "s1") as holder:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            with store.exclusive("s1", timeout=0.1) as held:
                assert not held  # nobody released it: the lease still runs
            ttl = backend._client.pttl(backend._k("lock", "s1"))  # noqa: SLF001 (the lease itself)
            assert 0 < ttl <= 15_000
    finally:
        store.close()
        made.close()


def test_two_stores_of_one_process_exclude_each_other(shared: BackendKind) -> None:
    first, second = Store(shared.client()), Store(shared.client())
    try:
        with first.exclusive("s1") as held:
            assert held
            with second.exclusive("s1", timeout=0.2) as also:
                assert not also
        with second.exclusive("s1", timeout=1) as held:
            assert held
    finally:
        first.close()
        second.close()


def test_a_store_only_this_process_sees_is_never_locked() -> None:
    store = Store(MemoryBackend())
    with store.exclusive("s1") as held:
        assert not held


def test_an_unreachable_store_records_unlocked_without_raising(tmp_path: Path) -> None:
    # A Redis that is not there: the lock cannot be taken, the block still runs.
    backend = RedisBackend("redis://127.0.0.1:1/0")
    store = Store(backend)
    ran = False
    with store.exclusive("s1", timeout=0.2) as held:
        ran = True
        assert not held
    assert ran
    store.close()
