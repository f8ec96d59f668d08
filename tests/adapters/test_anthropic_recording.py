"""What an Anthropic Messages call leaves in its session."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from adapter_support import calls, conversation, only_session, session_events

from sessionware.adapters.fakes import FakeAnthropic, Reply
from sessionware.core.defaults import default_price_book
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

CLAUDE = "claude-haiku-4-5-20251001"
TOOLS = [
    {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
]


def ask(client: Any, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=256, messages=messages, **kwargs)


def test_cache_reads_and_writes_are_folded_into_input(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    anthropic_api.push(Reply(text="Hi", cached_tokens=1000, cache_write_tokens=200))

    message = ask(anthropic_client, [{"role": "user", "content": "Hello"}], system="You are terse.")

    [event] = calls(session_events(store, only_session(store)))
    usage = message.usage
    assert event.usage is not None
    assert event.usage.input_tokens == usage.input_tokens + 1000 + 200
    assert (event.usage.cache_read_tokens, event.usage.cache_write_tokens) == (1000, 200)
    assert event.usage.output_tokens == usage.output_tokens
    assert event.cost == default_price_book().cost(CLAUDE, event.usage, "anthropic")
    assert event.provider == "anthropic" and event.model == CLAUDE


def test_a_tool_use_round_trip_is_recorded_in_conversation_order(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    anthropic_api.push(
        Reply(text="Let me check.", tool_calls=[("get_weather", {"city": "Lisbon", "days": 2})])
    )
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Lisbon?"}]

    first = ask(anthropic_client, history, tools=TOOLS)
    tool_use = first.content[1]
    history += [
        {"role": "assistant", "content": first.content},  # the SDK's own block objects, as apps do
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 24 C"},
                {"type": "text", "text": "Is that warm?"},
            ],
        },
    ]
    ask(anthropic_client, history, tools=TOOLS)

    events = session_events(store, only_session(store))
    messages = [e for e in events if e.type is EventType.MESSAGE]
    assert [(e.role, e.content if e.role is not Role.ASSISTANT else e.text) for e in messages] == [
        (Role.USER, "Weather in Lisbon?"),
        (Role.ASSISTANT, "Let me check."),
        (Role.TOOL, "Sunny, 24 C"),
        (Role.USER, [{"type": "text", "text": "Is that warm?"}]),
        (Role.ASSISTANT, "You said: Is that warm?"),
    ]
    asking = messages[1]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in asking.tool_calls] == [
        ("toolu_0", "get_weather", {"city": "Lisbon", "days": 2})
    ]
    assert messages[2].tool_call_id == "toolu_0"
    assert asking.finish_reason == "tool_use"


def test_a_system_prompt_change_is_recorded_once(anthropic_client: Any, store: Store) -> None:
    history = [{"role": "user", "content": "Hi"}]
    ask(anthropic_client, history, system=[{"type": "text", "text": "Be kind."}])
    ask(anthropic_client, history, system=[{"type": "text", "text": "Be kind."}])
    ask(anthropic_client, history, system="Be brief.")

    store.flush()
    sessions = store.list_sessions()
    assert len(sessions) == 2  # the opening changed, so a second conversation
    for info in sessions:
        prompts = [e.content for e in session_events(store, info.id) if e.type is EventType.SYSTEM_PROMPT]
        assert prompts == [info.system_prompt]


def test_beta_messages_are_recorded(anthropic_client: Any, store: Store) -> None:
    anthropic_client.beta.messages.create(
        model=CLAUDE,
        max_tokens=64,
        messages=[{"role": "user", "content": "Beta?"}],
        betas=["context-1m-2025-08-07"],
    )

    assert conversation(session_events(store, only_session(store))) == [
        ("user", "Beta?"),
        ("assistant", "You said: Beta?"),
    ]


def test_a_refusal_is_marked(anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store) -> None:
    anthropic_api.push(Reply(text="I can't help with that.", refusal=""))

    ask(anthropic_client, [{"role": "user", "content": "Something unsafe"}])

    [event] = calls(session_events(store, only_session(store)))
    assert event.finish_reason == "refusal"
    assert event.metadata["refusal"] is True
    assert event.content == "I can't help with that."


async def test_async_client_errors_are_reraised_and_recorded(
    async_anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    anthropic_api.push(Reply(status=529, error="Overloaded"))

    with pytest.raises(anthropic.APIStatusError) as caught:
        await async_anthropic_client.messages.create(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.status_code == 529
    [event] = calls(session_events(store, only_session(store)))
    assert event.error is not None and event.error.status_code == 529


def test_count_tokens_is_not_a_call_to_record(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    import httpx2

    anthropic_api.push(lambda request: httpx2.Response(200, json={"input_tokens": 7}))

    count = anthropic_client.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])

    assert count.input_tokens == 7
    store.flush()
    assert store.list_sessions() == []
