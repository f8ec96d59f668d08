"""One test group per complaint class users reported against other LLM wrappers.

The classes and their issue references are section (c) of
``shared/reference/adapter_anchors.md``; each ``test_cNN_*`` reproduces the reported
situation against the real SDKs (only HTTP is fake) and shows it does not happen here.
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

import anthropic
import httpx
import httpx2
import openai
import pytest
import wrapt
from adapter_support import calls, make_anthropic, make_openai, only_session, session_events
from openai import NOT_GIVEN, omit

import sessionware
from sessionware.adapters import _guard
from sessionware.adapters._core import suppress_recording
from sessionware.adapters.api import settle
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply, sse
from sessionware.core.accounting.usage import TokenSource
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


# -- 1. Wrapped streams break SDK contracts ---------------------------------------------------


def test_c01_a_stream_is_the_sdk_stream_iterator_and_context_manager(
    openai_client: Any, store: Store
) -> None:
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


async def test_c01_async_helpers_enter_and_exit_cleanly(
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


def test_c01_helpers_only_see_sdk_arguments(openai_client: Any, store: Store) -> None:
    # langfuse#15018: wrapper-only kwargs rejected by the helpers. Sessions come from the scope.
    with sessionware.session("scoped"), openai_client.responses.stream(model=MODEL, input="hi") as stream:
        stream.until_done()

    assert session_events(store, "scoped")[-1].content == "You said: hi"


def test_c01_a_raw_stream_still_parses(openai_client: Any, anthropic_client: Any) -> None:
    # opentelemetry-python-contrib#4032: `.with_raw_response.create(stream=True).parse()`.
    raw = openai_client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION, stream=True)
    assert isinstance(raw.parse(), openai.Stream)
    raw_anthropic = anthropic_client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, messages=QUESTION, stream=True
    )
    assert isinstance(raw_anthropic.parse(), anthropic.Stream)


# -- 2. Stream reconstruction crashes on odd chunks -------------------------------------------


def test_c02_odd_openai_chunks_reach_the_app_and_are_recorded(
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


def test_c02_unknown_and_partial_events_are_tolerated(
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

    store.flush_sync()
    contents = sorted(str(calls(session_events(store, i.id))[0].content) for i in store.list_sessions_sync())
    assert contents == ["Hello", "Yo"]


# -- 3. Usage missing for streams ------------------------------------------------------------


def test_c03_stream_usage_is_there_without_the_app_asking(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    openai_api.push(Reply(text="Sure", tool_calls=[("search", {"q": "x"})], cached_tokens=4))

    chunks = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert all(len(c.choices) == 1 for c in chunks)  # `chunk.choices[0]` code keeps working
    event = the_call(store)
    assert event.usage is not None and event.usage.source is TokenSource.PROVIDER
    assert event.usage.cache_read_tokens == 4
    assert [c.name for c in event.tool_calls] == ["search"]  # logfire#542


def test_c03_a_stream_without_usage_gets_a_labelled_estimate(
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


# -- 4. Records lost when a stream is abandoned -----------------------------------------------


@pytest.mark.parametrize("leave", ["break", "close", "gc"])
def test_c04_an_abandoned_stream_is_recorded_exactly_once(
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


# -- 5. with_raw_response crashes or is recorded as junk ---------------------------------------


def test_c05_raw_responses_are_recorded_from_their_data(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)

    async def run() -> Any:
        return await client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION)

    raw = asyncio.run(run())  # langfuse#2218

    assert type(raw).__name__ == "LegacyAPIResponse"  # logfire#62: not mistaken for a completion
    assert raw.parse().choices[0].message.content == "You said: Say something"
    event = the_call(store)
    assert event.content == "You said: Say something"  # the data, not a stringified object (langsmith#2480)
    assert "LegacyAPIResponse" not in json.dumps(event.model_dump(mode="json"))


def test_c05_a_body_mocked_as_already_read_is_still_recorded(
    openai_client: Any, openai_api: FakeOpenAI, store: Store
) -> None:
    completion = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "pre-read"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    openai_api.push(lambda request: httpx.Response(200, json=completion))

    with openai_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=QUESTION
    ) as response:
        assert response.parse().choices[0].message.content == "pre-read"

    assert the_call(store).usage.input_tokens == 3


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
    from sessionware.adapters import _core, _install
    from sessionware.adapters.openai import OpenAISpec

    holder = type("Holder", (), {"request": staticmethod(outer_hook)})()
    _install.install(holder, _core.WrapConfig(spec=OpenAISpec(), store=store), is_async=False)
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
    client.chat.completions.create(model=MODEL, messages=QUESTION)  # the store's one writer starts here
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
    seed = sessionware.wrap(
        make_openai("OpenAI", openai_api), store=Store(SQLiteBackend(path)), session_id="s"
    )
    seed.chat.completions.create(model=MODEL, messages=QUESTION)
    sessionware.unwrap(seed)._client.close()
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
    await client.chat.completions.create(
        model=MODEL,
        messages=[*QUESTION, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}],
    )
    done.set()
    await task

    assert ticks >= 5  # the loop kept running while the session was read from disk
    assert store.load_sync("s").totals.llm_calls == 2
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
    errors_before = _guard.health().internal_errors

    reply = client.chat.completions.create(model=MODEL, messages=QUESTION)
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert reply.choices[0].message.content == "You said: Say something"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: Say something"
    assert _guard.health().internal_errors == errors_before + 2
    assert "StorageError" in (_guard.health().last_error or "")


def test_c11_under_tests_a_bookkeeping_failure_is_raised(openai_api: FakeOpenAI, tmp_path: Path) -> None:
    broken = tmp_path / "not-a-database.db"
    broken.write_bytes(b"this is not sqlite" * 100)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=Store(SQLiteBackend(broken)))

    with pytest.raises(StorageError):
        client.chat.completions.create(model=MODEL, messages=QUESTION)


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
    errors_before = _guard.health().internal_errors

    received = list(openai_client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert [c.choices[0].delta.content for c in received] == [["not", "a", "string"], "fine"]
    assert _guard.health().internal_errors > errors_before


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
