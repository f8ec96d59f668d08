"""Safe by default: files and folders sessionware creates are private to their owner, an
existing file keeps its mode, and the library writes nothing to stderr unless the app
configured logging to say so."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionware import SessionManager
from sessionware.core.store import open_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual umask: new files world-readable unless asked otherwise
    yield
    os.umask(previous)


async def test_a_new_database_and_its_folders_are_private(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "new" / "nested" / "chat.db"
    store = open_store(f"sqlite:///{path}")
    sm = SessionManager(store=store)
    await sm.user_says("a private conversation")
    await sm.flush()
    try:
        assert mode(path) == 0o600
        assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()  # open while the store is
        assert mode(wal) == 0o600 and mode(shm) == 0o600
    finally:
        store.close()


async def test_an_existing_file_and_folder_keep_their_modes(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    path = folder / "team.db"
    path.touch(mode=0o640)  # an empty file is an empty SQLite database
    os.chmod(path, 0o640)
    store = open_store(path)
    sm = SessionManager(store=store)
    await sm.user_says("hello")
    await sm.flush()
    store.close()
    assert mode(path) == 0o640 and mode(folder) == 0o755


QUIET_APP = """
import asyncio, sys
from sessionware import SessionManager, StorageError
from sessionware.core.store import open_store

async def main():
    store = open_store(sys.argv[1])  # nothing listens there: every write fails and is retried
    sm = SessionManager(store=store)
    await sm.user_says("while the store is down")
    try:
        await store.aflush(timeout=3)
    except (StorageError, TimeoutError):
        pass
    print(store.stats.write_errors > 0)

if len(sys.argv) > 2:
    import logging
    logging.basicConfig(level=logging.WARNING)
asyncio.run(main())
"""


@pytest.mark.parametrize("configured", [False, True], ids=["no-logging-config", "app-configured-logging"])
def test_outage_messages_reach_stderr_only_through_the_apps_logging(tmp_path: Path, configured: bool) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    argv = [sys.executable, "-c", QUIET_APP, f"redis://127.0.0.1:{port}/0", *(["log"] if configured else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # the outage did happen
    if configured:
        assert "will retry" in done.stderr  # the app asked for warnings: it gets them
    else:
        assert done.stderr == ""
