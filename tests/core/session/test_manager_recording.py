"""Recording through ``SessionManager``: user_says, ai_responds (usage given, as a mapping, or
estimated), tool_used, get_conversation and get_stats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sessionware import (
    EventSource,
    EventType,
    InvalidSessionOperation,
    PriceBook,
    Role,
    SessionEvent,
    SessionManager,
    TokenSource,
    TokenUsage,
    ToolCall,
    ToolProcessingError,
)
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.store import Store


async def test_user_says_records_a_numbered_user_message_with_metadata(any_store: Store) -> None:
    sm = SessionManager(store=any_store)
    first = await sm.user_says("hello", channel="web", attempt=2)
    second = await sm.user_says("again")
    assert (first.seq, second.seq) == (1, 2)
    assert (first.type, first.source, first.role, first.content) == (
        EventType.MESSAGE,
        EventSource.USER,
        Role.USER,
        "hello",
    )
    assert first.metadata == {"channel": "web", "attempt": 2}
    assert first.session_id == sm.session_id and first.usage is None
    await sm.flush()
    assert (await any_store.aload_events(sm.session_id))[0] == first


@pytest.mark.parametrize("bad", [123, {"text": "x"}, [1, 2], b"bytes"])
async def test_user_says_refuses_content_that_is_not_text_or_parts(bad: object) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("kept")
    with pytest.raises(InvalidSessionOperation, match="content must be a str or a list of content parts"):
        await sm.user_says(bad)  # type: ignore[arg-type]
    assert [e.text for e in await sm.get_events()] == ["kept"]


async def test_ai_responds_keeps_the_providers_usage_and_prices_it() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("hi")
    usage = TokenUsage(input_tokens=1000, output_tokens=50, cache_read_tokens=800, reasoning_tokens=10)
    event = await sm.ai_responds(
        "hello",
        model="gpt-4o-2024-08-06",
        provider="openai",
        usage=usage,
        finish_reason="stop",
        latency_ms=321.5,
        request_id="req_1",
    )
    assert event.usage == usage and event.usage.source is TokenSource.PROVIDER
    assert event.cost == PriceBook().cost("gpt-4o-2024-08-06", usage, "openai")
    assert event.cost == Decimal("0.002")  # 200 x 2.50 + 800 cached x 1.25 + 50 x 10.00 per million
    assert (event.model, event.provider, event.finish_reason, event.latency_ms) == (
        "gpt-4o-2024-08-06",
        "openai",
        "stop",
        321.5,
    )
    assert event.metadata == {"request_id": "req_1"}


async def test_ai_responds_accepts_usage_as_a_mapping() -> None:
    sm = SessionManager(store="memory://")
    event = await sm.ai_responds(
        "ok", model="gpt-4o", usage={"input_tokens": 12, "output_tokens": 3, "cache_write_tokens": 4}
    )
    assert event.usage == TokenUsage(input_tokens=12, output_tokens=3, cache_write_tokens=4)
    assert event.usage.source is TokenSource.PROVIDER


@pytest.mark.parametrize("usage", [{"prompt_tokenz": 3}, {"input_tokens": -1}, {"input_tokens": "many"}])
async def test_ai_responds_refuses_a_malformed_usage_and_records_nothing(usage: dict[str, object]) -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("hi")
    with pytest.raises(InvalidSessionOperation, match="usage is not valid"):
        await sm.ai_responds("ok", usage=usage)  # type: ignore[arg-type]
    assert len(await sm.get_events()) == 1


async def test_ai_responds_without_usage_records_a_labelled_estimate_of_the_whole_prompt() -> None:
    sm = SessionManager(store="memory://", system_prompt="Be brief.")
    await sm.user_says("What is the capital of France?")
    sent = await sm.get_messages_for_llm()
    event = await sm.ai_responds("Paris.", model="gpt-4o-mini")
    counter = counter_for_model("gpt-4o-mini")
    assert event.usage is not None and event.usage.source is TokenSource.ESTIMATE
    # The whole prompt as the API counts it (framing and reply priming included) ...
    assert event.usage.input_tokens == counter.count_messages(sent)
    # ... and only the reply's own tokens as output.
    assert event.usage.output_tokens == counter.count_text("Paris.")
    assert event.cost is not None and event.cost > 0
    stats = await sm.get_stats()
    assert stats.token_source is TokenSource.ESTIMATE


async def test_each_estimate_covers_the_conversation_so_far() -> None:
    sm = SessionManager(store="memory://")
    counter = counter_for_model("gpt-4o-mini")
    for turn in range(3):
        await sm.user_says(f"question number {turn}")
        sent = await sm.get_messages_for_llm()
        event = await sm.ai_responds(f"answer number {turn}")
        assert event.usage is not None and event.usage.input_tokens == counter.count_messages(sent)


async def test_a_claude_or_unknown_model_gets_an_estimate_and_unknown_cost_stays_none() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("hello there")
    claude = await sm.ai_responds("Hi!", model="claude-3-5-sonnet-20241022", provider="anthropic")
    assert claude.usage is not None and claude.usage.source is TokenSource.ESTIMATE
    assert claude.cost is not None  # Claude is priced; only its token count is estimated
    mystery = await sm.ai_responds("Hi!", model="no-such-model-xyz")
    assert mystery.cost is None
    stats = await sm.get_stats()
    assert stats.unpriced_calls == 1 and stats.cost == claude.cost
    assert stats.models == {"claude-3-5-sonnet-20241022": 1, "no-such-model-xyz": 1}


async def test_a_session_whose_only_call_is_unpriced_has_an_unknown_cost() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("hello there")
    await sm.ai_responds("Hi!", model="my-local-llama", usage={"input_tokens": 10, "output_tokens": 2})
    stats = await sm.get_stats()
    assert stats.unpriced_calls == 1 and stats.cost is None
    assert (await SessionManager(store="memory://").get_stats()).cost == 0  # no call: nothing to pay


async def test_ai_responds_records_tool_calls_given_as_dicts_or_models() -> None:
    sm = SessionManager(store="memory://")
    event = await sm.ai_responds(
        None,
        tool_calls=[
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"id": "c2", "name": "g", "arguments": {"b": [1, 2]}},  # flat, with a dict of arguments
            ToolCall(id="c3", name="h"),
        ],
    )
    assert event.tool_calls == (
        ToolCall(id="c1", name="f", arguments='{"a": 1}'),
        ToolCall(id="c2", name="g", arguments='{"b": [1, 2]}'),
        ToolCall(id="c3", name="h", arguments="{}"),
    )


async def test_a_tool_call_that_cannot_be_parsed_raises_tool_processing_error() -> None:
    sm = SessionManager(store="memory://")
    with pytest.raises(ToolProcessingError) as caught:
        await sm.ai_responds(None, tool_calls=[{"id": "c1", "function": {"arguments": "{}"}}])
    assert caught.value.reason == "tool call is missing 'name'" and caught.value.call_id == "c1"
    with pytest.raises(ToolProcessingError, match="'weather' failed: tool call is missing 'id'"):
        await sm.ai_responds(None, tool_calls=[{"function": {"name": "weather"}}])
    assert await sm.get_events() == []


async def test_an_empty_response_is_refused() -> None:
    sm = SessionManager(store="memory://")
    with pytest.raises(InvalidSessionOperation, match="needs text or tool calls"):
        await sm.ai_responds(None)


async def test_tool_used_records_the_execution_linked_to_its_call(any_store: Store) -> None:
    sm = SessionManager(store=any_store)
    await sm.user_says("weather?")
    await sm.ai_responds(
        None, tool_calls=[{"id": "call_1", "function": {"name": "weather", "arguments": "{}"}}]
    )
    event = await sm.tool_used(
        "weather", {"city": "Lisbon"}, {"high_c": 24}, call_id="call_1", latency_ms=8.0
    )
    assert (event.type, event.source, event.role) == (EventType.TOOL_CALL, EventSource.TOOL, Role.TOOL)
    assert (event.tool_name, event.tool_arguments, event.tool_result, event.tool_call_id) == (
        "weather",
        {"city": "Lisbon"},
        {"high_c": 24},
        "call_1",
    )
    assert event.error is None and event.latency_ms == 8.0
    await sm.flush()
    assert (await any_store.aload_events(sm.session_id))[-1] == event


async def test_tool_used_records_an_error_from_text_or_an_exception() -> None:
    sm = SessionManager(store="memory://")
    text = await sm.tool_used("search", {"q": "x"}, None, "quota exhausted")
    exc = await sm.tool_used("fetch", {}, None, TimeoutError("timed out after 5 s"))
    assert text.error is not None and (text.error.type, text.error.message) == (
        "ToolError",
        "quota exhausted",
    )
    assert exc.error is not None and (exc.error.type, exc.error.message) == (
        "TimeoutError",
        "timed out after 5 s",
    )
    stats = await sm.get_stats()
    assert stats.tool_calls == 2 and stats.errors == 2  # each failed tool call is an error


async def test_tool_used_needs_a_name_and_a_serialisable_result() -> None:
    sm = SessionManager(store="memory://")
    with pytest.raises(InvalidSessionOperation, match="tool_name must not be empty"):
        await sm.tool_used("", {}, None)
    with pytest.raises(InvalidSessionOperation, match="tool_result is not JSON-serialisable"):
        await sm.tool_used("t", {}, object())
    assert await sm.get_events() == []


async def test_get_conversation_lists_message_and_tool_events_only() -> None:
    sm = SessionManager(store="memory://", system_prompt="first")
    await sm.user_says("q")
    await sm.set_system_prompt("second")
    await sm.tool_used("t", {}, "r")
    await sm.ai_responds("a")
    conversation = await sm.get_conversation()
    assert [(e.type, e.role) for e in conversation] == [
        (EventType.MESSAGE, Role.USER),
        (EventType.TOOL_CALL, Role.TOOL),
        (EventType.MESSAGE, Role.ASSISTANT),
    ]
    assert len(await sm.get_events()) == 4  # the prompt change is in the log, not in the conversation


async def test_get_stats_adds_up_messages_tools_tokens_and_cost(any_store: Store) -> None:
    sm = SessionManager(store=any_store)
    await sm.user_says("q1")
    u1 = TokenUsage(input_tokens=100, output_tokens=10, cache_read_tokens=60, reasoning_tokens=4)
    a1 = await sm.ai_responds(None, model="gpt-4o", usage=u1, tool_calls=[{"id": "c", "name": "t"}])
    await sm.tool_used("t", {}, "r", call_id="c")
    u2 = TokenUsage(input_tokens=150, output_tokens=20, cache_write_tokens=30)
    a2 = await sm.ai_responds("done", model="gpt-4o", usage=u2)
    stats = await sm.get_stats()
    assert stats.session_id == sm.session_id and stats.session_chain == [sm.session_id]
    assert stats.segments == 1 and not stats.infinite_context
    assert (stats.total_messages, stats.user_messages, stats.assistant_messages) == (3, 1, 2)
    assert stats.messages_by_role == {Role.USER: 1, Role.ASSISTANT: 2}
    assert (stats.tool_calls, stats.llm_calls, stats.total_events) == (1, 2, 4)
    assert (stats.input_tokens, stats.output_tokens, stats.total_tokens) == (250, 30, 280)
    assert (stats.cache_read_tokens, stats.cache_write_tokens, stats.reasoning_tokens) == (60, 30, 4)
    assert stats.token_source is TokenSource.PROVIDER
    assert a1.cost is not None and a2.cost is not None
    assert stats.cost == a1.cost + a2.cost and sm.total_cost == stats.cost
    assert stats.models == {"gpt-4o": 2} and stats.unpriced_calls == 0
    assert stats.created_at <= stats.updated_at


async def test_hidden_calls_and_managed_input_are_reported_apart() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("q")
    await sm.ai_responds(
        "a", model="gpt-4o", usage=TokenUsage(input_tokens=400, output_tokens=5)
    )  # a managed call: sessionware sent 400 where the app had 1,000
    sm.state.record(
        EventType.LLM_CALL,
        EventSource.LLM,
        model="gpt-4o",
        usage=TokenUsage(input_tokens=50, output_tokens=5),
        cost=Decimal("0.0001"),
        hidden=True,
    )
    sm.state.record(EventType.PAGE_FAULT, EventSource.SYSTEM, metadata={"page": "p1"})
    sm.state.record(EventType.LLM_CALL, EventSource.LLM, model="gpt-4o", app_input_tokens=1000)
    stats = await sm.get_stats()
    assert (stats.hidden_input_tokens, stats.hidden_output_tokens, stats.hidden_cost) == (
        50,
        5,
        Decimal("0.0001"),
    )
    assert stats.input_tokens == 450 and stats.page_faults == 1
    assert stats.app_input_tokens == 1000 and stats.tokens_saved == 600


async def test_listeners_see_every_new_event_until_removed() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("before")
    seen: list[int] = []

    def listener(event: SessionEvent) -> None:
        seen.append(event.seq)

    sm.state.add_listener(listener)
    sm.state.add_listener(listener)  # adding twice does not call twice
    await sm.user_says("one")
    await sm.ai_responds("two")
    sm.state.remove_listener(listener)
    await sm.user_says("after")
    assert seen == [2, 3]


async def test_the_state_is_only_available_once_the_session_is_open() -> None:
    sm = SessionManager("lazy", store="memory://")
    with pytest.raises(InvalidSessionOperation, match="not open yet"):
        _ = sm.state
    await sm.get_stats()
    assert sm.state.id == "lazy"
