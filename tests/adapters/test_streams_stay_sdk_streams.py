"""A recorded stream is the SDK's own stream: iterator, context manager, helpers, raw.

Complaint class 1 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
from adapter_support import n_calls, session_events

import sessionware
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
QUESTION = [{"role": "user", "content": "Say something"}]


# -- 1. Wrapped streams break SDK contracts ---------------------------------------------------


def test_a_stream_is_the_sdk_stream_iterator_and_context_manager(openai_client: Any, store: Store) -> None:
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


async def test_async_helpers_enter_and_exit_cleanly(
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


def test_helpers_only_see_sdk_arguments(openai_client: Any, store: Store) -> None:
    # langfuse#15018: wrapper-only kwargs rejected by the helpers. Sessions come from the scope.
    with sessionware.session("scoped"), openai_client.responses.stream(model=MODEL, input="hi") as stream:
        stream.until_done()

    assert session_events(store, "scoped")[-1].content == "You said: hi"


def test_a_raw_stream_still_parses(openai_client: Any, anthropic_client: Any) -> None:
    # opentelemetry-python-contrib#4032: `.with_raw_response.create(stream=True).parse()`.
    raw = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION, stream=True)
    assert isinstance(raw.parse(), openai.Stream)
    raw_anthropic = anthropic_client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True
    )
    assert isinstance(raw_anthropic.parse(), anthropic.Stream)
