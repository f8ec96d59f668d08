"""Starting writer processes together and reading what they left in the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sessionware.core.session.models import SessionEvent
from sessionware.core.store import open_store

WRITER = Path(__file__).with_name("writer_process.py")


class Writers:
    """Writer processes of one test, started at once (see ``writer_process.py``)."""

    def __init__(self, tmp_path: Path) -> None:
        self.go = tmp_path / "go"
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(self.go.parent)
        )
        self.procs[name] = proc
        return proc

    def writer(self, mode: str, store: str, session: str, name: str, count: int, *more: str) -> None:
        self.spawn(
            name,
            [
                sys.executable,
                str(WRITER),
                mode,
                store,
                session,
                name,
                str(count),
                "--go",
                str(self.go),
                *more,
            ],
        )

    def release(self, timeout: float = 240.0) -> None:
        """Wait until every writer is ready, then let them all go at once (four fresh
        interpreters importing an SDK under coverage took over 60 s at a load of 15)."""
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            ready = Path(f"{self.go}.ready-{name}")
            while not ready.exists():
                if proc.poll() is not None:
                    raise AssertionError(f"writer {name} ended early: {proc.communicate()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"writer {name} never got ready")
                time.sleep(0.01)
        self.go.write_text("")

    def results(self, timeout: float = 240.0) -> dict[str, dict[str, Any]]:
        """Each writer's JSON report; fails on a non-zero exit or any stderr output."""
        out: dict[str, dict[str, Any]] = {}
        for name, proc in self.procs.items():
            # Read through the pipes' own file objects: a test may have read lines from
            # stdout already, and what those buffered would be lost to ``communicate``.
            assert proc.stdout is not None and proc.stderr is not None
            stdout, stderr = proc.stdout.read(), proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
            proc.wait(timeout=timeout)
            assert proc.returncode == 0, f"writer {name} failed: {stderr}"
            assert stderr == "", f"writer {name} wrote to stderr: {stderr}"
            out[name] = json.loads(stdout.strip().splitlines()[-1])
        return out

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # reaps it and closes its pipes


def stored(url: str, session_id: str) -> list[SessionEvent]:
    store = open_store(url)
    try:
        return store.load(session_id).events
    finally:
        store.close()


def check_log(events: list[SessionEvent]) -> None:
    """Numbered 1..N without a gap, and no event twice."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.id for e in events}) == len(events)


def texts_by_writer(events: list[SessionEvent], prefix_sep: str = " ") -> dict[str, list[int]]:
    """User messages ``NAME i`` grouped by NAME, their ``i`` in stored order."""
    found: dict[str, list[int]] = {}
    for event in events:
        if event.role is not None and event.role.value == "user" and isinstance(event.content, str):
            name, _, index = event.content.rpartition(prefix_sep)
            found.setdefault(name, []).append(int(index))
    return found
