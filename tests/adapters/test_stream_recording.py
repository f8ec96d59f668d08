"""Streams stay SDK streams and are recorded exactly once, however they end."""

from __future__ import annotations

import gc
import json
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from adapter_support import calls, conversation, make_openai, only_session, session_events

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply, sse
from sessionware.core.accounting.usage import TokenSource
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
QUESTION = [{"role": "user", "content": "Tell me about the sea"}]
LONG = Reply(text="The sea is large and deep and blue and full of fish")


def the_call(store: Store) -> Any:
    [event] = calls(session_events(store, only_session(store)))
    return event


# -- OpenAI chat ----------------------------------------------------------------------------


def test_a_read_stream_is_recorded_once_with_usage_the_app_never_asked_for(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    stream = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    chunks = list(stream)
    stream.close()
    del stream
    gc.collect()

    assert all(chunk.choices for chunk in chunks)  # no usage-only chunk reaches the app
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == LONG.text
    assert openai_api.requests[0]["stream_options"] == {"include_usage": True}
    event = the_call(store)
    assert event.content == LONG.text
    assert event.usage is not None and event.usage.source is TokenSource.PROVIDER
    assert event.usage.output_tokens > 0
    assert event.ttft_ms is not None and 0 < event.ttft_ms <= event.latency_ms
    assert event.metadata == {"endpoint": "chat.completions", "stream": True, "response_id": "chatcmpl-fake"}


def test_usage_the_app_asked_for_stays_visible(openai_client: Any, store: Store) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model=MODEL, messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert the_call(store).usage.input_tokens == chunks[-1].usage.prompt_tokens


def test_streamed_tool_call_deltas_are_assembled(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(
        Reply(text="Checking.", tool_calls=[("get_weather", {"city": "Lisbon"}), ("get_time", {})])
    )

    list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    event = the_call(store)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in event.tool_calls] == [
        ("call_0", "get_weather", {"city": "Lisbon"}),
        ("call_1", "get_time", {}),
    ]
    assert event.finish_reason == "tool_calls"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["close", "with", "abandon"])
def test_a_stream_left_early_records_its_partial_output(
    how: str, openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    stream = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    if how == "with":
        with stream:
            next(stream)
            next(stream)
    else:
        next(stream)
        next(stream)
        if how == "close":
            stream.close()
    del stream
    gc.collect()

    event = the_call(store)
    assert event.content == "The "
    assert event.metadata["incomplete"] is True
    assert event.metadata["end"] == {"close": "closed", "with": "closed", "abandon": "abandoned"}[how]
    assert event.usage is not None and event.usage.source is TokenSource.ESTIMATE
    assert event.usage.input_tokens > 0 and event.usage.output_tokens > 0


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
async def test_reads_right_after_a_partly_read_stream_is_collected_include_it(
    kind: str, openai_api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(make_openai(kind, openai_api), store=store)
    openai_api.push(LONG)
    with sessionware.session("sea") as handle:
        if kind == "OpenAI":
            stream = client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
            next(stream)
            next(stream)
        else:
            stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
            await anext(stream)  # (``aiter()`` would wrap it in a generator the loop closes later)
        del stream
        gc.collect()
        # No settle(), no wait: the read itself applies the abandoned stream first.
        stats = handle.stats()
        assert stats.llm_calls == 1
    event = the_call(store)
    assert event.metadata["end"] == "abandoned"


def test_an_error_in_the_middle_of_a_stream_is_recorded_and_reraised(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    first = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "Partial"}, "finish_reason": None}
        ],
    }
    failure = {"error": {"message": "The server had an error", "type": "server_error"}}
    body = sse([first, failure])
    openai_api.push(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )

    stream = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    with pytest.raises(openai.APIError, match="The server had an error"):
        for _ in stream:
            pass

    event = the_call(store)
    assert event.content == "Partial"
    assert event.error is not None and event.error.type == "APIError"
    assert event.metadata["end"] == "error"


async def test_async_streams_are_sdk_streams_and_record_once(async_openai_client: Any, store: Store) -> None:
    stream = await async_openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)

    assert isinstance(stream, openai.AsyncStream)
    assert isinstance(stream.response, httpx.Response)
    async with stream:
        texts = [chunk.choices[0].delta.content async for chunk in stream]
    await stream.close()

    assert "".join(t or "" for t in texts) == "You said: Tell me about the sea"
    event = the_call(store)
    assert event.usage is not None and event.usage.source is TokenSource.PROVIDER
    assert "incomplete" not in event.metadata


async def test_an_async_stream_closed_early_is_recorded_as_closed(
    async_openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    stream = await async_openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    async for _ in stream:
        break
    await stream.close()

    assert the_call(store).metadata["end"] == "closed"


def test_the_chat_stream_helper_keeps_its_events_and_final_completion(
    openai_client: Any, store: Store
) -> None:
    with openai_client.chat.completions.stream(model=MODEL, messages=QUESTION) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()

    assert kinds[0] == "chunk" and "content.done" in kinds
    assert final.choices[0].message.content == "You said: Tell me about the sea"
    assert final.usage is None  # the app did not ask for usage; the helper does not see ours
    assert the_call(store).usage.source is TokenSource.PROVIDER


def test_leaving_the_chat_stream_helper_early_is_recorded(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    with openai_client.chat.completions.stream(model=MODEL, messages=QUESTION) as stream:
        for event in stream:
            if event.type == "content.delta":
                break

    assert the_call(store).metadata["end"] == "closed"


async def test_the_async_chat_stream_helper_works(async_openai_client: Any, store: Store) -> None:
    async with async_openai_client.chat.completions.stream(model=MODEL, messages=QUESTION) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()

    assert final.choices[0].message.content == "You said: Tell me about the sea"
    assert the_call(store).content == final.choices[0].message.content


def test_no_usage_on_an_unknown_openai_compatible_server_is_estimated(
    openai_api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(
        make_openai("OpenAI", openai_api, base_url="http://localhost:8000/v1"), store=store
    )

    list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert "stream_options" not in openai_api.requests[0]
    event = the_call(store)
    assert event.usage is not None and event.usage.source is TokenSource.ESTIMATE
    assert event.usage.output_tokens > 0


# -- OpenAI Responses ----------------------------------------------------------------------


def test_the_responses_stream_helper_records_the_final_response(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text="Ahoy", tool_calls=[("lookup", {"q": "sea"})], cached_tokens=3))

    with openai_client.responses.stream(model=MODEL, input="Tell me about the sea") as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_response()

    assert "response.output_text.delta" in kinds and "response.completed" in kinds
    event = the_call(store)
    assert event.content == final.output_text == "Ahoy"
    assert [(c.id, c.name) for c in event.tool_calls] == [("call_0", "lookup")]
    assert event.usage is not None and event.usage.cache_read_tokens == 3
    assert event.ttft_ms is not None


def test_a_responses_stream_cut_short_keeps_its_deltas(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    stream = openai_client.responses.create(model=MODEL, input="Tell me", stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    stream.close()

    event = the_call(store)
    assert event.content == "The "
    assert event.metadata["end"] == "closed"
    assert event.usage is not None and event.usage.source is TokenSource.ESTIMATE


# -- Anthropic -------------------------------------------------------------------------------


def test_the_anthropic_stream_helper_keeps_text_stream_and_final_message(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    anthropic_api.push(Reply(text="Waves", tool_calls=[("tide", {"port": "Lisbon"})], cached_tokens=5))

    with anthropic_client.messages.stream(model=CLAUDE, max_tokens=100, messages=QUESTION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert isinstance(stream, anthropic.lib.streaming.MessageStream)
    assert text == "Waves"
    event = the_call(store)
    assert event.content == "Waves"
    assert [(c.id, c.name, c.arguments) for c in event.tool_calls] == [
        ("toolu_0", "tide", '{"port":"Lisbon"}')
    ]
    assert event.finish_reason == final.stop_reason == "tool_use"
    usage = final.usage
    assert event.usage is not None
    assert event.usage.input_tokens == usage.input_tokens + 5
    assert event.usage.cache_read_tokens == 5
    assert event.usage.output_tokens == usage.output_tokens


async def test_the_async_beta_stream_manager_works_with_async_with(
    async_anthropic_client: Any, store: Store
) -> None:
    manager = async_anthropic_client.beta.messages.stream(model=CLAUDE, max_tokens=100, messages=QUESTION)
    async with manager as stream:
        chunks = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    assert "".join(chunks) == final.content[0].text
    assert the_call(store).content == final.content[0].text


def test_a_raw_anthropic_stream_is_an_sdk_stream(anthropic_client: Any, store: Store) -> None:
    stream = anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=QUESTION, stream=True)

    assert isinstance(stream, anthropic.Stream)
    assert isinstance(stream.response, httpx2.Response)
    kinds = [event.type for event in stream]

    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert the_call(store).metadata == {"endpoint": "messages", "stream": True, "response_id": "msg_fake"}


def test_leaving_an_anthropic_stream_early_records_once(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    anthropic_api.push(LONG)

    with anthropic_client.messages.stream(model=CLAUDE, max_tokens=100, messages=QUESTION) as stream:
        for _ in stream.text_stream:
            break
    del stream
    gc.collect()

    event = the_call(store)
    assert event.content == "The "
    assert event.metadata["end"] == "closed"
    assert event.usage is not None and event.usage.input_tokens > 0  # message_start already told us


def test_an_anthropic_stream_error_event_is_recorded_and_reraised(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    }
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    body = sse([start, error], named=True)
    anthropic_api.push(
        lambda request: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )

    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):  # noqa: PT012
        with anthropic_client.messages.stream(model=CLAUDE, max_tokens=100, messages=QUESTION) as stream:
            stream.until_done()

    event = the_call(store)
    assert event.error is not None and "Overloaded" in event.error.message
    assert event.usage is not None and event.usage.input_tokens == 12  # as far as the stream told


def test_every_stream_path_of_one_conversation_lands_in_one_session(openai_client: Any, store: Store) -> None:
    history = [{"role": "user", "content": "first"}]
    text = "".join(
        c.choices[0].delta.content or ""
        for c in openai_client.chat.completions.create(model=MODEL, messages=history, stream=True)
    )
    history += [{"role": "assistant", "content": text}, {"role": "user", "content": "second"}]
    with openai_client.chat.completions.stream(model=MODEL, messages=history) as stream:
        stream.until_done()

    assert conversation(session_events(store, only_session(store))) == [
        ("user", "first"),
        ("assistant", "You said: first"),
        ("user", "second"),
        ("assistant", "You said: second"),
    ]


def test_a_dropped_anthropic_stream_is_recorded_as_abandoned(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    anthropic_api.push(LONG)

    stream = anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=QUESTION, stream=True)
    for _ in stream:
        break
    del stream  # no reference cycle: gone right here, not at the next collection

    event = the_call(store)
    assert event.metadata["end"] == "abandoned"
    assert event.usage is not None and event.usage.input_tokens > 0


@pytest.mark.parametrize(("api_version", "asked"), [("2024-10-21", True), ("2024-02-01", False)])
def test_azure_streams_ask_for_usage_only_where_the_api_version_accepts_it(
    api_version: str, asked: bool, openai_api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(make_openai("AzureOpenAI", openai_api, api_version=api_version), store=store)

    chunks = list(client.chat.completions.create(model="my-gpt4o-deployment", messages=QUESTION, stream=True))

    assert all(chunk.choices for chunk in chunks)
    assert ("stream_options" in openai_api.requests[0]) is asked
    event = the_call(store)
    assert event.provider == "azure"
    assert event.usage is not None
    assert event.usage.source is (TokenSource.PROVIDER if asked else TokenSource.ESTIMATE)


# -- OpenAI chat chunk shapes of other servers ---------------------------------------------


def _chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-shapes",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def _stream_client(events: list[dict[str, Any]], store: Store) -> Any:
    body = sse(events, done=True)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return sessionware.wrap(
        openai.OpenAI(api_key="test", http_client=httpx.Client(transport=httpx.MockTransport(handle))),
        store=store,
    )


def test_a_stream_of_two_choices_records_choice_zero_only(store: Store) -> None:
    events = [
        _chunk(0, {"role": "assistant", "content": ""}),
        _chunk(0, {"content": "Zero "}),
        _chunk(1, {"role": "assistant", "content": ""}),
        _chunk(1, {"content": "One "}),
        _chunk(0, {"content": "again"}),
        _chunk(1, {"content": "again"}),
        _chunk(0, {}, "stop"),
        _chunk(1, {}, "stop"),
    ]
    client = _stream_client(events, store)

    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True, n=2))

    assert len(chunks) == len(events)
    event = the_call(store)
    assert event.content == "Zero again" and event.finish_reason == "stop"


def test_a_finish_reason_and_usage_on_the_last_text_chunk_are_recorded(store: Store) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    events = [
        _chunk(0, {"role": "assistant", "content": ""}),
        _chunk(0, {"content": "Deep "}),
        _chunk(0, {"content": "and "}),
        _chunk(0, {"content": "blue"}, "length", usage=usage),
    ]
    client = _stream_client(events, store)

    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    )

    assert text == "Deep and blue"
    event = the_call(store)
    assert event.content == "Deep and blue" and event.finish_reason == "length"
    assert event.usage is not None and event.usage.source is TokenSource.PROVIDER
    assert (event.usage.input_tokens, event.usage.output_tokens) == (12, 3)
