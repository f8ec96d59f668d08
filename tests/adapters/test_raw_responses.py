"""``with_raw_response`` and ``with_streaming_response``: recorded, never consumed for the app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
from adapter_support import calls, make_openai, only_session, session_events

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.accounting.usage import TokenSource
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
QUESTION = [{"role": "user", "content": "Raw, please"}]


def the_call(store: Store) -> Any:
    [event] = calls(session_events(store, only_session(store)))
    return event


def test_with_raw_response_returns_the_raw_object_and_records_the_parsed_data(
    openai_client: Any, store: Store
) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)

    assert raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: Raw, please"
    event = the_call(store)
    assert event.content == completion.choices[0].message.content
    assert event.usage is not None and event.usage.input_tokens == completion.usage.prompt_tokens


async def test_async_with_raw_response_works(async_openai_client: Any, store: Store) -> None:
    raw = await async_openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)

    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: Raw, please"
    assert the_call(store).content == completion.choices[0].message.content


def test_a_raw_stream_parses_into_a_recording_sdk_stream(openai_client: Any, store: Store) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION, stream=True)

    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)

    assert text == "You said: Raw, please"
    event = the_call(store)
    assert event.content == text
    assert (
        event.usage is not None and event.usage.source is TokenSource.ESTIMATE
    )  # the app's body is untouched


def test_with_streaming_response_is_recorded_after_the_app_reads_it(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text="Streamed body", cached_tokens=2))

    with openai_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=QUESTION
    ) as response:
        store.flush()
        assert store.list_sessions()[0].totals.llm_calls == 0  # nothing read yet, nothing recorded
        body = response.json()

    assert body["choices"][0]["message"]["content"] == "Streamed body"
    event = the_call(store)
    assert event.content == "Streamed body"
    assert event.usage is not None and event.usage.cache_read_tokens == 2


def test_a_streamed_sse_body_is_recorded_from_the_lines_the_app_read(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text="Line by line", tool_calls=[("f", {"x": 1})]))

    with openai_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=QUESTION, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    assert "stream_options" not in openai_api.requests[0]
    event = the_call(store)
    assert event.content == "Line by line"
    assert [(c.name, json.loads(c.arguments)) for c in event.tool_calls] == [("f", {"x": 1})]
    assert event.ttft_ms is not None


def test_a_streaming_response_closed_unread_is_recorded_as_closed(openai_client: Any, store: Store) -> None:
    with openai_client.chat.completions.with_streaming_response.create(model=MODEL, messages=QUESTION):
        pass

    event = the_call(store)
    assert event.metadata["end"] == "closed"
    assert event.content is None


async def test_async_with_streaming_response_parse(async_openai_client: Any, store: Store) -> None:
    async with async_openai_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=QUESTION
    ) as response:
        completion = await response.parse()

    assert the_call(store).content == completion.choices[0].message.content


def test_anthropic_raw_and_streaming_responses_are_recorded(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    raw = anthropic_client.messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=QUESTION)
    message = raw.parse()
    with anthropic_client.messages.with_streaming_response.create(
        model=CLAUDE,
        max_tokens=64,
        messages=[
            *QUESTION,
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": "Again"},
        ],
        stream=True,
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("event:")]

    assert events[0] == "event: message_start"
    recorded = calls(session_events(store, only_session(store)))
    assert [e.content for e in recorded] == ["You said: Raw, please", "You said: Again"]
    assert recorded[1].usage is not None and recorded[1].usage.source is TokenSource.PROVIDER


# -- Complaint class 5 of section (c) of adapter_anchors.md: with_raw_response crashes or is recorded as junk


def test_raw_responses_are_recorded_from_their_data(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)

    async def run() -> Any:
        return await client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)

    raw = asyncio.run(run())  # langfuse#2218

    assert type(raw).__name__ == "LegacyAPIResponse"  # logfire#62: not mistaken for a completion
    assert raw.parse().choices[0].message.content == "You said: Raw, please"
    event = the_call(store)
    assert event.content == "You said: Raw, please"  # the data, not a stringified object (langsmith#2480)
    assert "LegacyAPIResponse" not in json.dumps(event.model_dump(mode="json"))


def test_a_body_mocked_as_already_read_is_still_recorded(
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
