"""Managed mode serves the model's memory calls itself: the app only ever sees the answer.

Real SDKs over fake HTTP transports; the model is scripted (``RecallModel``) and answers
only from what it is sent, so an answer with the planted code proves the recall reached
the model, and the app's view (responses, stream chunks) proves it never saw the calls.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from adapter_support import (
    ANTHROPIC_KINDS,
    OPENAI_KINDS,
    session_events,
)
from managed_support import (
    CODE,
    QUESTION,
    App,
    RecallModel,
    last_turn,
    offered_tools,
    read_response,
    tools_allowed,
)

import sessionware
from sessionware.adapters.fakes import sse
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

CASES = [
    *((kind, "chat") for kind in OPENAI_KINDS),
    *((kind, "responses") for kind in ("OpenAI", "AsyncOpenAI")),
    *((kind, "messages") for kind in ANTHROPIC_KINDS),
]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
WEATHER_ANTHROPIC = {"name": "get_weather", "input_schema": {"type": "object"}}


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_a_memory_call_is_served_and_the_app_sees_only_the_answer(
    kind: str, endpoint: str, stream: bool, store: Store
) -> None:
    # Recall off: the builder would show the fact for the question's own words, and search
    # leaves out what the context shows; here the model's memory call is what finds it.
    app = App(kind, endpoint, RecallModel(), store, recall=False)
    await app.converse(40)
    sent_before = len(app.api.requests)

    seen = await app.probe(stream=stream)

    assert seen.text == f"The code is {CODE}."
    assert seen.calls == []
    asked, answered = app.api.requests[sent_before:]
    assert "search_pages" in offered_tools(asked)
    kind_of_last, result = last_turn(answered)
    assert kind_of_last == "tool" and CODE in result
    events = session_events(store, "s")
    [hidden] = [e for e in events if e.hidden and e.type is EventType.LLM_CALL]
    assert [c.name for c in hidden.tool_calls] == ["search_pages"] and hidden.usage is not None
    assert [e.tool_name for e in events if e.type is EventType.PAGE_FAULT] == ["search_pages"]
    final = events[-1]
    assert (final.role, final.content, final.tool_calls) == (Role.ASSISTANT, seen.text, ())
    assert final.metadata["managed"]["hidden_rounds"] == 1
    assert final.app_input_tokens is not None and final.app_input_tokens > 0
    if stream:
        assert hidden.ttft_ms is not None and final.ttft_ms is not None
        assert final.ttft_ms >= hidden.ttft_ms  # the app's first token came after the hidden round
    assert sessionware.current_session().stats().page_faults == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("kind", "endpoint"), [("OpenAI", "chat"), ("AsyncAnthropic", "messages")])
async def test_search_then_page_fault_are_both_served_in_one_turn(
    kind: str, endpoint: str, stream: bool, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(steps=("search", "fault")), store)
    await app.converse(40)

    seen = await app.probe(stream=stream)

    assert (seen.text, seen.calls) == (f"The code is {CODE}.", [])
    events = session_events(store, "s")
    assert [e.tool_name for e in events if e.type is EventType.PAGE_FAULT] == ["search_pages", "page_fault"]
    assert events[-1].metadata["managed"]["hidden_rounds"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("kind", "endpoint"), [("OpenAI", "chat"), ("Anthropic", "messages")])
async def test_mixed_memory_and_app_calls_are_resent_without_the_app_call(
    kind: str, endpoint: str, stream: bool, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(app_tool="get_weather"), store)
    await app.converse(30)
    tools = [WEATHER_ANTHROPIC if endpoint == "messages" else WEATHER]
    sent_before = len(app.api.requests)

    seen = await app.probe(stream=stream, tools=tools)

    assert seen.calls == ["get_weather"]  # the app's own call, asked again; never the memory call
    mixed, follow_up = app.api.requests[sent_before : sent_before + 2]
    assert offered_tools(mixed)[0] == "get_weather" and "search_pages" in offered_tools(mixed)
    resent = follow_up["messages"][-2]
    if endpoint == "chat":
        assert [c["function"]["name"] for c in resent["tool_calls"]] == ["search_pages"]
    else:
        assert [b["name"] for b in resent["content"] if b["type"] == "tool_use"] == ["search_pages"]
    [hidden] = [e for e in session_events(store, "s") if e.hidden and e.type is EventType.LLM_CALL]
    assert hidden.metadata["managed"]["app_calls_left_out"] == 1


@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_past_the_fault_limit_the_model_is_told_and_must_answer(
    kind: str, endpoint: str, store: Store
) -> None:
    model = RecallModel(stubborn=True)
    app = App(kind, endpoint, model, store)
    await app.converse(2)
    sent_before = len(app.api.requests)

    seen = await app.probe()

    rounds = app.api.requests[sent_before:]
    assert len(rounds) == 4  # two faults served, one refused, then the answer
    assert [tools_allowed(r) for r in rounds] == [True, True, True, False]
    assert "memory call limit reached (2 per turn)" in last_turn(rounds[-1])[1]
    assert (seen.text, seen.calls) == ("I do not have it.", [])  # the answer, after all
    final = session_events(store, "s")[-1]
    assert final.metadata["managed"]["hidden_rounds"] == 3 and final.tool_calls == ()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_a_memory_call_that_ignores_tool_choice_never_reaches_the_app(
    kind: str, endpoint: str, stream: bool, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(stubborn=True, ignore_tool_choice=True), store)
    app.history.append({"role": "user", "content": "hello"})

    seen = await app.ask(stream=stream)

    assert seen.calls == []
    final = session_events(store, "s")[-1]
    assert final.tool_calls == () and final.metadata["managed"]["memory_calls_left_out"] == 1
    assert final.finish_reason in ("stop", "end_turn", "completed")


@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_a_short_preamble_before_a_memory_call_stays_hidden_in_streams(
    kind: str, endpoint: str, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(preamble="Let me check my notes."), store)
    await app.converse(30)

    seen = await app.probe(stream=True)

    assert (seen.text, seen.calls) == (f"The code is {CODE}.", [])


def test_a_provider_error_while_reading_ahead_reaches_the_app_where_it_would_have(store: Store) -> None:
    app = App("OpenAI", "chat", RecallModel(), store)
    chunk = {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
    }
    body = sse([chunk, {"error": {"message": "overloaded", "type": "server_error"}}])
    app.api.push(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    app.history.append({"role": "user", "content": "hello"})

    stream = app.client.chat.completions.create(model="gpt-4o-mini", messages=app.history, stream=True)
    iterator = iter(stream)
    assert next(iterator).choices[0].delta.content == "Hel"
    with pytest.raises(openai.APIError, match="overloaded"):
        next(iterator)
    final = session_events(store, "s")[-1]
    assert final.error is not None and final.error.type == "APIError"


def test_raw_responses_get_hidden_rounds_and_raw_streams_get_no_memory_tools(store: Store) -> None:
    app = App("OpenAI", "chat", RecallModel(), store)
    app.history.append({"role": "user", "content": QUESTION})

    raw = app.client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=app.history)
    assert raw.parse().choices[0].message.tool_calls is None
    assert len(app.api.requests) == 2

    with app.client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=app.history, stream=True
    ) as response:
        text = "".join(response.iter_lines())
    assert "search_pages" not in offered_tools(app.api.requests[-1])
    assert "page_fault" not in text
    sent = json.dumps(app.api.requests[-1])
    assert "VM:RULES" in sent  # still the managed context, only without memory tools


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
async def test_the_sdk_stream_helpers_show_only_the_final_pass(
    kind: str, endpoint: str, store: Store
) -> None:
    app = App(kind, endpoint, RecallModel(), store)
    await app.converse(30)
    app.history.append({"role": "user", "content": QUESTION})
    if endpoint == "chat":
        manager = app.client.chat.completions.stream(
            model="gpt-4o-mini", messages=[{"role": "system", "content": "Be brief."}, *app.history]
        )
    else:
        manager = app.client.responses.stream(model="gpt-4o-mini", input=app.history)

    if app.is_async:
        async with manager as stream:
            kinds = [event.type async for event in stream]
            final = await (
                stream.get_final_completion() if endpoint == "chat" else stream.get_final_response()
            )
    else:
        with manager as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_completion() if endpoint == "chat" else stream.get_final_response()

    seen = read_response(endpoint, final)
    assert (seen.text, seen.calls) == (f"The code is {CODE}.", [])
    assert not any("tool_call" in k or "function_call" in k for k in kinds)


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
async def test_every_streamed_round_reports_usage_the_app_did_not_ask_for(kind: str, store: Store) -> None:
    app = App(kind, "chat", RecallModel(), store)
    app.client = app.client.with_options(base_url="https://api.openai.com/v1")  # accepts stream_options
    await app.converse(30)
    sent_before = len(app.api.requests)

    seen = await app.probe(stream=True)

    assert seen.text == f"The code is {CODE}."
    rounds = app.api.requests[sent_before:]
    assert [r["stream_options"] for r in rounds] == [{"include_usage": True}] * 2
    events = session_events(store, "s")
    hidden = [e for e in events if e.hidden and e.type is EventType.LLM_CALL][-1]
    final = events[-1]
    assert hidden.usage is not None and hidden.usage.source.value == "provider"
    assert final.usage is not None and final.usage.source.value == "provider"
