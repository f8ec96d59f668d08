"""Several real processes appending to one session at once lose nothing and duplicate
nothing, and each writer's events keep their order: by ``SessionManager``, by wrapped
clients (the real ``openai`` SDK, HTTP layer mocked), and by ``sessionware run``."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from many_writers_support import WRITER, Writers, check_log, stored, texts_by_writer

from sessionware.core.session.enums import EventType
from sessionware.core.store import open_store

# Each test starts four or more fresh interpreters.
pytestmark = pytest.mark.slow

STORES = [pytest.param("sqlite", id="sqlite"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.mark.parametrize("kind", STORES)
def test_session_managers_in_four_processes_lose_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, session = store_url(kind, tmp_path, request), f"shared-{uuid.uuid4().hex[:8]}"
    writers = Writers(tmp_path)
    try:
        for name in ("a", "b", "c", "d"):
            writers.writer("manager", url, session, name, 100, "--batch", "10")
        writers.release()
        reports = writers.results()
    finally:
        writers.kill_all()
    events = stored(url, session)
    check_log(events)
    assert texts_by_writer(events) == {name: list(range(100)) for name in "abcd"}
    for report in reports.values():
        assert (report["dropped_events"], report["duplicates"], report["lost_sessions"]) == (0, 0, [])
    # The last writer to read took in everything the others appended (it follows the store).
    assert max(r["seen"] for r in reports.values()) == 400


@pytest.mark.parametrize("kind", STORES)
def test_wrapped_clients_in_four_processes_record_every_call(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, session = store_url(kind, tmp_path, request), f"wrapped-{uuid.uuid4().hex[:8]}"
    writers = Writers(tmp_path)
    try:
        for name in ("a", "b", "c", "d"):
            writers.writer("wrapped", url, session, name, 25)
        writers.release()
        reports = writers.results()
    finally:
        writers.kill_all()
    events = stored(url, session)
    check_log(events)
    assert texts_by_writer(events) == {name: list(range(25)) for name in "abcd"}
    answers = [e for e in events if e.role is not None and e.role.value == "assistant"]
    assert len(answers) == 100 and sum(1 for e in events if e.usage is not None) == 100
    assert all(r["dropped_events"] == 0 and r["lost_sessions"] == [] for r in reports.values())


def _run(
    tmp_path: Path, url: str, name: str, count: int, *options: str, text: str | None = None
) -> list[str]:
    """``sessionware run`` of the app of ``writer_process.py`` (it never imports sessionware)."""
    app = [sys.executable, str(WRITER), "app", name, str(count), "--go", str(tmp_path / "go")]
    return [sys.executable, "-m", "sessionware", "run", "--store", url, *options, "--", *app] + (
        ["--text", text] if text else []
    )


@pytest.mark.parametrize("kind", STORES)
def test_sessionware_run_in_four_processes_records_all_200_calls(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, session = store_url(kind, tmp_path, request), f"nightly-{uuid.uuid4().hex[:8]}"
    writers = Writers(tmp_path)
    try:
        for name in ("a", "b", "c", "d"):
            writers.spawn(name, _run(tmp_path, url, name, 50, "--session", session))
        writers.release()
        writers.results()
    finally:
        writers.kill_all()
    events = stored(url, session)
    check_log(events)
    assert texts_by_writer(events) == {name: list(range(50)) for name in "abcd"}
    messages = [e for e in events if e.type is EventType.MESSAGE]
    assert len(messages) == 400
    assert sum(1 for e in events if e.usage is not None) == 200


def test_sessionware_run_with_colliding_automatic_sessions_records_all_200_calls(tmp_path: Path) -> None:
    """The same input in every process: call i of each lands in the same automatic session."""
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    writers = Writers(tmp_path)
    try:
        for name in ("a", "b", "c", "d"):
            writers.spawn(name, _run(tmp_path, url, name, 50, text="same"))
        writers.release()
        writers.results()
    finally:
        writers.kill_all()
    store = open_store(url)
    try:
        infos = store.list_sessions()
        for info in infos:
            check_log(store.load(info.id).events)
        assert len(infos) == 50
        assert sum(info.totals.llm_calls for info in infos) == 200
    finally:
        store.close()
