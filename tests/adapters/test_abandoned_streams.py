"""A stream the app drops before its end is recorded exactly once.

Complaint class 4 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from adapter_support import n_calls, the_call

from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Say something"}]
LONG = Reply(text="one two three four five six")


# -- 4. Records lost when a stream is abandoned -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("leave", ["break", "close", "gc"])
def test_an_abandoned_stream_is_recorded_exactly_once(
    leave: str, openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(LONG)

    def consume() -> None:
        stream = openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
        for _ in stream:
            break
        if leave == "close":
            stream.close()
            stream.close()

    consume()  # the stream object goes out of scope here
    gc.collect()

    assert n_calls(store) == 1
    assert the_call(store).metadata["incomplete"] is True
