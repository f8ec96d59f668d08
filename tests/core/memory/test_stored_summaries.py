"""A process opening a stored session reads the summaries earlier processes wrote instead
of compressing the whole evicted history again, and builds the context a warm process
builds; a summary of other words (an edited history) is never taken for the right one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from memory_support import add_turn, context_text

from sessionware.core.memory import abuild, build
from sessionware.core.memory.compression import ExtractiveCompressor
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ToolCall
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"
TURNS = 150


@pytest.fixture
def compressions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the extractive compressor's calls (the work a reused summary saves)."""
    calls: list[int] = []
    real = ExtractiveCompressor.compress

    def counted(self: ExtractiveCompressor, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ExtractiveCompressor, "compress", counted)
    return calls


def _stored(path: Path, session_id: str) -> str:
    """Write a long session as a warm process leaves it; return the context it built."""
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open(session_id)
    for i in range(TURNS):
        add_turn(state, i, tool=i % 10 == 3)
    text = context_text(build(state, model=MODEL, budget=2000).messages)
    store.close()
    return text


def test_a_fresh_process_reuses_the_stored_summaries_and_builds_the_same_context(
    tmp_path: Path, compressions: list[int]
) -> None:
    path = tmp_path / "summaries.db"
    warm = _stored(path, "long")
    written = len(compressions)
    assert written > 3
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open("long")
    fresh = context_text(build(state, model=MODEL, budget=2000).messages)
    assert fresh == warm
    assert len(compressions) == written  # every summary read back, none made again
    add_turn(state, TURNS)
    add_turn(state, TURNS + 1)
    build(state, model=MODEL, budget=2000)  # and later compactions work as before
    store.close()


async def test_async_builds_read_the_stored_summaries_too(tmp_path: Path, compressions: list[int]) -> None:
    path = tmp_path / "async.db"
    warm = _stored(path, "long-async")
    written = len(compressions)
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open("long-async")
    fresh = await abuild(state, model=MODEL, budget=2000)
    assert context_text(fresh.messages) == warm and len(compressions) == written
    store.close()


def test_another_budget_makes_its_own_summaries(tmp_path: Path, compressions: list[int]) -> None:
    path = tmp_path / "budgets.db"
    _stored(path, "budgets")
    written = len(compressions)
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open("budgets")
    build(state, model=MODEL, budget=1500)
    assert len(compressions) > written
    store.close()


def _garden_turn(state: SessionState, i: int, *, tool: bool) -> None:
    """``add_turn`` about gardens: other words, the same tokens message by message."""
    state.record(
        EventType.MESSAGE,
        EventSource.USER,
        role=Role.USER,
        content=f"Turn {i}: tell me something about garden {i}, please, with details.",
    )
    if tool:
        call = ToolCall(id=f"call_{i}", name="lookup", arguments=json.dumps({"q": f"garden {i}"}))
        state.record(
            EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=None, tool_calls=(call,)
        )
        state.record(
            EventType.MESSAGE,
            EventSource.TOOL,
            role=Role.TOOL,
            tool_call_id=f"call_{i}",
            content=f"lookup result for garden {i}: " + "data " * 40,
        )
    state.record(
        EventType.MESSAGE,
        EventSource.LLM,
        role=Role.ASSISTANT,
        content=f"Answer {i}: garden {i} is interesting because of reasons {i}.",
    )


def test_a_summary_of_an_edited_history_is_made_again(tmp_path: Path) -> None:
    path = tmp_path / "edited.db"
    warm = _stored(path, "edited")
    assert "subject 13 is" in warm  # the rolling summary quotes the old turns
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open("edited")
    # The app edits its history after the first turn: as many turns, message by message
    # of the same sizes, saying other things, so the evicted chunks cover the same turns.
    kept = next(e for e in state.events if e.type is EventType.MESSAGE and e.role is Role.ASSISTANT).seq
    state.record(EventType.BRANCH, EventSource.USER, branch_of=kept)
    for i in range(1, TURNS):
        _garden_turn(state, i, tool=i % 10 == 3)
    edited = context_text(build(state, model=MODEL, budget=2000).messages)
    assert "garden 13 is" in edited and "subject 13 is" not in edited
    store.close()
