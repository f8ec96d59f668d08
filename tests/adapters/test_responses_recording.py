"""The OpenAI Responses API: input items, function calls, server-side continuation."""

from __future__ import annotations

import json
from typing import Any

from adapter_support import calls, conversation, only_session, session_events
from pydantic import BaseModel

from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
TOOLS = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]


def test_instructions_and_input_text_are_recorded(openai_client: Any, store: Store) -> None:
    response = openai_client.responses.create(model=MODEL, instructions="Be brief.", input="Hello there")

    events = session_events(store, only_session(store))
    assert [e.content for e in events if e.type is EventType.SYSTEM_PROMPT] == ["Be brief."]
    assert conversation(events) == [("user", "Hello there"), ("assistant", response.output_text)]
    [call] = calls(events)
    assert call.metadata["endpoint"] == "responses"
    assert call.usage is not None and call.usage.input_tokens == response.usage.input_tokens
    assert call.finish_reason == "completed"


def test_a_function_call_round_trip_resent_as_items_is_not_duplicated(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(tool_calls=[("lookup", {"q": "tides"})]))
    items: list[Any] = [{"role": "user", "content": "When is high tide?"}]

    first = openai_client.responses.create(model=MODEL, input=items, tools=TOOLS)
    items += first.output  # the SDK's own output items, as the docs show
    items.append({"type": "function_call_output", "call_id": first.output[0].call_id, "output": "at 14:05"})
    second = openai_client.responses.create(model=MODEL, input=items, tools=TOOLS)
    items += second.output
    items.append({"role": "user", "content": "Thanks"})
    openai_client.responses.create(model=MODEL, input=items, tools=TOOLS)

    events = session_events(store, only_session(store))
    messages = [e for e in events if e.type is EventType.MESSAGE]
    assert [e.role for e in messages] == [
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.ASSISTANT,
        Role.USER,
        Role.ASSISTANT,
    ]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in messages[1].tool_calls] == [
        ("call_0", "lookup", {"q": "tides"})
    ]
    assert (messages[2].tool_call_id, messages[2].content) == ("call_0", "at 14:05")
    assert EventType.BRANCH not in [e.type for e in events]


def test_previous_response_id_continues_the_same_session(openai_client: Any, store: Store) -> None:
    first = openai_client.responses.create(model=MODEL, input="Remember the number 7")
    second = openai_client.responses.create(model=MODEL, input="Which number?", previous_response_id=first.id)
    openai_client.responses.create(model=MODEL, input="Double it", previous_response_id=second.id)

    events = session_events(store, only_session(store))
    assert [c for role, c in conversation(events) if role == "user"] == [
        "Remember the number 7",
        "Which number?",
        "Double it",
    ]


def test_structured_parse_is_recorded(openai_client: Any, openai_api: FakeOpenAI, store: Store) -> None:
    class Tide(BaseModel):
        port: str
        time: str

    openai_api.push(Reply(text='{"port": "Lisbon", "time": "14:05"}'))

    parsed = openai_client.responses.parse(model=MODEL, input="Next tide", text_format=Tide)

    assert parsed.output_parsed == Tide(port="Lisbon", time="14:05")
    [call] = calls(session_events(store, only_session(store)))
    assert call.content == '{"port": "Lisbon", "time": "14:05"}'


def test_reasoning_tokens_are_kept(openai_client: Any, openai_api: FakeOpenAI, store: Store) -> None:
    openai_api.push(Reply(text="42", reasoning_tokens=128, cached_tokens=16))

    openai_client.responses.create(model="o4-mini", input="Think hard")

    [call] = calls(session_events(store, only_session(store)))
    assert call.usage is not None
    assert (call.usage.reasoning_tokens, call.usage.cache_read_tokens) == (128, 16)
