"""Each call is recorded once: under other wrappers, nested or suppressed calls, on every path.

Complaint classes 6, 9 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
import wrapt
from adapter_support import make_openai, n_calls, the_call

import sessionware
from sessionware.adapters.engine.funnel import suppress_recording
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.core.store import Store

MODEL = "gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Say something"}]


# -- 6. Double instrumentation -------------------------------------------------------------------


def test_another_class_level_wrapper_does_not_double_count(openai_client: Any, store: Store) -> None:
    seen: list[str] = []

    def other_tracer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(kwargs["model"])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(openai.resources.chat.completions.Completions, "create", other_tracer)
    try:
        openai_client.chat.completions.create(model=MODEL, messages=QUESTION)
    finally:
        original = openai.resources.chat.completions.Completions.create
        openai.resources.chat.completions.Completions.create = original.__wrapped__

    assert seen == [MODEL]
    assert n_calls(store) == 1


def test_a_library_that_patches_the_funnel_after_us_keeps_working(openai_client: Any, store: Store) -> None:
    ours = openai_client.request
    spans: list[str] = []

    def logfire_like(cast_to: Any, options: Any, **kwargs: Any) -> Any:
        spans.append(options.url)
        return ours(cast_to, options, **kwargs)

    openai_client.request = logfire_like
    openai_client.chat.completions.create(model=MODEL, messages=QUESTION)
    sessionware.unwrap(openai_client)
    openai_client.chat.completions.create(model=MODEL, messages=QUESTION)

    assert spans == ["/chat/completions", "/chat/completions"]  # theirs still runs after our unwrap
    assert n_calls(store) == 1  # ours stopped recording


def test_nested_and_suppressed_calls_are_not_recorded_twice(openai_api: FakeOpenAI, store: Store) -> None:
    inner = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    outer_hook = inner.request
    # Another of our hooks around this one (an instrumented copy, a second wrapper layer).
    from sessionware.adapters.engine import install
    from sessionware.adapters.engine.config import WrapConfig
    from sessionware.adapters.openai.spec import OpenAISpec

    holder = type("Holder", (), {"request": staticmethod(outer_hook)})()
    install.install(holder, WrapConfig(spec=OpenAISpec(), store=store), funnel="request", is_async=False)
    inner.request = holder.request
    inner.chat.completions.create(model=MODEL, messages=QUESTION)
    with suppress_recording():
        inner.chat.completions.create(model=MODEL, messages=QUESTION)

    assert n_calls(store) == 1


# -- 9. Callback firing semantics: one record per call, on every path ------------------------------

PATHS = [
    "create",
    "create-stream",
    "create-stream-with-usage",
    "stream-helper",
    "raw",
    "raw-stream",
    "streaming-response",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
def test_each_call_is_recorded_exactly_once(
    path: str, kind: str, openai_api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(make_openai(kind, openai_api), store=store)
    completions = client.chat.completions

    async def run_async() -> None:
        if path == "create":
            await completions.create(model=MODEL, messages=QUESTION)
        elif path.startswith("create-stream"):
            extra = {"stream_options": {"include_usage": True}} if path.endswith("usage") else {}
            async for _ in await completions.create(model=MODEL, messages=QUESTION, stream=True, **extra):
                pass
        elif path == "stream-helper":
            async with completions.stream(model=MODEL, messages=QUESTION) as s:
                await s.until_done()
        elif path == "raw":
            (await completions.with_raw_response.create(model=MODEL, messages=QUESTION)).parse()
        elif path == "raw-stream":
            raw = await completions.with_raw_response.create(model=MODEL, messages=QUESTION, stream=True)
            async for _ in raw.parse():
                pass
        else:
            async with completions.with_streaming_response.create(model=MODEL, messages=QUESTION) as r:
                await r.read()

    def run_sync() -> None:
        if path == "create":
            completions.create(model=MODEL, messages=QUESTION)
        elif path.startswith("create-stream"):
            extra = {"stream_options": {"include_usage": True}} if path.endswith("usage") else {}
            list(completions.create(model=MODEL, messages=QUESTION, stream=True, **extra))
        elif path == "stream-helper":
            with completions.stream(model=MODEL, messages=QUESTION) as s:
                s.until_done()
        elif path == "raw":
            completions.with_raw_response.create(model=MODEL, messages=QUESTION).parse()
        elif path == "raw-stream":
            list(completions.with_raw_response.create(model=MODEL, messages=QUESTION, stream=True).parse())
        else:
            with completions.with_streaming_response.create(model=MODEL, messages=QUESTION) as r:
                r.read()

    if kind == "AsyncOpenAI":
        asyncio.run(run_async())
    else:
        run_sync()
    gc.collect()

    assert n_calls(store) == 1
    assert the_call(store).content == "You said: Say something"
