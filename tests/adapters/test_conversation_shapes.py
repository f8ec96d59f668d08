"""Less common message shapes are recorded once, in the session's neutral form."""

from __future__ import annotations

from typing import Any

from adapter_support import calls, conversation, only_session, session_events

from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.accounting.usage import TokenSource
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}


def test_content_parts_with_images_are_diffed_like_text(openai_client: Any, store: Store) -> None:
    first = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]
    reply = openai_client.chat.completions.create(model=MODEL, messages=first)
    again = [
        *first,
        {"role": "assistant", "content": reply.choices[0].message.content},
        {"role": "user", "content": "Sure?"},
    ]
    openai_client.chat.completions.create(model=MODEL, messages=again)

    events = session_events(store, only_session(store))
    users = [e for e in events if e.role is Role.USER]
    assert [u.content for u in users] == [first[0]["content"], "Sure?"]
    assert EventType.BRANCH not in [e.type for e in events]


def test_legacy_function_messages_and_unknown_roles(openai_client: Any, store: Store) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
        {"role": "function", "name": "weather", "content": "sunny"},
        {"role": "system", "content": "Be brief from now on."},
        {"role": "narrator", "content": "ignored"},
    ]

    openai_client.chat.completions.create(model=MODEL, messages=messages)

    events = session_events(store, only_session(store))
    shapes = [(e.role, e.content) for e in events if e.type is EventType.MESSAGE]
    assert shapes[:4] == [
        (Role.USER, "Weather?"),
        (Role.ASSISTANT, None),
        (Role.TOOL, "sunny"),
        (Role.SYSTEM, "Be brief from now on."),
    ]
    assert [(c.name, c.arguments) for c in events[1].tool_calls] == [("weather", "{}")]


def test_developer_messages_and_conversations_in_responses(openai_client: Any, store: Store) -> None:
    items = [
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "custom_tool_call", "call_id": "c1", "name": "grep", "input": "needle"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "found"},
        {"role": "system", "content": "Late instruction"},
    ]

    openai_client.responses.create(model=MODEL, input=items, conversation={"id": "conv_1"})
    openai_client.responses.create(model=MODEL, input="Merci", conversation="conv_1")

    events = session_events(store, only_session(store))
    assert [e.content for e in events if e.type is EventType.SYSTEM_PROMPT] == ["Answer in French."]
    assert [(e.role, e.tool_call_id) for e in events if e.role is Role.TOOL] == [(Role.TOOL, "c1")]
    assert [c for role, c in conversation(events) if role == "user"][-1] == "Merci"


def test_anthropic_thinking_blocks_sent_back_do_not_duplicate_the_turn(
    anthropic_client: Any, anthropic_api: FakeAnthropic, store: Store
) -> None:
    first = [{"role": "user", "content": "Think, then answer"}]
    reply = anthropic_client.messages.create(model=CLAUDE, max_tokens=99, messages=first)
    thinking = {"type": "thinking", "thinking": "Let me see...", "signature": "sig"}
    blocks = [thinking, *[b.model_dump() for b in reply.content]]
    anthropic_client.messages.create(
        model=CLAUDE,
        max_tokens=99,
        messages=[*first, {"role": "assistant", "content": blocks}, {"role": "user", "content": "More"}],
    )

    events = session_events(store, only_session(store))
    assert [e.role for e in events if e.type is EventType.MESSAGE] == [
        Role.USER,
        Role.ASSISTANT,
        Role.USER,
        Role.ASSISTANT,
    ]


def test_a_huge_prompt_without_usage_is_estimated_by_length(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    import httpx

    openai_api.push(
        lambda request: httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ],
            },
        )
    )
    text = "word " * 20_000

    openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])

    [event] = calls(session_events(store, only_session(store)))
    assert event.usage is not None and event.usage.source is TokenSource.ESTIMATE
    assert event.usage.input_tokens >= len(text) // 4


def test_embeddings_read_through_a_streaming_response(openai_client: Any, store: Store) -> None:
    with openai_client.embeddings.with_streaming_response.create(
        model="text-embedding-3-small", input=["a", "b", "c"]
    ) as response:
        data = response.json()

    assert len(data["data"]) == 3
    [event] = calls(session_events(store, only_session(store)))
    assert event.metadata == {"endpoint": "embeddings", "inputs": 3}


def test_an_empty_answer_is_a_call_without_a_message(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text=""))

    openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say nothing"}])

    events = session_events(store, only_session(store))
    assert [e.type for e in events] == [EventType.MESSAGE, EventType.LLM_CALL]
