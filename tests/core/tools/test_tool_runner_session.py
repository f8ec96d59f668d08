"""``ToolRunner`` with a session: every execution is a ``TOOL_CALL`` event linked by the provider's
call id, the assistant message is recorded once, and the log turns into valid provider messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from anthropic.types import Message, MessageParam
from openai.types.chat import ChatCompletion
from pydantic import TypeAdapter
from tool_support import Calls, anthropic_reply, check_chat, openai_call, openai_reply

from sessionware import (
    EventSource,
    EventType,
    InvalidSessionOperation,
    Role,
    SessionManager,
    ToolCall,
    ToolProcessingError,
)
from sessionware.core.session.messages import events_to_messages
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend
from sessionware.core.tools import ToolFormat, ToolRegistry, ToolRunner, ToolStatus

ANTHROPIC_MESSAGES = TypeAdapter(list[MessageParam])


async def test_each_execution_is_a_tool_call_event_with_the_providers_call_id(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("What is 6 / 4, and the weather in Paris?")
    reply = openai_reply(("call_div", "divide", {"a": 6, "b": 4}), ("call_wx", "weather", {"city": "Paris"}))
    done = await ToolRunner(registry).run(sm, reply)

    assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.SUCCESS]
    events = [e for e in await sm.get_events() if e.type is EventType.TOOL_CALL]
    assert [(e.tool_call_id, e.tool_name) for e in events] == [("call_div", "divide"), ("call_wx", "weather")]
    divide, weather = events
    assert (divide.source, divide.role) == (EventSource.TOOL, Role.TOOL)
    assert divide.tool_arguments == {"a": 6, "b": 4}  # the real arguments, not None
    assert divide.tool_result == 1.5
    assert weather.tool_result == {"city": "Paris", "temp": 21.5, "unit": "C"}
    assert divide.error is None and divide.latency_ms is not None and divide.latency_ms > 0
    assert divide.metadata == {"tool_status": "success", "attempts": 1, "cached": False, "binding": "v1"}
    assert weather.metadata == {"tool_status": "success", "attempts": 1, "cached": False}


async def test_a_failure_is_logged_with_its_error_and_attempts(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Divide 1 by 0")
    done = await ToolRunner(registry).run(sm, openai_reply(("call_1", "divide", {"a": 1, "b": 0})))
    event = (await sm.get_events())[-1]
    assert event.type is EventType.TOOL_CALL
    assert event.error is not None
    assert (event.error.type, event.error.message) == ("ZeroDivisionError", "float division by zero")
    assert event.tool_result is None
    assert event.metadata["tool_status"] == "error" and event.metadata["attempts"] == 1
    with pytest.raises(ToolProcessingError, match="float division by zero") as info:
        done.raise_for_errors()
    assert info.value.call_id == "call_1"


async def test_the_round_shows_up_as_a_valid_openai_tool_exchange(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://", system_prompt="Use tools.")
    await sm.user_says("Add 2 and 3, then divide 1 by 0, then call a tool that does not exist")
    reply = openai_reply(
        ("call_a", "add", {"a": 2, "b": 3}),
        ("call_b", "divide", {"a": 1, "b": 0}),
        ("call_c", "teleport", {}),
        ("call_d", "add", "{not json"),
        content="Working on it.",
    )
    done = await ToolRunner(registry).run(sm, reply)
    messages = await sm.get_messages_for_llm()
    check_chat(messages)
    assert messages[2] == reply  # the assistant message, recorded as the model sent it
    # What the runner hands back is exactly what the session rebuilds, so a wrapped client
    # diffing the app's next request against the log sees nothing new.
    assert messages[3:] == done.openai_messages()
    assert [m["content"][:30] for m in done.openai_messages()] == [
        "5.0",
        "Error: float division by zero",
        "Error: unknown tool 'teleport'",
        "Error: invalid JSON: Expecting",
    ]
    stats = await sm.get_stats()
    assert stats.tool_calls == 4
    assert stats.llm_calls == 0  # the runner records the message, not a provider call it did not see


async def test_the_next_request_is_valid_for_the_openai_sdk_after_a_round(registry: ToolRegistry) -> None:
    completion = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [openai_call("call_w", "weather", {"city": "Oslo", "unit": "F"})],
                    },
                }
            ],
        }
    )
    conversation = [{"role": "user", "content": "Weather in Oslo in F?"}]
    done = await ToolRunner(registry).run(None, completion)  # the SDK object, as returned
    assert done.session_id is None and done.format is ToolFormat.OPENAI
    next_request = [
        *conversation,
        completion.choices[0].message.model_dump(exclude_none=True),
        *done.messages(),
    ]
    check_chat(next_request)
    assert done.messages()[0]["content"] == '{"city": "Oslo", "temp": 48.2, "unit": "F"}'


async def test_an_assistant_message_already_recorded_is_not_recorded_again(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("add 1 and 2")
    call = ToolCall(id="call_1", name="add", arguments='{"a": 1, "b": 2}')
    await sm.ai_responds(None, model="gpt-4o-mini", tool_calls=[call])
    await ToolRunner(registry).run(sm, [call])
    assistants = [e for e in await sm.get_events() if e.role is Role.ASSISTANT]
    assert len(assistants) == 1
    messages = await sm.get_messages_for_llm()
    check_chat(messages)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]


async def test_anthropic_tool_use_blocks_get_tool_result_blocks(registry: ToolRegistry, calls: Calls) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Square root of 2, and weather in Atlantis")
    message = Message.model_validate(
        anthropic_reply(
            ("toolu_01", "sqrt", {"x": 2}),
            ("toolu_02", "weather", {"city": "Atlantis"}),
            text="Let me check.",
        )
    )
    done = await ToolRunner(registry).run(sm, message)
    assert done.format is ToolFormat.ANTHROPIC
    reply = done.anthropic_message()
    assert reply == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "1.4142135623730951"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_02",
                "content": "Error: unknown city 'Atlantis'",
                "is_error": True,
            },
        ],
    }
    history = [
        {"role": "user", "content": "Square root of 2, and weather in Atlantis"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        reply,
    ]
    ANTHROPIC_MESSAGES.validate_python(history)
    assert done.messages() == [reply]
    events = [e for e in await sm.get_events() if e.type is EventType.TOOL_CALL]
    assert [e.tool_call_id for e in events] == ["toolu_01", "toolu_02"]
    assistant = next(e for e in await sm.get_events() if e.role is Role.ASSISTANT)
    assert assistant.text == "Let me check." and [c.id for c in assistant.tool_calls] == [
        "toolu_01",
        "toolu_02",
    ]
    check_chat(await sm.get_messages_for_llm())
    assert calls["sqrt"] == 1


async def test_a_message_without_tool_calls_is_a_no_op(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("hi")
    done = await ToolRunner(registry).run(sm, {"role": "assistant", "content": "Hello!"})
    assert (done.results, done.messages(), done.ok) == ((), [], True)
    assert len(await sm.get_events()) == 1


async def test_an_unreadable_message_raises_tool_processing_error(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    with pytest.raises(ToolProcessingError, match="no name"):
        await ToolRunner(registry).run(
            sm, {"role": "assistant", "tool_calls": [{"id": "c1", "function": {}}]}
        )
    with pytest.raises(ToolProcessingError, match="cannot read tool calls from int"):
        await ToolRunner(registry).run(sm, 42)


async def test_the_runner_takes_a_session_state_too(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("add")
    await ToolRunner(registry).run(sm.state, openai_reply(("c1", "add", {"a": 1, "b": 1})))
    assert (await sm.get_stats()).tool_calls == 1
    with pytest.raises(InvalidSessionOperation, match="must be a SessionManager"):
        await ToolRunner(registry).run("session-id", openai_reply(("c2", "add", {"a": 1, "b": 1})))  # type: ignore[arg-type]


async def test_a_session_not_opened_yet_is_opened_with_its_header(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://", system_prompt="Be exact.", metadata={"app": "calc"})
    await ToolRunner(registry).run(sm, openai_reply(("c1", "add", {"a": 1, "b": 1})))
    assert sm.state.info.system_prompt == "Be exact." and sm.state.info.metadata == {"app": "calc"}
    check_chat(await sm.get_messages_for_llm())


async def test_sync_durability_has_the_round_in_the_store_when_run_returns(
    registry: ToolRegistry, tmp_path: Path
) -> None:
    store = Store(SQLiteBackend(tmp_path / "s.db"))
    try:
        sm = SessionManager("sync", store=store, durability="sync")
        await sm.user_says("add")
        await ToolRunner(registry).run(sm, openai_reply(("c1", "add", {"a": 1, "b": 1})))
        on_disk = await store.aload_events("sync")
        assert [e.type for e in on_disk][-2:] == [EventType.MESSAGE, EventType.TOOL_CALL]
    finally:
        store.close()


async def test_the_log_survives_a_reload_from_sqlite(registry: ToolRegistry, tmp_path: Path) -> None:
    path = tmp_path / "tools.db"
    store = Store(SQLiteBackend(path))
    sm = SessionManager("reload", store=store)
    await sm.user_says("weather in Paris")
    await ToolRunner(registry).run(sm, openai_reply(("call_1", "weather", {"city": "Paris"})))
    before = await sm.get_messages_for_llm()
    await sm.flush()
    store.close()

    fresh = Store(SQLiteBackend(path))
    try:
        again = await SessionManager.load("reload", store=fresh)
        assert await again.get_messages_for_llm() == before
        event = [e for e in await again.get_events() if e.type is EventType.TOOL_CALL][0]
        assert (event.tool_call_id, event.tool_arguments, event.metadata["attempts"]) == (
            "call_1",
            {"city": "Paris"},
            1,
        )
        assert (await again.get_stats()).tool_calls == 1
    finally:
        fresh.close()


async def test_a_result_the_session_refuses_still_reaches_the_model(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("weather in Paris")
    sm.state.max_event_bytes = 40  # smaller than the weather result
    runner = ToolRunner(registry)
    done = await runner.run(sm, openai_reply(("c1", "weather", {"city": "Paris"})))
    assert done.results[0].ok and done.openai_messages()[0]["content"].startswith('{"city": "Paris"')
    assert "tool results of session" in caplog.text and "were not recorded" in caplog.text
    assert [e.type for e in await sm.get_events()] == [EventType.MESSAGE, EventType.MESSAGE]
    memory = await runner.memory(sm)  # guards and memory still saw the call
    assert memory.pattern("weather") is not None


def test_a_sync_app_runs_tools_with_run_sync(registry: ToolRegistry, calls: Calls, tmp_path: Path) -> None:
    store = Store(SQLiteBackend(tmp_path / "sync.db"))
    runner = ToolRunner(registry)
    try:
        state = registry_for(store).open("sync-app")  # what a wrapped sync client records into
        state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="sqrt of 2 and 1/0")
        done = runner.run_sync(
            state, openai_reply(("c1", "sqrt", {"x": 2}), ("c2", "divide", {"a": 1, "b": 0}))
        )
        assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.ERROR]
        again = runner.run_sync(None, openai_reply(("c3", "add", {"a": 1, "b": 2})))  # the same loop, reused
        assert again.results[0].result == 3.0
        assert [e.tool_call_id for e in state.events if e.type is EventType.TOOL_CALL] == ["c1", "c2"]
        check_chat(events_to_messages(state.events))
    finally:
        runner.close()
        store.close()
    assert calls["sqrt"] == 1


async def test_run_sync_refuses_to_block_a_running_event_loop(registry: ToolRegistry) -> None:
    runner = ToolRunner(registry)
    with pytest.raises(InvalidSessionOperation, match="called inside a running event loop"):
        runner.run_sync(None, openai_reply(("c1", "add", {"a": 1, "b": 2})))
    runner.close()  # nothing was started: a no-op


async def test_an_assistant_message_the_session_refuses_does_not_stop_the_tools(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("add")
    sm.state.max_event_bytes = 10
    done = await ToolRunner(registry).run(sm, openai_reply(("c1", "add", {"a": 1, "b": 2}), content="x" * 50))
    assert done.results[0].result == 3.0
    assert "assistant message of session" in caplog.text
    check_chat(await sm.get_messages_for_llm())  # the lone result gets a synthesised call


async def test_failed_timed_out_and_unknown_tools_count_as_stats_errors(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Try a few things")
    reply = openai_reply(
        ("call_ok", "add", {"a": 1, "b": 2}),
        ("call_div", "divide", {"a": 1, "b": 0}),
        ("call_slow", "slow", {"seconds": 1}),
        ("call_none", "teleport", {}),
    )
    done = await ToolRunner(registry).run(sm, reply)
    assert [r.status for r in done.results] == [
        ToolStatus.SUCCESS,
        ToolStatus.ERROR,
        ToolStatus.TIMEOUT,
        ToolStatus.UNKNOWN_TOOL,
    ]
    stats = await sm.get_stats()
    assert (stats.tool_calls, stats.errors) == (4, 3)
