"""What an OpenAI call leaves in its session: messages diffed, output, usage, cost, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from adapter_support import calls, conversation, make_openai, only_session, session_events
from pydantic import BaseModel

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.defaults import default_price_book
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def chat(client: Any, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=messages, **kwargs)


def test_usage_cost_model_and_timing_are_recorded_as_reported(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(
        Reply(text="Lisbon.", model="gpt-4o-mini-2024-07-18", cached_tokens=8, reasoning_tokens=2)
    )

    reply = chat(openai_client, [{"role": "user", "content": "Capital of Portugal?"}])

    [event] = calls(session_events(store, only_session(store)))
    usage = reply.usage
    assert event.usage == TokenUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=8,
        reasoning_tokens=2,
        source=TokenSource.PROVIDER,
    )
    assert event.model == "gpt-4o-mini-2024-07-18"
    assert event.cost == default_price_book().cost("gpt-4o-mini-2024-07-18", event.usage, "openai")
    assert event.finish_reason == "stop"
    assert event.latency_ms is not None and event.latency_ms > 0
    assert event.ttft_ms is None
    assert event.metadata == {
        "endpoint": "chat.completions",
        "response_id": "chatcmpl-fake",
        "service_tier": "default",
    }


def test_only_messages_the_session_has_not_seen_are_recorded(openai_client: Any, store: Store) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for question in ("One?", "Two?", "Three?"):
        history.append({"role": "user", "content": question})
        reply = chat(openai_client, history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    chat(openai_client, history[:-1])  # a retry of the last turn: nothing new to record

    events = session_events(store, only_session(store))
    assert conversation(events)[:6] == [
        ("user", "One?"),
        ("assistant", "You said: One?"),
        ("user", "Two?"),
        ("assistant", "You said: Two?"),
        ("user", "Three?"),
        ("assistant", "You said: Three?"),
    ]
    assert [e.type for e in events].count(EventType.SYSTEM_PROMPT) == 1


def test_an_edited_history_becomes_a_branch(openai_client: Any, store: Store) -> None:
    first = [{"role": "user", "content": "Plan a trip"}]
    reply = chat(openai_client, first)
    history = [
        *first,
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "user", "content": "To Rome"},
    ]
    chat(openai_client, history)

    edited = [*history[:2], {"role": "user", "content": "To Oslo"}]
    chat(openai_client, edited)

    events = session_events(store, only_session(store))
    branch = next(e for e in events if e.type is EventType.BRANCH)
    assistant_seq = next(e.seq for e in events if e.content == "You said: Plan a trip")
    assert branch.branch_of == assistant_seq
    handle = sessionware.current_session()
    assert handle is not None
    assert [m["content"] for m in handle.messages()] == [
        "Plan a trip",
        "You said: Plan a trip",
        "To Oslo",
        "You said: To Oslo",
    ]


def test_regenerating_the_last_answer_branches_without_duplicating(openai_client: Any, store: Store) -> None:
    question = [{"role": "user", "content": "Name a colour"}]
    chat(openai_client, question)
    chat(openai_client, question)

    events = session_events(store, only_session(store))
    assert [e.role for e in events if e.role is Role.USER] == [Role.USER]
    assert [e.type for e in events].count(EventType.BRANCH) == 1
    assert len(calls(events)) == 2


def test_a_sliding_window_of_history_is_not_recorded_twice(openai_client: Any, store: Store) -> None:
    with sessionware.session("window"):
        history: list[dict[str, Any]] = []
        for turn in range(6):
            history.append({"role": "user", "content": f"turn {turn}"})
            reply = chat(openai_client, history[-4:])  # the app keeps its last four messages
            history.append({"role": "assistant", "content": reply.choices[0].message.content})

    events = session_events(store, "window")
    users = [c for role, c in conversation(events) if role == "user"]
    assert users == [f"turn {t}" for t in range(6)]
    assert EventType.BRANCH not in [e.type for e in events]


def test_tool_calls_and_tool_results_are_recorded(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(
        Reply(tool_calls=[("get_weather", {"city": "Lisbon"}), ("get_weather", {"city": "Porto"})])
    )
    question = [{"role": "user", "content": "Weather in Lisbon and Porto?"}]

    reply = chat(openai_client, question, tools=[WEATHER_TOOL])
    message = reply.choices[0].message
    results = [
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "clear"})}
        for call in message.tool_calls
    ]
    chat(openai_client, [*question, message.model_dump(exclude_none=True), *results], tools=[WEATHER_TOOL])

    events = session_events(store, only_session(store))
    asking = next(e for e in events if e.tool_calls)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in asking.tool_calls] == [
        ("call_0", "get_weather", {"city": "Lisbon"}),
        ("call_1", "get_weather", {"city": "Porto"}),
    ]
    assert asking.finish_reason == "tool_calls"
    assert asking.content is None
    tool_messages = [e for e in events if e.role is Role.TOOL]
    assert [(e.tool_call_id, e.content) for e in tool_messages] == [
        ("call_0", '{"sky": "clear"}'),
        ("call_1", '{"sky": "clear"}'),
    ]
    handle = sessionware.current_session()
    assert handle is not None and handle.stats().tool_calls == 2


def test_a_refusal_is_recorded_as_the_answer(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(refusal="I can't help with that."))

    chat(openai_client, [{"role": "user", "content": "Something unsafe"}])

    [event] = calls(session_events(store, only_session(store)))
    assert event.content == "I can't help with that."
    assert event.metadata["refusal"] is True


def test_structured_output_parse_is_recorded(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    class City(BaseModel):
        name: str
        country: str

    openai_api.push(Reply(text='{"name": "Lisbon", "country": "Portugal"}'))

    parsed = openai_client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "A capital"}], response_format=City
    )

    assert parsed.choices[0].message.parsed == City(name="Lisbon", country="Portugal")
    [event] = calls(session_events(store, only_session(store)))
    assert event.content == '{"name": "Lisbon", "country": "Portugal"}'


class _SpyOpenAI(openai.OpenAI):
    """The real client, noting what its own request method raised."""

    raised: list[BaseException]

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().request(*args, **kwargs)
        except BaseException as exc:
            self.raised.append(exc)
            raise


def test_provider_errors_reach_the_app_unchanged_and_are_recorded(
    openai_api: FakeOpenAI, store: Store
) -> None:
    client = _SpyOpenAI(
        api_key="k", max_retries=0, http_client=httpx.Client(transport=openai_api.transport())
    )
    client.raised = []
    sessionware.wrap(client, store=store, session_id="errors")
    openai_api.push(Reply(status=429, error="Rate limit reached"))

    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, [{"role": "user", "content": "Hello?"}])

    assert caught.value is client.raised[0]
    assert isinstance(caught.value.__context__, httpx.HTTPStatusError)  # the SDK's own chain, nothing of ours
    events = session_events(store, "errors")
    assert conversation(events) == [("user", "Hello?")]
    [failure] = calls(events)
    assert failure.type is EventType.LLM_CALL
    assert failure.error is not None
    assert (failure.error.type, failure.error.status_code) == ("RateLimitError", 429)
    assert "Rate limit reached" in failure.error.message
    assert failure.usage is None and failure.model == MODEL


async def test_async_errors_are_recorded_and_reraised(
    async_openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(status=500))

    with pytest.raises(openai.InternalServerError):
        await async_openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )

    [failure] = calls(session_events(store, only_session(store)))
    assert failure.error is not None and failure.error.status_code == 500


def test_embeddings_record_usage_and_cost_only(openai_client: Any, store: Store) -> None:
    with sessionware.session("rag"):
        openai_client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta gamma"])

    events = session_events(store, "rag")
    [event] = events
    assert event.type is EventType.LLM_CALL and event.role is None
    assert event.model == "text-embedding-3-small"
    assert event.usage is not None and event.usage.output_tokens == 0


def test_unknown_endpoints_pass_through_untouched(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(lambda request: httpx.Response(200, json={"object": "list", "data": []}))

    page = openai_client.models.list()

    assert list(page) == []
    store.flush()
    assert store.list_sessions() == []


def test_a_long_conversation_records_each_message_once(openai_client: Any, store: Store) -> None:
    history: list[dict[str, Any]] = []
    for turn in range(30):
        history.append({"role": "user", "content": f"message {turn}"})
        reply = chat(openai_client, history)
        history.append(reply.choices[0].message.model_dump(exclude_none=True))

    events = session_events(store, only_session(store))
    assert len([e for e in events if e.type is EventType.MESSAGE]) == 60
    assert len(calls(events)) == 30


def test_async_calls_record_the_same_way(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store, session_id="a")

    async def run() -> None:
        history = [{"role": "user", "content": "first"}]
        reply = await client.chat.completions.create(model=MODEL, messages=history)
        history += [
            reply.choices[0].message.model_dump(exclude_none=True),
            {"role": "user", "content": "second"},
        ]
        await client.chat.completions.create(model=MODEL, messages=history)

    asyncio.run(run())

    assert conversation(session_events(store, "a")) == [
        ("user", "first"),
        ("assistant", "You said: first"),
        ("user", "second"),
        ("assistant", "You said: second"),
    ]
