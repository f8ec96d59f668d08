"""A stream's usage is recorded without the app asking, or estimated and labelled.

Complaint class 3 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

from typing import Any

import httpx
from adapter_support import sse_response, the_call

from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.accounting.usage import TokenSource
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Say something"}]


# -- 3. Usage missing for streams ------------------------------------------------------------


def test_stream_usage_is_there_without_the_app_asking(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text="Sure", tool_calls=[("search", {"q": "x"})], cached_tokens=4))

    chunks = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert all(len(c.choices) == 1 for c in chunks)  # `chunk.choices[0]` code keeps working
    event = the_call(store)
    assert event.usage is not None and event.usage.source is TokenSource.PROVIDER
    assert event.usage.cache_read_tokens == 4
    assert [c.name for c in event.tool_calls] == ["search"]  # logfire#542


def test_a_stream_without_usage_gets_a_labelled_estimate(
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
