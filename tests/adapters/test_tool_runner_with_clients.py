"""A ``ToolRunner`` beside a wrapped client: the session the client records into is the one
the runner logs into, given as ``sessionware.current_session()``."""

from __future__ import annotations

from typing import Any

import pytest
from adapter_support import make_openai

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.session.enums import EventType
from sessionware.core.store import Store
from sessionware.core.tools import ToolRegistry, ToolRunner, ToolStatus

# The runner executes on chuk-tool-processor (the tools extra; absent in the newest-SDK environment).
pytest.importorskip("chuk_tool_processor", reason="the tools extra is not installed")


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    return tools


async def test_the_runner_logs_into_the_wrapped_clients_session(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)
    runner = ToolRunner(registry())
    openai_api.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply(text="5"))
    history: list[dict[str, Any]] = [{"role": "user", "content": "2 + 3?"}]

    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=history)
    handle = sessionware.current_session()
    assert handle is not None
    done = await runner.run(handle, reply)
    history += [reply.choices[0].message.model_dump(exclude_none=True), *done.messages()]
    await client.chat.completions.create(model="gpt-4o-mini", messages=history)

    assert [r.status for r in done.results] == [ToolStatus.SUCCESS]
    kinds = [(e.type, e.role.value if e.role else None) for e in handle.events()]
    assert kinds == [
        (EventType.MESSAGE, "user"),
        (EventType.MESSAGE, "assistant"),  # the client's, not a second one from the runner
        (EventType.TOOL_CALL, "tool"),
        (EventType.MESSAGE, "assistant"),
    ]
    stats = handle.stats()
    assert (stats.llm_calls, stats.tool_calls) == (2, 1)
    assert (await runner.memory(handle)).stats().total_calls == 1


async def test_anything_else_is_refused_with_what_is_accepted() -> None:
    with pytest.raises(sessionware.InvalidSessionOperation, match="current_session"):
        await ToolRunner(registry()).run("not-a-session", {"role": "assistant", "tool_calls": []})
