"""Shared fixtures: real stores on disk, a real redis-server and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import PostgresMissing, PostgresServer

from sessionware.adapters.engine.guard import STRICT_ENV
from sessionware.core.store import MemoryBackend, Store
from sessionware.core.store.sqlite import SQLiteBackend


def pytest_configure(config: pytest.Config) -> None:
    # Strict mode, the explicit switch: a bookkeeping failure of ours raises in the test
    # that caused it instead of being logged and counted as in production.
    os.environ[STRICT_ENV] = "1"


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values()
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order ``make test`` hands to its xdist workers (``--dist loadscope
    --no-loadscope-reorder``: a test module is one unit of work, taken in this order).

    A module stays on one worker, so a module-scoped LiteLLM proxy or server starts once per
    run, not once per worker that happens to receive one of its tests. Modules with slow
    tests come first, those with a module-scoped fixture (a proxy: a minute or more) first
    of all, then the rest in collection order: the long units start while every worker is
    busy, and the run ends on short modules that even the workers out instead of one worker
    finishing a proxy test alone. The sort is stable: within a module, pytest's order stays.
    """
    rank: dict[str, tuple[bool, bool]] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        slow, shared = rank.get(module, (False, False))
        slow = slow or item.get_closest_marker("slow") is not None
        rank[module] = (slow, shared or _uses_a_module_fixture(item))
    items.sort(key=lambda item: tuple(not flag for flag in rank[item.nodeid.split("::", 1)[0]]))


@pytest.fixture
def memory_store() -> Iterator[Store]:
    store = Store(MemoryBackend())
    yield store
    store.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
def sqlite_store(sqlite_path: Path) -> Iterator[Store]:
    store = Store(SQLiteBackend(sqlite_path))
    yield store
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port, for the whole test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("SESSIONWARE_REQUIRE_REDIS"):
            pytest.fail("redis-server is required (SESSIONWARE_REQUIRE_REDIS is set) but not installed")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on a free port, for the whole test session (see postgres_server.py)."""
    try:
        server = PostgresServer.start()
    except PostgresMissing as exc:
        if os.environ.get("SESSIONWARE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (SESSIONWARE_REQUIRE_POSTGRES is set): {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of the session's PostgreSQL database (tests isolate themselves by schema)."""
    return postgres_server.url
