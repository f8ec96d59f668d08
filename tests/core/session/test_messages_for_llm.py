"""``get_messages_for_llm``: always a list the OpenAI chat API accepts, built from the log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sessionware import EventSource, EventType, SessionManager, TokenUsage
from sessionware.core.store import Store

Check = Callable[[Sequence[dict[str, Any]]], None]
WEATHER = {"id": "call_1", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}


async def test_a_plain_conversation_with_a_system_prompt(any_store: Store, assert_valid_chat: Check) -> None:
    sm = SessionManager(store=any_store, system_prompt="You are terse.")
    await sm.user_says("What is 2+2?")
    await sm.ai_responds("4", model="gpt-4o-mini")
    messages = await sm.get_messages_for_llm()
    assert messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert_valid_chat(messages)
    assert (await sm.get_messages_for_llm(include_system=False))[0]["role"] == "user"


async def test_an_announced_tool_call_is_followed_by_its_result(
    any_store: Store, assert_valid_chat: Check
) -> None:
    sm = SessionManager(store=any_store)
    await sm.user_says("Weather in Lisbon?")
    await sm.ai_responds(None, model="gpt-4o-mini", tool_calls=[WEATHER])
    await sm.tool_used("weather", {"city": "Lisbon"}, {"high_c": 24}, call_id="call_1")
    await sm.ai_responds("Sunny, 24 °C.", model="gpt-4o-mini")
    messages = await sm.get_messages_for_llm()
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"high_c": 24}'},
        {"role": "assistant", "content": "Sunny, 24 °C."},
    ]
    assert_valid_chat(messages)


async def test_tools_used_without_an_announcing_call_get_one_synthesised(assert_valid_chat: Check) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Add then double 2 and 3")
    await sm.tool_used("add", {"a": 2, "b": 3}, 5)
    await sm.tool_used("double", '{"x": 5}', "10")
    await sm.ai_responds("10", model="gpt-4o-mini")
    messages = await sm.get_messages_for_llm()
    assert_valid_chat(messages)
    announce = messages[1]
    assert announce["role"] == "assistant" and announce["content"] is None
    assert [c["function"]["name"] for c in announce["tool_calls"]] == ["add", "double"]
    assert announce["tool_calls"][0]["function"]["arguments"] == '{"a": 2, "b": 3}'
    assert announce["tool_calls"][1]["function"]["arguments"] == '{"x": 5}'
    ids = [c["id"] for c in announce["tool_calls"]]
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in messages[2:4]] == [
        ("tool", ids[0], "5"),
        ("tool", ids[1], "10"),
    ]


async def test_a_failed_tool_reports_its_error_to_the_model(assert_valid_chat: Check) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Divide 1 by 0")
    await sm.ai_responds(None, tool_calls=[{"id": "c9", "function": {"name": "div", "arguments": "{}"}}])
    await sm.tool_used("div", {}, None, ZeroDivisionError("division by zero"), call_id="c9")
    messages = await sm.get_messages_for_llm()
    assert messages[-1] == {"role": "tool", "tool_call_id": "c9", "content": "Error: division by zero"}
    assert_valid_chat(messages)


async def test_unanswered_tool_calls_are_left_out(assert_valid_chat: Check) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("two lookups please")
    await sm.ai_responds(
        "Looking both up.",
        tool_calls=[WEATHER, {"id": "call_2", "function": {"name": "time", "arguments": "{}"}}],
    )
    await sm.tool_used("weather", {"city": "Lisbon"}, "sunny", call_id="call_1")
    await sm.user_says("never mind the time")  # call_2 is never answered
    await sm.ai_responds(None, tool_calls=[{"id": "call_3", "function": {"name": "x", "arguments": "{}"}}])
    messages = await sm.get_messages_for_llm()
    assert_valid_chat(messages)
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_1"]
    assert messages[1]["content"] == "Looking both up."
    # The last assistant message had nothing but an unanswered call: it is dropped entirely.
    assert messages[-1] == {"role": "user", "content": "never mind the time"}


async def test_a_result_for_a_call_that_was_never_announced_keeps_the_list_valid(
    assert_valid_chat: Check,
) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("go")
    await sm.ai_responds(None, tool_calls=[WEATHER])
    await sm.tool_used("weather", {}, "sunny", call_id="call_other")
    messages = await sm.get_messages_for_llm()
    assert_valid_chat(messages)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_other" == messages[2]["tool_call_id"]


async def test_content_parts_pass_through(assert_valid_chat: Check) -> None:
    sm = SessionManager(store="memory://")
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
    ]
    await sm.user_says(parts)
    await sm.ai_responds("A cat.")
    messages = await sm.get_messages_for_llm()
    assert messages[0] == {"role": "user", "content": parts}
    assert_valid_chat(messages)
    assert [e.text for e in await sm.get_conversation()] == ["What is in this picture?", "A cat."]


async def test_an_edited_history_continues_from_the_branch_point(assert_valid_chat: Check) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Tell me about Paris")
    await sm.ai_responds("Paris is the capital of France.")
    await sm.user_says("And its population?")
    await sm.ai_responds("About 2.1 million.")
    # The app edited its history after the first exchange (seq 2) and asked something else.
    sm.state.record(EventType.BRANCH, EventSource.SYSTEM, branch_of=2)
    await sm.user_says("And its best museum?")
    await sm.ai_responds("The Louvre.")
    messages = await sm.get_messages_for_llm()
    assert_valid_chat(messages)
    assert [m["content"] for m in messages] == [
        "Tell me about Paris",
        "Paris is the capital of France.",
        "And its best museum?",
        "The Louvre.",
    ]
    assert len(await sm.get_events()) == 7  # nothing is deleted from the log
    assert [e.text for e in await sm.get_conversation()][-1] == "The Louvre."


async def test_a_branch_that_cuts_a_tool_exchange_keeps_the_list_valid(assert_valid_chat: Check) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("weather?")
    await sm.ai_responds(None, tool_calls=[WEATHER], usage=TokenUsage(input_tokens=5, output_tokens=5))
    await sm.tool_used("weather", {}, "sunny", call_id="call_1")
    sm.state.record(EventType.BRANCH, EventSource.SYSTEM, branch_of=2)  # cut between call and result
    await sm.user_says("forget it")
    messages = await sm.get_messages_for_llm()
    assert_valid_chat(messages)
    assert [m["role"] for m in messages] == ["user", "user"]


async def test_the_list_is_valid_after_a_reload(
    any_store: Store, reopen: Callable[[Store], Store], assert_valid_chat: Check
) -> None:
    sm = SessionManager(store=any_store, system_prompt="sys")
    await sm.user_says("q")
    await sm.ai_responds(None, tool_calls=[WEATHER])
    await sm.tool_used("weather", {"city": "Lisbon"}, "sunny", call_id="call_1")
    await sm.tool_used("unannounced", {}, "ok")
    await sm.ai_responds("done")
    before = await sm.get_messages_for_llm()
    await sm.flush()
    again = await SessionManager.load(sm.session_id, store=reopen(any_store))
    after = await again.get_messages_for_llm()
    assert after == before
    assert_valid_chat(after)
