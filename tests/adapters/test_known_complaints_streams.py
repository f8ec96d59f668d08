"""Complaint classes 1-5 users reported against other LLM wrappers: streams and raw responses.

The classes and their issue references are section (c) of
``shared/reference/adapter_anchors.md``; each ``test_cNN_*`` reproduces the reported
situation against the real SDKs (only HTTP is fake) and shows it does not happen here.
Classes 6-12 are in ``test_known_complaints_runtime.py``.
"""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from adapter_support import calls, make_openai, only_session, session_events

import sessionware
from sessionware.adapters.api import settle
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply, sse
from sessionware.core.accounting.usage import TokenSource
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
QUESTION = [{"role": "user", "content": "Say something"}]
LONG = Reply(text="one two three four five six")


def n_calls(store: Store) -> int:
    assert settle()
    store.flush_sync()
    return sum(info.totals.llm_calls for info in store.list_sessions_sync())


def the_call(store: Store) -> Any:
    [event] = calls(session_events(store, only_session(store)))
    return event


def sse_response(http: Any, events: list[dict[str, Any]], *, named: bool = False) -> Any:
    return lambda request: http.Response(
        200, content=sse(events, named=named, done=not named), headers={"content-type": "text/event-stream"}
    )


# -- 1. Wrapped streams break SDK contracts ---------------------------------------------------


def test_c01_a_stream_is_the_sdk_stream_iterator_and_context_manager(
    openai_client: Any, store: Store
) -> None:
    stream = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)

    assert isinstance(stream, openai.Stream)
    assert isinstance(stream.response, httpx.Response)  # not another stream object
    with stream as entered:  # LangChain's `with client.create(...)` (langfuse#2129)
        assert entered is stream
        first = next(stream)  # an iterator, not a bare generator wrapper (langfuse#2610)
        rest = list(stream)
    assert first.choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in rest) == "You said: Say something"
    assert n_calls(store) == 1


async def test_c01_async_helpers_enter_and_exit_cleanly(
    async_openai_client: Any, async_anthropic_client: Any, store: Store
) -> None:
    # langfuse#5361/#5685/#6368: `async with ...stream()` failed on exit.
    async with async_openai_client.chat.completions.stream(model=MODEL, messages=QUESTION) as chat_stream:
        async for _ in chat_stream:
            pass
    # openllmetry#3178/#3701/#4388: async (beta) message stream managers, get_final_message (#3371).
    async with async_anthropic_client.beta.messages.stream(
        model=CLAUDE, max_tokens=64, messages=QUESTION
    ) as message_stream:
        final = await message_stream.get_final_message()
    async with async_anthropic_client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=QUESTION
    ) as plain:
        text = await plain.get_final_text()

    assert final.content[0].text == text == "You said: Say something"
    assert type(chat_stream).__name__ == "AsyncChatCompletionStream"
    assert n_calls(store) == 3


def test_c01_helpers_only_see_sdk_arguments(openai_client: Any, store: Store) -> None:
    # langfuse#15018: wrapper-only kwargs rejected by the helpers. Sessions come from the scope.
    with sessionware.session("scoped"), openai_client.responses.stream(model=MODEL, input="hi") as stream:
        stream.until_done()

    assert session_events(store, "scoped")[-1].content == "You said: hi"


def test_c01_a_raw_stream_still_parses(openai_client: Any, anthropic_client: Any) -> None:
    # opentelemetry-python-contrib#4032: `.with_raw_response.create(stream=True).parse()`.
    raw = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION, stream=True)
    assert isinstance(raw.parse(), openai.Stream)
    raw_anthropic = anthropic_client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True
    )
    assert isinstance(raw_anthropic.parse(), anthropic.Stream)


# -- 2. Stream reconstruction crashes on odd chunks -------------------------------------------


def test_c02_odd_openai_chunks_reach_the_app_and_are_recorded(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    chunks = [
        {**base, "choices": None},  # langfuse#6658 (Claude via an OpenAI-compatible endpoint)
        {**base, "choices": [], "prompt_filter_results": []},  # Azure's content-filter chunk
        {**base, "choices": [{"index": 0, "delta": None, "finish_reason": None}]},  # langfuse#4432
        {**base, "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": []}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}, "finish_reason": None}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "call_9", "function": {"name": "f", "arguments": "{}"}}
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    openai_api.push(sse_response(httpx, chunks))

    received = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert len(received) == len(chunks)
    event = the_call(store)
    assert event.content == "Hi"
    assert [(c.id, c.name) for c in event.tool_calls] == [("call_9", "f")]


def test_c02_unknown_and_partial_events_are_tolerated(
    openai_client: Any,
    anthropic_client: Any,
    openai_api: FakeOpenAI,
    anthropic_api: FakeAnthropic,
    store: Store,
) -> None:
    # logfire#1683: a Responses stream whose `response.created` has no `output`.
    openai_api.push(
        sse_response(
            httpx,
            [
                {"type": "response.created", "sequence_number": 0, "response": {"id": "r1", "model": MODEL}},
                {"type": "response.brand_new_event", "sequence_number": 1, "payload": 3},
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 2,
                    "delta": "Hello",
                    "output_index": 0,
                },
            ],
            named=True,
        )
    )
    list(openai_client.responses.create(model=MODEL, input="hi", stream=True))
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": [],
            "usage": {},
        },
    }
    anthropic_api.push(
        sse_response(
            httpx2,
            [
                start,
                {"type": "surprise_event", "data": 1},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Yo"}},
            ],
            named=True,
        )
    )
    list(anthropic_client.messages.create(model=CLAUDE, max_tokens=9, messages=QUESTION, stream=True))

    store.flush_sync()
    contents = sorted(str(calls(session_events(store, i.id))[0].content) for i in store.list_sessions_sync())
    assert contents == ["Hello", "Yo"]


# -- 3. Usage missing for streams ------------------------------------------------------------


def test_c03_stream_usage_is_there_without_the_app_asking(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text="Sure", tool_calls=[("search", {"q": "x"})], cached_tokens=4))

    chunks = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert all(len(c.choices) == 1 for c in chunks)  # `chunk.choices[0]` code keeps working
    event = the_call(store)
    assert event.usage is not None and event.usage.source is TokenSource.PROVIDER
    assert event.usage.cache_read_tokens == 4
    assert [c.name for c in event.tool_calls] == ["search"]  # logfire#542


def test_c03_a_stream_without_usage_gets_a_labelled_estimate(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    # The server ignores include_usage (many compatible servers do).
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": "plain text answer"}, "finish_reason": "stop"}],
    }
    openai_api.push(sse_response(httpx, [chunk]))

    list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    usage = the_call(store).usage
    assert usage is not None and usage.source is TokenSource.ESTIMATE
    assert usage.input_tokens > 0 and usage.output_tokens == 3


# -- 4. Records lost when a stream is abandoned -----------------------------------------------


@pytest.mark.parametrize("leave", ["break", "close", "gc"])
def test_c04_an_abandoned_stream_is_recorded_exactly_once(
    leave: str, openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    def consume() -> None:
        stream = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
        for _ in stream:
            break
        if leave == "close":
            stream.close()
            stream.close()

    consume()  # the stream object goes out of scope here
    gc.collect()

    assert n_calls(store) == 1
    assert the_call(store).metadata["incomplete"] is True


# -- 5. with_raw_response crashes or is recorded as junk ---------------------------------------


def test_c05_raw_responses_are_recorded_from_their_data(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)

    async def run() -> Any:
        return await client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)

    raw = asyncio.run(run())  # langfuse#2218

    assert type(raw).__name__ == "LegacyAPIResponse"  # logfire#62: not mistaken for a completion
    assert raw.parse().choices[0].message.content == "You said: Say something"
    event = the_call(store)
    assert event.content == "You said: Say something"  # the data, not a stringified object (langsmith#2480)
    assert "LegacyAPIResponse" not in json.dumps(event.model_dump(mode="json"))


def test_c05_a_body_mocked_as_already_read_is_still_recorded(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    completion = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "pre-read"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    openai_api.push(lambda request: httpx.Response(200, json=completion))

    with openai_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=QUESTION
    ) as response:
        assert response.parse().choices[0].message.content == "pre-read"

    assert the_call(store).usage.input_tokens == 3
