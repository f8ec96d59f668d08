"""Odd, unknown and partial stream chunks reach the app and are recorded.

Complaint class 2 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
from adapter_support import calls, session_events, sse_response, the_call

from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
QUESTION = [{"role": "user", "content": "Say something"}]


# -- 2. Stream reconstruction crashes on odd chunks -------------------------------------------


def test_odd_openai_chunks_reach_the_app_and_are_recorded(
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


def test_unknown_and_partial_events_are_tolerated(
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

    store.flush()
    contents = sorted(str(calls(session_events(store, i.id))[0].content) for i in store.list_sessions())
    assert contents == ["Hello", "Yo"]
