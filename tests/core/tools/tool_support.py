"""Real tools (they compute, sleep, fail, count their calls) and message builders for the tool tests."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from openai.types.chat import ChatCompletionMessageParam
from pydantic import Field, TypeAdapter

from sessionware.core.tools import ToolRegistry

_CHAT = TypeAdapter(list[ChatCompletionMessageParam])


@dataclass
class Calls:
    """How often each tool actually ran (to prove what ran and what did not)."""

    counts: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def hit(self, name: str, **arguments: Any) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.seen.append((name, arguments))

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)


class CityNotFound(LookupError):
    pass


def build_registry(calls: Calls) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        calls.hit("add", a=a, b=b)
        return a + b

    @registry.tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        calls.hit("multiply", a=a, b=b)
        return a * b

    @registry.tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        calls.hit("divide", a=a, b=b)
        return a / b

    @registry.tool
    async def sqrt(x: Annotated[float, Field(ge=0, description="a non-negative number")]) -> float:
        """Square root, computed asynchronously."""
        calls.hit("sqrt", x=x)
        await asyncio.sleep(0)
        return math.sqrt(x)

    @registry.tool
    def weather(city: str, unit: str = "C") -> dict[str, Any]:
        """Current weather of a city.

        Args:
            city: the city's English name
            unit: C or F
        """
        calls.hit("weather", city=city, unit=unit)
        temps = {"Paris": 21.5, "Oslo": 9.0}
        if city not in temps:
            raise CityNotFound(f"unknown city {city!r}")
        t = temps[city]
        return {"city": city, "temp": t if unit == "C" else t * 9 / 5 + 32, "unit": unit}

    @registry.tool(timeout=0.05)
    async def slow(seconds: float) -> str:
        """Sleep, then answer (times out past 0.05 s)."""
        calls.hit("slow", seconds=seconds)
        await asyncio.sleep(seconds)
        return "done"

    @registry.tool
    def note(text: str) -> str:
        """Save a note."""
        calls.hit("note", text=text)
        return "saved"

    return registry


def openai_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def openai_reply(*calls: tuple[str, str, dict[str, Any] | str], content: str | None = None) -> dict[str, Any]:
    """An assistant message as OpenAI returns it, asking for ``calls`` (id, name, arguments)."""
    return {"role": "assistant", "content": content, "tool_calls": [openai_call(*c) for c in calls]}


def anthropic_reply(*calls: tuple[str, str, dict[str, Any]], text: str | None = None) -> dict[str, Any]:
    """An Anthropic ``Message`` body asking for ``calls`` as ``tool_use`` blocks."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 10},
    }


def check_chat(messages: Sequence[dict[str, Any]]) -> None:
    """Fail unless the OpenAI chat API would accept ``messages``: the SDK's request types,
    and every assistant tool call answered right after it, no result without its call."""
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
