"""Helpers of the memory tests: API-shape checkers and generated conversation turns."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from anthropic.types import MessageParam, TextBlockParam
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ToolCall
from sessionware.core.session.state import SessionState

_CHAT = TypeAdapter(list[ChatCompletionMessageParam])
_ANTHROPIC = TypeAdapter(list[MessageParam])
_SYSTEM = TypeAdapter(list[TextBlockParam])


def check_openai(messages: Sequence[dict[str, Any]]) -> None:
    """Fail unless the OpenAI chat API would accept ``messages`` (shapes and tool pairing)."""
    _CHAT.validate_python(list(messages))
    waiting: list[str] = []
    for index, msg in enumerate(messages):
        if msg["role"] == "tool":
            assert msg["tool_call_id"] in waiting, f"message {index}: tool result without its call"
            waiting.remove(msg["tool_call_id"])
            continue
        assert not waiting, f"message {index}: tool calls {waiting} left unanswered"
        if msg["role"] == "assistant":
            waiting = [c["id"] for c in msg.get("tool_calls") or []]
    assert not waiting, f"tool calls {waiting} left unanswered at the end"


def check_anthropic(messages: Sequence[dict[str, Any]], system: Sequence[dict[str, Any]] | None) -> None:
    """Fail unless the Anthropic Messages API would accept ``system`` and ``messages``."""
    _ANTHROPIC.validate_python(list(messages))
    if system:
        _SYSTEM.validate_python(list(system))
    assert messages and messages[0]["role"] == "user", "the first message must be from the user"
    for a, b in zip(messages, messages[1:], strict=False):
        assert a["role"] != b["role"], "roles must alternate"
    for index, msg in enumerate(messages):
        blocks = msg["content"] if isinstance(msg["content"], list) else []
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        if uses:
            nxt = messages[index + 1]["content"] if index + 1 < len(messages) else []
            results = [
                b["tool_use_id"] for b in nxt if isinstance(b, dict) and b.get("type") == "tool_result"
            ]
            assert sorted(results) == sorted(uses), f"message {index}: tool_use without its results"
            kinds = [b.get("type") for b in nxt]
            assert kinds[: len(results)] == ["tool_result"] * len(results), "tool results must come first"


def context_text(messages: Sequence[dict[str, Any]], system: Sequence[dict[str, Any]] | None = None) -> str:
    """Everything the model reads, as one string."""
    return json.dumps([system or [], list(messages)], ensure_ascii=False)


Converse = Callable[..., SessionState]


def add_turn(state: SessionState, i: int, *, tool: bool = False, fact: str | None = None) -> None:
    text = fact or f"Turn {i}: tell me something about subject {i}, please, with details."
    state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=text)
    if tool:
        call = ToolCall(id=f"call_{i}", name="lookup", arguments=json.dumps({"q": f"subject {i}"}))
        state.record(
            EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=None, tool_calls=(call,)
        )
        state.record(
            EventType.MESSAGE,
            EventSource.TOOL,
            role=Role.TOOL,
            tool_call_id=f"call_{i}",
            content=f"lookup result for subject {i}: " + "data " * 40,
        )
    state.record(
        EventType.MESSAGE,
        EventSource.LLM,
        role=Role.ASSISTANT,
        content=f"Answer {i}: subject {i} is interesting because of reasons {i}.",
    )
