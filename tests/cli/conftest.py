"""Real SQLite stores recorded through ``SessionManager``, and ways to run the command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessionware import EventSource, EventType, SessionManager, TokenUsage
from sessionware.cli import main
from sessionware.core.session.models import ErrorInfo, SessionEvent, SessionInfo
from sessionware.core.store import AppendEvents, CreateSession, PutPages, open_store

PARENT = "trip-planner"
CHILD = "trip-planner-hotels"


async def _record(url: str) -> None:
    store = open_store(url)
    sm = SessionManager(PARENT, store=store, system_prompt="You plan trips.", metadata={"app": "demo"})
    async with sm.run(task="plan"):
        await sm.user_says("What's the weather in Paris?")
    await sm.ai_responds(
        None,
        model="gpt-4o",
        tool_calls=[{"id": "call_1", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}],
        usage=TokenUsage(input_tokens=1200, output_tokens=20, cache_read_tokens=1000),
        latency_ms=850.0,
        finish_reason="tool_calls",
    )
    await sm.tool_used("weather", {"city": "Paris"}, {"temp_c": 18}, call_id="call_1", latency_ms=12.0)
    await sm.ai_responds(
        "It is 18 °C in Paris.\nPack a jacket.",
        model="gpt-4o",
        usage=TokenUsage(input_tokens=1300, output_tokens=12, cache_read_tokens=1200),
    )
    state = sm.state
    state.record(
        EventType.LLM_CALL,
        EventSource.LLM,
        model="gpt-4o",
        error=ErrorInfo(type="RateLimitError", message="slow down", status_code=429),
        latency_ms=30.0,
    )
    # The app edited its history back to the first assistant turn and asked again.
    state.record(EventType.BRANCH, EventSource.SYSTEM, branch_of=2)
    await sm.user_says("Actually, Lisbon?")
    await sm.tool_used("weather", {"city": "Lisbon"}, None, error=ValueError("no data for Lisbon"))
    state.record(
        EventType.PAGE_FAULT,
        EventSource.LLM,
        tool_name="page_fault",
        tool_arguments={"page_id": "p1"},
        tool_result="Paris was 18 °C",
        hidden=True,
        model="gpt-4o-mini",
        usage=TokenUsage(input_tokens=300, output_tokens=5),
        ttft_ms=40.0,
        app_input_tokens=9000,
    )
    state.record(
        EventType.COMPACTION, EventSource.SYSTEM, content="Summary of turns 1-3", metadata={"evicted": 3}
    )
    await sm.ai_responds(
        "Lisbon: 24 °C.",
        model="claude-3-5-sonnet-20241022",
        provider="anthropic",
        usage=TokenUsage(input_tokens=500, output_tokens=8, cache_write_tokens=400),
    )
    await sm.set_system_prompt("You plan trips in Europe.")
    await sm.user_says(
        [{"type": "text", "text": "And this photo? "}, {"type": "image_url", "image_url": {"url": "x"}}]
    )
    store.submit([PutPages(PARENT, {"p1": '{"text": "Paris was 18 °C"}', "p0": '{"text": "hello"}'})])
    child = await sm.create_child(CHILD)
    await child.user_says("Find a hotel\tnear the station")
    await child.ai_responds(
        "Hotel Lumière", model="mystery-model", usage=TokenUsage(input_tokens=10, output_tokens=2)
    )
    await sm.flush()
    store.close()


@dataclass(frozen=True)
class Recorded:
    """A SQLite file holding the two sessions above."""

    path: Path
    parent: str = PARENT
    child: str = CHILD

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    path = tmp_path / "recorded.db"
    asyncio.run(_record(f"sqlite:///{path}"))
    return Recorded(path)


def _event(session_id: str, seq: int, when: datetime, model: str, tokens_in: int) -> SessionEvent:
    return SessionEvent(
        id=f"{session_id}-{seq}",
        session_id=session_id,
        seq=seq,
        timestamp=when,
        type=EventType.MESSAGE,
        source=EventSource.LLM,
        role="assistant",
        content="ok",
        model=model,
        usage=TokenUsage(input_tokens=tokens_in, output_tokens=1),
    )


@pytest.fixture
def two_days(tmp_path: Path) -> Recorded:
    """One session with calls on 2025-03-01 and 2025-03-02 (written through the store API)."""
    path = tmp_path / "days.db"
    store = open_store(f"sqlite:///{path}")
    day1 = datetime(2025, 3, 1, 23, 59, tzinfo=UTC)
    day2 = datetime(2025, 3, 2, 0, 1, tzinfo=UTC)
    store.submit(
        [
            CreateSession(SessionInfo(id="night", created_at=day1, updated_at=day1)),
            AppendEvents(
                "night",
                (
                    _event("night", 1, day1, "gpt-4o", 100),
                    _event("night", 2, day2, "gpt-4o", 200),
                    _event("night", 3, day2, "gpt-4o-mini", 400),
                ),
            ),
        ]
    )
    store.close()
    return Recorded(path)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``main([...])`` in this process (stdout is captured, so not a terminal)."""
    monkeypatch.delenv("SESSIONWARE_STORE", raising=False)
    monkeypatch.setenv("COLUMNS", "100")  # tables wrap to the terminal width

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SESSIONWARE_STORE"}
    env.update(extra)
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run ``python -m sessionware ...`` as a child process (stdout is a pipe)."""

    def run(
        *args: str, cwd: Path = tmp_path, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sessionware", *args],
            cwd=cwd,
            env=child_env(**env),
            input=input,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )

    yield run
