"""The one-call helpers: track_conversation, track_llm_call and friends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from sessionware import (
    LLMCallResult,
    PriceBook,
    SessionManager,
    SessionNotFound,
    TokenSource,
    TokenUsage,
    TrackedExchange,
    get_conversation_history,
    get_session_stats,
    quick_conversation,
    track_conversation,
    track_llm_call,
    track_tool_use,
)
from sessionware.core.store import MemoryBackend, Store

OPENAI_BODY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_760_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 40,
        "total_tokens": 1240,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 8, "audio_tokens": 0},
    },
}
OPENAI_USAGE = TokenUsage(input_tokens=1200, output_tokens=40, cache_read_tokens=1024, reasoning_tokens=8)

ANTHROPIC_BODY: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [{"type": "text", "text": "Bonjour"}, {"type": "text", "text": " !"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 50,
    },
}
# Anthropic reports cached parts beside input_tokens; ours is the whole prompt.
ANTHROPIC_USAGE = TokenUsage(
    input_tokens=1150, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=50
)


@pytest.fixture
def store() -> Store:
    return Store(MemoryBackend())


async def test_track_conversation_records_an_exchange_and_continues_a_session(store: Store) -> None:
    first = await track_conversation("Hi", "Hello!", model="gpt-4o-mini", store=store)
    assert isinstance(first, TrackedExchange)
    assert (first.user_event.content, first.ai_event.content) == ("Hi", "Hello!")
    again = await track_conversation("And you?", "Fine.", session_id=first.session_id, store=store)
    assert again.session_id == first.session_id and again.user_event.seq == 3
    history = await get_conversation_history(first.session_id, store=store)
    assert [m["content"] for m in history] == ["Hi", "Hello!", "And you?", "Fine."]


async def test_track_conversation_keeps_given_usage(store: Store) -> None:
    usage = TokenUsage(input_tokens=10, output_tokens=2)
    exchange = await track_conversation("q", "a", model="gpt-4o", usage=usage, store=store)
    assert exchange.ai_event.usage == usage


def answer(prompt: str) -> str:
    return f"echo: {prompt}"


async def async_answer(prompt: str) -> str:
    await asyncio.sleep(0)
    return f"async echo: {prompt}"


@pytest.mark.parametrize(
    ("llm_function", "text"),
    [
        (answer, "echo: ping"),
        (async_answer, "async echo: ping"),
        (lambda p: async_answer(p), "async echo: ping"),  # noqa: PLW0108 - sync, returns a coroutine
    ],
    ids=["sync", "async", "sync-returning-coroutine"],
)
async def test_track_llm_call_with_any_kind_of_function(store: Store, llm_function: Any, text: str) -> None:
    result = await track_llm_call("ping", llm_function, model="gpt-4o-mini", store=store)
    assert isinstance(result, LLMCallResult)
    got_text, session_id = result[:2]
    assert got_text == text == result.response
    events = await (await SessionManager.load(session_id, store=store)).get_events()
    assert [e.text for e in events] == ["ping", text]
    assert events[1].usage is not None and events[1].usage.source is TokenSource.ESTIMATE


@pytest.mark.parametrize(
    ("response", "text", "usage", "model"),
    [
        (ChatCompletion.model_validate(OPENAI_BODY), "Paris.", OPENAI_USAGE, "gpt-4o-2024-08-06"),
        (OPENAI_BODY, "Paris.", OPENAI_USAGE, "gpt-4o-2024-08-06"),
        (Message.model_validate(ANTHROPIC_BODY), "Bonjour !", ANTHROPIC_USAGE, "claude-3-5-sonnet-20241022"),
        (ANTHROPIC_BODY, "Bonjour !", ANTHROPIC_USAGE, "claude-3-5-sonnet-20241022"),
    ],
    ids=["openai-object", "openai-dict", "anthropic-object", "anthropic-dict"],
)
async def test_track_llm_call_reads_text_usage_and_model_from_provider_responses(
    store: Store, response: Any, text: str, usage: TokenUsage, model: str
) -> None:
    result = await track_llm_call("q", lambda _: response, store=store)
    assert result.text == text and result.response is response
    event = (await (await SessionManager.load(result.session_id, store=store)).get_events())[-1]
    assert event.content == text
    assert event.usage == usage and event.usage.source is TokenSource.PROVIDER
    assert event.model == model
    assert event.cost == PriceBook().cost(model, usage)


async def test_an_explicit_model_wins_over_the_one_in_the_response(store: Store) -> None:
    result = await track_llm_call("q", lambda _: OPENAI_BODY, model="gpt-4o-mini", store=store)
    event = (await (await SessionManager.load(result.session_id, store=store)).get_events())[-1]
    assert event.model == "gpt-4o-mini"


async def test_track_llm_call_records_into_a_given_manager(store: Store) -> None:
    sm = SessionManager(store=store, system_prompt="sys")
    await track_llm_call("one", answer, session_manager=sm)
    await track_llm_call("two", answer, session_manager=sm)
    assert [m["role"] for m in await sm.get_messages_for_llm()] == ["system", "user", "assistant"] * 1 + [
        "user",
        "assistant",
    ]


async def test_an_error_in_the_llm_function_propagates_after_the_prompt_is_recorded(store: Store) -> None:
    sm = SessionManager(store=store)

    def broken(_: str) -> str:
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError, match="provider down"):
        await track_llm_call("q", broken, session_manager=sm)
    assert [e.text for e in await sm.get_events()] == ["q"]


async def test_other_responses_are_recorded_as_their_text(store: Store) -> None:
    class Reply:
        content = "from an object"

    assert (await track_llm_call("q", lambda _: Reply(), store=store)).text == "from an object"
    assert (await track_llm_call("q", lambda _: 42, store=store)).text == "42"
    assert (
        await track_llm_call("q", lambda _: {"content": "dict content"}, store=store)
    ).text == "dict content"


async def test_quick_conversation_and_get_session_stats(store: Store) -> None:
    stats = await quick_conversation("Hi", "Hello", model="gpt-4o-mini", store=store)
    assert (stats.user_messages, stats.assistant_messages) == (1, 1)
    assert (await get_session_stats(stats.session_id, store=store)) == stats
    with pytest.raises(SessionNotFound):
        await get_session_stats("nope", store=store)
    with pytest.raises(SessionNotFound):
        await get_conversation_history("nope", store=store)


async def test_track_tool_use(store: Store) -> None:
    event = await track_tool_use("calc", {"x": 2}, 4, call_id="c1", store=store)
    failed = await track_tool_use(
        "calc", {"x": 0}, None, session_id=event.session_id, error="bad", store=store
    )
    assert (event.tool_name, event.tool_result, event.tool_call_id) == ("calc", 4, "c1")
    assert failed.error is not None and failed.error.message == "bad" and failed.seq == 2
