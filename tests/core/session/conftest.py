"""Fixtures for the session tests: a store per backend kind and an OpenAI message-list checker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from sessionware.core.store import MemoryBackend, Store
from sessionware.core.store.sqlite import SQLiteBackend

_CHAT = TypeAdapter(list[ChatCompletionMessageParam])


def check_chat(messages: Sequence[dict[str, Any]]) -> None:
    """Fail unless ``messages`` is a list the OpenAI chat API accepts.

    Shapes are checked against the SDK's own request types; the ordering rules the API
    enforces (each assistant tool call answered by ``tool`` messages right after it, no
    tool message without its call) are checked here.
    """
    _CHAT.validate_python(list(messages))
    waiting: list[str] = []
    for index, msg in enumerate(messages):
        role = msg["role"]
        if role == "tool":
            assert msg["tool_call_id"] in waiting, f"message {index}: tool result without its call"
            waiting.remove(msg["tool_call_id"])
            continue
        assert not waiting, f"message {index}: tool calls {waiting} left unanswered"
        if role == "system":
            assert index == 0, "a system message only comes first"
        if role == "assistant":
            calls = msg.get("tool_calls") or []
            assert msg.get("content") is not None or calls, f"message {index}: empty assistant message"
            waiting = [c["id"] for c in calls]
            assert len(set(waiting)) == len(waiting), "duplicate tool call ids"
    assert not waiting, f"tool calls {waiting} left unanswered at the end"


@pytest.fixture
def assert_valid_chat() -> Callable[[Sequence[dict[str, Any]]], None]:
    return check_chat


@pytest.fixture(params=["memory", "sqlite"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = Store(MemoryBackend()) if request.param == "memory" else Store(SQLiteBackend(tmp_path / "s.db"))
    yield store
    store.close()


@pytest.fixture
def reopen() -> Iterator[Callable[[Store], Store]]:
    """A fresh ``Store`` on the same data (a new process would see this); memory stays itself."""
    opened: list[Store] = []

    def again(store: Store) -> Store:
        if store.kind == "memory":
            return store
        store.close()
        fresh = Store(SQLiteBackend(store.location))
        opened.append(fresh)
        return fresh

    yield again
    for store in opened:
        store.close()
