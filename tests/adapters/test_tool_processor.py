"""``sessionware.wrap(tool_processor)``: every execution of a real chuk ``ToolProcessor`` is a
``TOOL_CALL`` event of the current session, linked by the provider's call id."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from adapter_support import make_openai
from pydantic import BaseModel

import sessionware
from sessionware.adapters.api import is_wrapped
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store
from sessionware.core.tools.engine import load_engine

chuk = pytest.importorskip("chuk_tool_processor")
load_engine()  # imported as sessionware does it: without its side effects on the test process
from chuk_tool_processor import InProcessStrategy, ToolCall, ToolProcessor, create_registry  # noqa: E402
from chuk_tool_processor.execution.wrappers.retry import RetryConfig  # noqa: E402
from chuk_tool_processor.models.streaming_tool import StreamingTool  # noqa: E402
from chuk_tool_processor.models.tool_result import ToolResult as EngineResult  # noqa: E402


class Add:
    """Add two numbers."""

    async def execute(self, a: float, b: float) -> float:
        return a + b


class Divide:
    async def execute(self, a: float, b: float) -> float:
        return a / b


class Flaky:
    """Fails with a dropped connection on its first call, then answers."""

    runs = 0

    async def execute(self) -> str:
        Flaky.runs += 1
        if Flaky.runs == 1:
            raise ConnectionError("connection reset")
        return "ok"


async def processor(**options: Any) -> ToolProcessor:
    registry = create_registry()
    for name, tool in (("add", Add()), ("divide", Divide()), ("flaky", Flaky())):
        await registry.register_tool(tool, name=name)
    options.setdefault("enable_retries", False)
    return ToolProcessor(registry=registry, **options)


def tool_calls(*calls: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls
        ],
    }


def tool_events(handle: Any) -> list[Any]:
    return [e for e in handle.events() if e.type is EventType.TOOL_CALL]


async def test_wrap_returns_the_processor_and_logs_each_call_with_the_providers_id(store: Store) -> None:
    p = await processor()
    assert sessionware.wrap(p, store=store) is p and is_wrapped(p)

    with sessionware.session("agent") as handle:
        results = await p.process(
            tool_calls(("call_1", "add", {"a": 1, "b": 2}), ("call_2", "divide", {"a": 1, "b": 0}))
        )

    assert sorted((r.call_id, r.result) for r in results) == [("call_1", 3), ("call_2", None)]
    add, divide = tool_events(handle)
    assert (add.tool_call_id, add.tool_name, add.tool_arguments, add.tool_result) == (
        "call_1",
        "add",
        {"a": 1, "b": 2},
        3,
    )
    assert add.error is None and add.latency_ms is not None and add.latency_ms > 0
    assert add.metadata == {"tool_status": "success", "attempts": 1, "cached": False}
    assert divide.error is not None and divide.error.message == "division by zero"
    assert divide.metadata["tool_status"] == "error"
    # The assistant message that asked is part of the log, so it stays a valid conversation.
    messages = handle.messages()
    assert [m["role"] for m in messages] == ["assistant", "tool", "tool"]
    assert [c["id"] for c in messages[0]["tool_calls"]] == ["call_1", "call_2"]
    stats = handle.stats()
    assert (stats.tool_calls, stats.errors) == (2, 1)


async def test_execute_text_calls_and_the_strategy_path_are_each_logged_once(store: Store) -> None:
    p = sessionware.wrap(await processor(), store=store)
    with sessionware.session("agent") as handle:
        await p.execute([ToolCall(id="c1", tool="add", arguments={"a": 2, "b": 2})])
        await p.process('<tool name="add" args=\'{"a": 5, "b": 3}\'/>')
        await p.process(tool_calls(("c3", "add", {"a": 1, "b": 1})), return_order="submission")
    events = tool_events(handle)
    assert [e.tool_result for e in events] == [4, 8, 2]
    assert [e.tool_call_id for e in events][::2] == ["c1", "c3"]


async def test_retries_of_the_engine_are_logged_as_attempts(store: Store) -> None:
    Flaky.runs = 0
    p = sessionware.wrap(
        await processor(
            enable_retries=True, retry_config=RetryConfig(max_retries=2, base_delay=0, jitter=False)
        ),
        store=store,
    )
    with sessionware.session("agent") as handle:
        [result] = await p.process(tool_calls(("call_f", "flaky", {})))
    assert result.result == "ok"
    [event] = tool_events(handle)
    assert event.metadata["attempts"] == 2 and event.tool_result == "ok"


async def test_tools_run_after_a_wrapped_model_call_land_in_its_session_without_duplicates(
    openai_api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)
    p = sessionware.wrap(await processor(), store=store)
    openai_api.push(Reply(tool_calls=[("add", {"a": 20, "b": 22})]), Reply(text="It is 42."))
    history: list[dict[str, Any]] = [{"role": "user", "content": "What is 20 + 22?"}]

    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=history)
    message = reply.choices[0].message.model_dump(exclude_none=True)
    history.append(message)
    for result in await p.process(message):
        # The app renders results its own way: not the text sessionware would write.
        history.append({"role": "tool", "tool_call_id": result.call_id, "content": f"result={result.result}"})
    await client.chat.completions.create(model="gpt-4o-mini", messages=history)

    handle = sessionware.current_session()
    assert handle is not None
    events = handle.events()
    assert not any(e.type is EventType.BRANCH for e in events)
    conversation = [(e.type, e.role) for e in events if e.type in (EventType.MESSAGE, EventType.TOOL_CALL)]
    assert conversation == [
        (EventType.MESSAGE, Role.USER),
        (EventType.MESSAGE, Role.ASSISTANT),
        (EventType.TOOL_CALL, Role.TOOL),
        (EventType.MESSAGE, Role.ASSISTANT),
    ]
    assert handle.stats().tool_calls == 1 and handle.stats().llm_calls == 2


async def test_unwrap_stops_the_logging(store: Store) -> None:
    p = sessionware.wrap(await processor(), store=store)
    with sessionware.session("agent") as handle:
        await p.process(tool_calls(("c1", "add", {"a": 1, "b": 1})))
        assert sessionware.unwrap(p) is p and not is_wrapped(p)
        await p.process(tool_calls(("c2", "add", {"a": 1, "b": 1})))
    assert [e.tool_call_id for e in tool_events(handle)] == ["c1"]


async def test_a_tool_failure_is_not_logged_as_an_engine_error(
    store: Store, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    p = sessionware.wrap(await processor(), store=store)
    with caplog.at_level(logging.INFO), sessionware.session("agent"):
        await p.process(tool_calls(("c1", "divide", {"a": 1, "b": 0})))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("chuk")]
    assert '"level": "ERROR"' not in capsys.readouterr().err  # the engine's JSON handler is gone


def test_a_tool_processor_is_only_observed(store: Store) -> None:
    p = ToolProcessor(registry=create_registry())
    with pytest.raises(sessionware.InvalidSessionOperation, match="only observed"):
        sessionware.wrap(p, mode="managed")


async def test_an_initialized_processor_wrapped_later_and_rewrapped_logs_once(store: Store) -> None:
    p = await processor()
    await p.initialize()
    sessionware.wrap(p, store=store, session_id="first")
    sessionware.wrap(p, store=store, session_id="second")  # only the settings change
    await p.process(tool_calls(("c1", "add", {"a": 1, "b": 1})))
    store.barrier.settle()
    store.flush()
    assert [i.id for i in store.list_sessions()] == ["second"]
    events = store.load("second").events
    assert [e.tool_call_id for e in events if e.type is EventType.TOOL_CALL] == ["c1"]


async def test_without_a_scope_or_an_earlier_call_the_processor_has_a_session_of_its_own(
    store: Store,
) -> None:
    import contextvars

    async def alone() -> None:
        p = sessionware.wrap(await processor(), store=store)
        await p.process(tool_calls(("c1", "add", {"a": 2, "b": 2})))
        await p.process(tool_calls(("c2", "add", {"a": 3, "b": 3})))

    await contextvars.Context().run(asyncio.ensure_future, alone())  # a context with no last call
    store.barrier.settle()
    store.flush()
    [info] = store.list_sessions()
    assert info.id.startswith("tools-") and info.totals.tool_calls == 2


async def test_unwrapping_before_the_first_call_leaves_the_processor_as_it_was(store: Store) -> None:
    p = sessionware.wrap(await processor(), store=store)
    sessionware.unwrap(p)
    assert "initialize" not in p.__dict__
    with sessionware.session("agent") as handle:
        await p.process(tool_calls(("c1", "add", {"a": 1, "b": 1})))
    assert tool_events(handle) == []


async def test_a_runner_over_a_wrapped_processor_logs_each_call_once(store: Store) -> None:
    from sessionware import SessionManager
    from sessionware.core.tools import ToolRunner

    p = sessionware.wrap(await processor(), store=store)
    runner = ToolRunner(processor=p)
    sm = SessionManager(store=store, session_id="agent")
    with sessionware.session("agent") as handle:
        done = await runner.run(sm, tool_calls(("c1", "add", {"a": 1, "b": 2})))
        # Without a session the runner logs nothing: the wrapped processor's own logging stays.
        await runner.run(None, tool_calls(("c2", "add", {"a": 2, "b": 2})))
    assert done.openai_messages() == [{"role": "tool", "tool_call_id": "c1", "content": "3"}]
    assert [e.tool_call_id for e in tool_events(handle)] == ["c1", "c2"]
    assert handle.stats().tool_calls == 2


class Countdown(StreamingTool):
    """Yields ``start``, ``start - 1``... down to 1 (a streaming tool: one result per item)."""

    class Arguments(BaseModel):
        start: int

    async def _stream_execute(self, start: int) -> AsyncIterator[int]:
        if start > 10:
            yield start
            raise ValueError("too far to count down")
        for value in range(start, 0, -1):
            await asyncio.sleep(0)
            yield value


class InOrder(InProcessStrategy):
    """Streams the calls one after the other, a streaming tool item by item (the engine's own
    ``InProcessStrategy.stream_run`` of 0.26.1 fails once two results wait in its queue)."""

    async def stream_run(
        self, calls: list[Any], timeout: float | None = None, on_tool_start: Any = None
    ) -> AsyncIterator[Any]:
        for call in calls:
            tool = await self.registry.get_tool(call.tool)
            if getattr(tool, "supports_streaming", False):
                try:
                    async for item in tool().stream_execute(**call.arguments):
                        yield EngineResult(call_id=call.id, tool=call.tool, result=item)
                except ValueError as exc:  # as the engine's strategies report a stream's failure
                    yield EngineResult(call_id=call.id, tool=call.tool, error=f"Streaming error: {exc}")
            else:
                for result in await self.run([call], timeout):
                    yield result


async def streaming_processor() -> ToolProcessor:
    registry = create_registry()
    await registry.register_tool(Countdown, name="countdown")
    await registry.register_tool(Add(), name="add")
    return ToolProcessor(
        registry=registry, strategy=InOrder(registry), enable_retries=False, enable_caching=False
    )


async def test_a_streamed_run_logs_each_call_once_with_its_items(store: Store) -> None:
    p = sessionware.wrap(await streaming_processor(), store=store)
    await p.initialize()
    calls = [
        ToolCall(id="c1", tool="countdown", arguments={"start": 3}),
        ToolCall(id="c2", tool="add", arguments={"a": 1, "b": 2}),
    ]
    with sessionware.session("agent") as handle:
        # The strategy's stream, reached through processor.executor as before the wrap.
        streamed = [r.result async for r in p.executor.stream_run(calls)]
    assert streamed == [3, 2, 1, 3]
    events = tool_events(handle)
    assert [(e.tool_call_id, e.tool_result) for e in events] == [("c1", [3, 2, 1]), ("c2", 3)]
    assert all(e.metadata["tool_status"] == "success" for e in events)
    await p.close()


async def test_a_stream_left_early_logs_what_came_by_then(store: Store) -> None:
    p = sessionware.wrap(await streaming_processor(), store=store)
    await p.initialize()
    calls = [
        ToolCall(id="c1", tool="countdown", arguments={"start": 5}),
        ToolCall(id="c2", tool="add", arguments={"a": 1, "b": 2}),
    ]
    with sessionware.session("agent") as handle:
        stream = p.strategy.stream_run(calls)
        assert (await anext(stream)).result == 5
        assert (await anext(stream)).result == 4
        await stream.aclose()
    # The call that had started streaming is logged with its items so far; the one that
    # never ran is not logged at all.
    assert [(e.tool_call_id, e.tool_result) for e in tool_events(handle)] == [("c1", [5, 4])]
    await p.close()


async def test_a_stream_that_fails_midway_is_logged_as_a_failed_call(store: Store) -> None:
    p = sessionware.wrap(await streaming_processor(), store=store)
    await p.initialize()
    with sessionware.session("agent") as handle:
        stream = p.strategy.stream_run([ToolCall(id="c1", tool="countdown", arguments={"start": 99})])
        assert [r.error is None async for r in stream] == [True, False]
    [event] = tool_events(handle)
    assert event.error is not None and "too far to count down" in event.error.message
    assert event.metadata["tool_status"] == "error" and handle.stats().errors == 1
    await p.close()
