"""Complaint classes 6-12 users reported against other LLM wrappers: instrumentation at runtime.

The classes and their issue references are section (c) of
``shared/reference/adapter_anchors.md``; each ``test_cNN_*`` reproduces the reported
situation against the real SDKs (only HTTP is fake) and shows it does not happen here.
Classes 1-5 are in ``test_known_complaints_streams.py``.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import wrapt
from adapter_support import calls, make_anthropic, make_openai, only_session, session_events
from openai import NOT_GIVEN, omit

import sessionware
from sessionware.adapters.api import settle
from sessionware.adapters.engine import guard
from sessionware.adapters.engine.funnel import suppress_recording
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply, sse
from sessionware.core.errors import StorageError
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5-20251001"
QUESTION = [{"role": "user", "content": "Say something"}]
LONG = Reply(text="one two three four five six")


def n_calls(store: Store) -> int:
    assert settle()
    store.flush_sync()
    return sum(info.totals.llm_calls for info in store.list_sessions_sync())


def the_call(store: Store) -> Any:
    [event] = calls(session_events(store, only_session(store)))
    return event


def sse_response(http: Any, events: list[dict[str, Any]], *, named: bool = False) -> Any:
    return lambda request: http.Response(
        200, content=sse(events, named=named, done=not named), headers={"content-type": "text/event-stream"}
    )


# -- 6. Double instrumentation -------------------------------------------------------------------


def test_c06_another_class_level_wrapper_does_not_double_count(openai_client: Any, store: Store) -> None:
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


def test_c06_a_library_that_patches_the_funnel_after_us_keeps_working(
    openai_client: Any, store: Store
) -> None:
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


def test_c06_nested_and_suppressed_calls_are_not_recorded_twice(openai_api: FakeOpenAI, store: Store) -> None:
    inner = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    outer_hook = inner.request
    # Another of our hooks around this one (an instrumented copy, a second wrapper layer).
    from sessionware.adapters.engine import funnel, install
    from sessionware.adapters.openai.chat import OpenAISpec

    holder = type("Holder", (), {"request": staticmethod(outer_hook)})()
    install.install(holder, funnel.WrapConfig(spec=OpenAISpec(), store=store), is_async=False)
    inner.request = holder.request
    inner.chat.completions.create(model=MODEL, messages=QUESTION)
    with suppress_recording():
        inner.chat.completions.create(model=MODEL, messages=QUESTION)

    assert n_calls(store) == 1


# -- 7. Coverage gaps ------------------------------------------------------------------------------


def test_c07_every_endpoint_and_helper_is_recorded(
    openai_client: Any, anthropic_client: Any, store: Store
) -> None:
    text = [{"role": "user", "content": "hi"}]
    openai_client.chat.completions.create(model=MODEL, messages=text, temperature=omit, top_p=NOT_GIVEN)
    openai_client.chat.completions.parse(model=MODEL, messages=text)
    with openai_client.chat.completions.stream(model=MODEL, messages=text) as s:
        s.until_done()
    openai_client.responses.create(model=MODEL, input="hi")
    openai_client.responses.parse(model=MODEL, input="hi")
    with openai_client.responses.stream(model=MODEL, input="hi") as r:
        r.until_done()
    openai_client.embeddings.create(model="text-embedding-3-small", input="hi")
    anthropic_client.messages.create(model=CLAUDE, max_tokens=9, messages=text)
    with anthropic_client.messages.stream(model=CLAUDE, max_tokens=9, messages=text) as m:
        m.until_done()
    anthropic_client.beta.messages.create(model=CLAUDE, max_tokens=9, messages=text)
    anthropic_client.beta.messages.parse(model=CLAUDE, max_tokens=9, messages=text)
    with anthropic_client.beta.messages.stream(model=CLAUDE, max_tokens=9, messages=text) as b:
        b.until_done()

    assert n_calls(store) == 12


# -- 8. Overhead, event-loop blocking, async compatibility -----------------------------------------


async def test_c08_a_sync_client_works_inside_a_running_event_loop(openai_client: Any, store: Store) -> None:
    # openllmetry#2195: instrumentation calling asyncio.run() crashed apps already in a loop.
    reply = openai_client.chat.completions.create(model=MODEL, messages=QUESTION)

    assert reply.choices[0].message.content == "You said: Say something"
    assert n_calls(store) == 1


def test_c08_calls_start_no_thread(openai_api: FakeOpenAI, tmp_path: Path) -> None:
    store = Store(SQLiteBackend(tmp_path / "s.db"))
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    client.chat.completions.create(model=MODEL, messages=QUESTION)
    store.flush_sync()  # the store's one writer runs from here (it starts with the first write)
    before = threading.active_count()

    for i in range(25):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"q{i}"}])
        list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert threading.active_count() == before
    store.close()


class SlowDisk(SQLiteBackend):
    """A real SQLite file on a disk that takes its time to read."""

    def load(self, session_id: str) -> Any:
        time.sleep(0.3)
        return super().load(session_id)


async def test_c08_async_calls_never_block_the_event_loop_on_store_io(
    openai_api: FakeOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "slow.db"
    seed_store = Store(SQLiteBackend(path))
    seed = sessionware.wrap(make_openai("OpenAI", openai_api), store=seed_store, session_id="s")
    seed.chat.completions.create(model=MODEL, messages=QUESTION)
    sessionware.unwrap(seed)._client.close()
    seed_store.close()  # one writer per file: the seed's store is done before the next opens it
    store = Store(SlowDisk(path))
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store, session_id="s")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    history = [*QUESTION, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    reply = await client.chat.completions.create(model=MODEL, messages=history)  # captured only
    history += [
        {"role": "assistant", "content": reply.choices[0].message.content},
        {"role": "user", "content": "z"},
    ]
    # A stream opens its session before it is sent, after the call before it: both read
    # the session from disk, off the loop.
    async for _ in await client.chat.completions.create(model=MODEL, messages=history, stream=True):
        pass
    done.set()
    await task

    assert ticks >= 5  # the loop kept running while the session was read from disk
    assert store.load_sync("s").totals.llm_calls == 3
    store.close()


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
def test_c09_each_call_is_recorded_exactly_once(
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


# -- 10. Wrappers mutate or retype SDK objects ---------------------------------------------------


def test_c10_responses_and_requests_are_left_exactly_as_they_were(
    openai_api: FakeOpenAI, store: Store
) -> None:
    bare = make_openai("OpenAI", openai_api)
    wrapped = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    snapshot = copy.deepcopy(messages)
    api = Reply(text="ok", cached_tokens=1)
    openai_api.push(api, api)

    expected = bare.chat.completions.create(model=MODEL, messages=messages)
    actual = wrapped.chat.completions.create(model=MODEL, messages=messages)

    assert messages == snapshot  # the app's list and dicts untouched
    assert actual.model_dump() == expected.model_dump()
    assert type(actual.usage.prompt_tokens_details).__name__ == "PromptTokensDetails"  # langfuse#5133
    recorded = json.dumps([e.model_dump(mode="json") for e in session_events(store, only_session(store))])
    assert "sessionware" not in recorded and "Stream" not in recorded  # no wrapper types leak (langfuse#2394)


# -- 11. Instrumentation errors leak into the app ------------------------------------------------


def test_c11_a_store_that_is_down_never_breaks_the_call(
    openai_api: FakeOpenAI, tmp_path: Path, lenient: None
) -> None:
    broken = tmp_path / "not-a-database.db"
    broken.write_bytes(b"this is not sqlite" * 100)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=Store(SQLiteBackend(broken)))
    errors_before = guard.health().internal_errors

    reply = client.chat.completions.create(model=MODEL, messages=QUESTION)
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert reply.choices[0].message.content == "You said: Say something"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: Say something"
    assert guard.health().internal_errors == errors_before + 2
    assert "StorageError" in (guard.health().last_error or "")


def test_c11_under_tests_a_bookkeeping_failure_is_raised(openai_api: FakeOpenAI, tmp_path: Path) -> None:
    broken = tmp_path / "not-a-database.db"
    broken.write_bytes(b"this is not sqlite" * 100)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=Store(SQLiteBackend(broken)))

    with pytest.raises(StorageError):
        client.chat.completions.create(model=MODEL, messages=QUESTION)
        # Its session is opened off the app's path: the failure surfaces at the next settle.
        settle()


def test_c11_a_chunk_we_cannot_read_does_not_cut_the_stream(
    openai_client: Any, openai_api: FakeOpenAI, store: Store, lenient: None
) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    weird = {
        **base,
        "choices": [{"index": 0, "delta": {"content": ["not", "a", "string"]}, "finish_reason": None}],
    }
    fine = {**base, "choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": "stop"}]}
    openai_api.push(sse_response(httpx, [weird, fine]))
    errors_before = guard.health().internal_errors

    received = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert [c.choices[0].delta.content for c in received] == [["not", "a", "string"], "fine"]
    assert guard.health().internal_errors > errors_before


def test_c11_the_app_s_own_exceptions_pass_through_untouched(openai_client: Any, store: Store) -> None:
    # openlit#565: a wrapper swallowed the user's exception and returned None.
    class AppError(Exception):
        pass

    with pytest.raises(AppError, match="the app's own"):
        for _ in openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True):
            raise AppError("the app's own")
    gc.collect()

    assert n_calls(store) == 1


# -- 12. Transparent rewriting in gateways broke caching and triggered bogus retrievals -------------


def test_c12_observe_mode_sends_exactly_what_the_app_built(
    openai_api: FakeOpenAI, anthropic_api: FakeAnthropic, store: Store
) -> None:
    messages = [
        {"role": "system", "content": "Long stable prefix " * 50},
        {"role": "user", "content": "Summarise commit 3f9c2a1b7e and hash=9e107d9d372bb6826bd81d3542a419d6"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "git_show", "arguments": "{}"}}
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "tree hash=da39a3ee5e6b4b0d3255bfef95601890afd80709",
        },
    ]
    bare, wrapped = (
        make_openai("OpenAI", openai_api),
        sessionware.wrap(make_openai("OpenAI", openai_api), store=store),
    )
    bare.chat.completions.create(model=MODEL, messages=messages)
    wrapped.chat.completions.create(model=MODEL, messages=messages)
    blocks = [{"type": "text", "text": "Cached context " * 100, "cache_control": {"type": "ephemeral"}}]
    claude = [{"role": "user", "content": [*blocks, {"type": "text", "text": "hash=abc123"}]}]
    make_anthropic("Anthropic", anthropic_api).messages.create(
        model=CLAUDE, max_tokens=9, messages=claude, system=blocks
    )
    sessionware.wrap(make_anthropic("Anthropic", anthropic_api), store=store).messages.create(
        model=CLAUDE, max_tokens=9, messages=claude, system=blocks
    )

    assert len(openai_api.requests) == 2 and openai_api.requests[0] == openai_api.requests[1]
    assert len(anthropic_api.requests) == 2 and anthropic_api.requests[0] == anthropic_api.requests[1]
    assert anthropic_api.requests[1]["system"][0]["cache_control"] == {"type": "ephemeral"}
