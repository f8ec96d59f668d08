"""Findings of the SDKs' own suites, reproduced against a real HTTP server on 127.0.0.1.

Each test failed before its fix; a mocked transport hides every one of them (its bodies
are complete, uncompressed, and hold no connection). See ``local_http``.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import weakref
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from adapter_support import calls, conversation, only_session, session_events
from local_http import LocalServer, Reply, sse

import sessionware
from sessionware.adapters.api import is_wrapped
from sessionware.adapters.engine import guard
from sessionware.adapters.instrument import is_instrumented
from sessionware.adapters.managed.resource import attached
from sessionware.core.store import Store

CLAUDE = "claude-haiku-4-5-20251001"
GPT = "gpt-4o-mini"
HELLO = {"role": "user", "content": "Hello there"}
SSE = "text/event-stream"

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": CLAUDE,
    "content": [{"type": "text", "text": "General Kenobi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 11, "output_tokens": 4},
}
MESSAGE_EVENTS = (
    {
        "type": "message_start",
        "message": {
            **MESSAGE,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 11, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "General "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Kenobi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 4},
    },
    {"type": "message_stop"},
)
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": GPT,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "General Kenobi"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}
CHUNKS = tuple(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": GPT,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    for delta, finish in (
        ({"role": "assistant", "content": "General "}, None),
        ({"content": "Kenobi"}, "stop"),
    )
)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture
def instrumented(store: Store) -> Iterator[Store]:
    sessionware.instrument(store=store, providers=["openai", "anthropic"])
    yield store
    if is_instrumented():
        sessionware.uninstrument()


def claude(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)


def gpt(server: LocalServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)


def recorded(store: Store) -> list[tuple[str, Any]]:
    return conversation(session_events(store, only_session(store)))


# -- 1. what the app passed is read after the SDK made it final -----------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not streamed"])
def test_an_instrumented_anthropic_call_sends_and_records_a_one_shot_iterable_of_messages(
    server: LocalServer, instrumented: Store, stream: bool
):
    if stream:
        server.push(Reply(chunks=sse(*MESSAGE_EVENTS), content_type=SSE))
    else:
        server.push(Reply.json(MESSAGE))

    reply = claude(server).messages.create(model=CLAUDE, max_tokens=50, messages=iter([HELLO]), stream=stream)
    text = (
        "".join(e.delta.text for e in reply if e.type == "content_block_delta")
        if stream
        else reply.content[0].text
    )

    assert text == "General Kenobi"
    assert server.bodies[0]["messages"] == [HELLO]
    assert recorded(instrumented) == [("user", "Hello there"), ("assistant", "General Kenobi")]


# -- 2. a stream dropped unread or partway releases its HTTP response ---------------------


def released(response: weakref.ref[Any]) -> bool:
    """The app's dropped stream let go of its HTTP response: closed, or freed."""
    alive = response()
    return alive is None or bool(alive.is_closed)


@pytest.mark.parametrize("reads", [0, 2], ids=["never read", "read in part"])
def test_a_dropped_anthropic_stream_lets_go_of_its_response(
    server: LocalServer, instrumented: Store, reads: int
):
    server.push(Reply(chunks=sse(*MESSAGE_EVENTS[:3]), content_type=SSE, hold=True))
    with claude(server) as client:  # its pool closes what a stream never read leaves open
        stream = client.messages.create(model=CLAUDE, max_tokens=50, messages=[HELLO], stream=True)
        for _ in range(reads):
            next(stream)
        response = weakref.ref(stream.response)

        del stream
        gc.collect()

        assert released(response)
    if reads:  # the SDK closes a stream it started reading: the server sees the connection go
        assert server.released.wait(5)
    [call] = calls(session_events(instrumented, only_session(instrumented)))
    assert call.metadata["end"] == "abandoned"


@pytest.mark.parametrize("reads", [0, 2], ids=["never read", "read in part"])
async def test_a_dropped_async_anthropic_stream_lets_go_of_its_response(
    server: LocalServer, instrumented: Store, reads: int
):
    server.push(Reply(chunks=sse(*MESSAGE_EVENTS[:3]), content_type=SSE, hold=True))
    async with anthropic.AsyncAnthropic(base_url=server.url, api_key="k", max_retries=0) as client:
        stream = await client.messages.create(model=CLAUDE, max_tokens=50, messages=[HELLO], stream=True)
        for _ in range(reads):
            await stream.__anext__()
        response = weakref.ref(stream.response)
        del stream
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)

        assert released(response)
    if reads:
        assert server.released.wait(5)


# -- 3. with_streaming_response over a gzip-encoded body ----------------------------------


def test_a_gzip_encoded_body_read_through_with_streaming_response_is_recorded(
    server: LocalServer, instrumented: Store
):
    server.push(Reply.json(COMPLETION, gzip=True))

    with gpt(server).chat.completions.with_streaming_response.create(model=GPT, messages=[HELLO]) as response:
        completion = response.parse()

    assert completion.choices[0].message.content == "General Kenobi"
    [call] = calls(session_events(instrumented, only_session(instrumented)))
    assert call.content == "General Kenobi"
    assert call.usage is not None and (call.usage.input_tokens, call.usage.output_tokens) == (9, 3)


def test_gzip_encoded_server_sent_events_read_through_with_streaming_response_are_recorded(
    server: LocalServer, instrumented: Store
):
    server.push(Reply(chunks=sse(*MESSAGE_EVENTS), content_type=SSE, gzip=True))

    with claude(server).messages.with_streaming_response.create(
        model=CLAUDE, max_tokens=50, messages=[HELLO], stream=True
    ) as response:
        lines = list(response.iter_lines())

    assert any("General " in line for line in lines)
    assert recorded(instrumented) == [("user", "Hello there"), ("assistant", "General Kenobi")]


# -- 4. empty and cut-off bodies -----------------------------------------------------------


def test_a_raw_response_with_an_empty_body_is_recorded_without_output_and_breaks_nothing(
    server: LocalServer, instrumented: Store
):
    server.push(Reply(chunks=[]), Reply.json(COMPLETION))
    client = gpt(server)
    errors = guard.health().internal_errors

    raw = client.chat.completions.with_raw_response.create(model=GPT, messages=[HELLO])
    assert raw.http_response.content == b""
    sessionware.adapters.api.settle()  # the recorder thread reads it: nothing kept to raise later
    again = client.chat.completions.create(model=GPT, messages=[HELLO])

    assert again.choices[0].message.content == "General Kenobi"
    assert guard.health().internal_errors == errors
    events = session_events(instrumented, only_session(instrumented))
    first, second = calls(events)
    assert first.metadata.get("incomplete") and first.content is None
    assert second.content == "General Kenobi"


def test_a_body_cut_by_a_lost_connection_raises_the_http_clients_error(
    server: LocalServer, instrumented: Store
):
    # As bare: with_streaming_response hands the app the HTTP client's own read error.
    server.push(Reply.json(COMPLETION, cut=True))
    errors = guard.health().internal_errors

    with (
        pytest.raises(Exception) as raised,
        gpt(server).chat.completions.with_streaming_response.create(model=GPT, messages=[HELLO]) as response,
    ):
        response.parse()
    # httpx's RemoteProtocolError (openai 2.x) or httpx2's (openai 3.x): the client's own class.
    assert type(raised.value).__name__ == "RemoteProtocolError"
    assert type(raised.value).__module__.split(".")[0] in ("httpx", "httpx2")

    assert guard.health().internal_errors == errors
    [call] = calls(session_events(instrumented, only_session(instrumented)))
    assert call.error is not None and call.error.type == "RemoteProtocolError"


def test_a_raw_body_cut_by_a_lost_connection_raises_the_sdks_error(server: LocalServer, instrumented: Store):
    server.push(Reply.json(COMPLETION, cut=True))

    with pytest.raises(openai.APIConnectionError):
        gpt(server).chat.completions.with_raw_response.create(model=GPT, messages=[HELLO])


def test_a_stream_with_its_body_gzip_encoded_is_recorded(server: LocalServer, instrumented: Store):
    server.push(Reply(chunks=sse(*CHUNKS, done=True), content_type=SSE, gzip=True))

    stream = gpt(server).chat.completions.create(model=GPT, messages=[HELLO], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "General Kenobi"
    assert recorded(instrumented) == [("user", "Hello there"), ("assistant", "General Kenobi")]
    assert json.loads(json.dumps(server.bodies[0]))["stream"] is True


# -- 5. a copy of a client sends through itself -------------------------------------------


def _ask(client: Any, resource: Any = None) -> str | None:
    """One call through ``resource`` (by default the client's own)."""
    if isinstance(client, anthropic.Anthropic):
        messages = resource or client.messages
        text: str = messages.create(model=CLAUDE, max_tokens=50, messages=[HELLO]).content[0].text
        return text
    completions = resource or client.chat.completions
    content: str | None = completions.create(model=GPT, messages=[HELLO]).choices[0].message.content
    return content


@pytest.mark.parametrize("make", [claude, gpt], ids=["anthropic", "openai"])
def test_a_shallow_copy_of_an_instrumented_client_sends_with_its_own_settings(
    server: LocalServer, instrumented: Store, make: Any
):
    # anthropic's environments worker gives its stop calls more retries and a middleware of
    # their own on a copy.copy of its client, with a resource built on the copy: the copy
    # must send through itself, not through the client it was copied from (whose binding
    # its __dict__ carries after that one's first call).
    answer = Reply.json(MESSAGE) if make is claude else Reply.json(COMPLETION)
    server.push(answer, Reply(status=503, headers={"retry-after-ms": "10"}), answer)
    original = make(server)  # max_retries=0
    assert _ask(original) == "General Kenobi"

    again = copy.copy(original)
    again.max_retries = 1
    resource = original.messages if make is claude else original.chat.completions

    assert _ask(again, type(resource)(again)) == "General Kenobi"  # the copy's one retry, as bare
    assert len(server.bodies) == 3
    assert len(calls(session_events(instrumented, only_session(instrumented)))) == 2


# -- 6. a copy of a wrapped client sends through itself, recorded like the client ----------

CLIENTS = {
    "openai": openai.OpenAI,
    "async-openai": openai.AsyncOpenAI,
    "anthropic": anthropic.Anthropic,
    "async-anthropic": anthropic.AsyncAnthropic,
}


def _answer_for(client: Any) -> Reply:
    is_claude = isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic))
    return Reply.json(MESSAGE if is_claude else COMPLETION)


def _fresh_resource(client: Any) -> Any:
    """The client's messages / chat completions resource, built on ``client`` itself (as
    anthropic's own helpers do on their copies; an SDK client caches its resources)."""
    if isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic)):
        return type(client.messages)(client)
    return type(client.chat.completions)(client)


async def _aask(client: Any, resource: Any = None) -> str:
    """One call through ``resource`` (by default the client's own), sync or async."""
    resource = resource or (
        client.messages
        if isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic))
        else client.chat.completions
    )
    if isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic)):
        reply = resource.create(model=CLAUDE, max_tokens=50, messages=[HELLO])
    else:
        reply = resource.create(model=GPT, messages=[HELLO])
    if asyncio.iscoroutine(reply):
        reply = await reply
    if isinstance(reply, (anthropic.types.Message,)):
        return str(reply.content[0].text)
    return str(reply.choices[0].message.content)


def _wrapped(kind: str, server: LocalServer, store: Store) -> Any:
    return sessionware.wrap(
        CLIENTS[kind](base_url=server.url, api_key="k", max_retries=0), store=store, session_id="s"
    )


async def _aclose(client: Any) -> None:
    """Close the HTTP client the original, its copies and derived clients share."""
    closed = client.close()
    if asyncio.iscoroutine(closed):
        await closed


RETRY_ME = Reply(status=503, headers={"retry-after-ms": "10"})


@pytest.mark.parametrize("kind", list(CLIENTS))
async def test_a_shallow_copy_of_a_wrapped_client_sends_with_its_own_settings_into_the_same_session(
    server: LocalServer, store: Store, kind: str
):
    # anthropic's helpers give a copy.copy of the client more retries and a middleware of
    # their own; the copy's __dict__ carries the wrapped client's hooks, which called the
    # original: the copy sent with the original's max_retries (0) and failed on the 503.
    original = _wrapped(kind, server, store)
    server.push(_answer_for(original), RETRY_ME, _answer_for(original))
    assert await _aask(original) == "General Kenobi"

    again = copy.copy(original)
    again.max_retries = 1

    assert await _aask(again, _fresh_resource(again)) == "General Kenobi"  # one retry, as bare
    assert len(server.bodies) == 3
    assert len(calls(session_events(store, "s"))) == 2
    assert is_wrapped(again)
    sessionware.unwrap(again)  # the copy's hooks are its own: the original stays wrapped
    assert is_wrapped(original)
    await _aclose(original)


@pytest.mark.parametrize("kind", list(CLIENTS))
async def test_with_options_on_a_copy_starts_from_the_copy(server: LocalServer, store: Store, kind: str):
    original = _wrapped(kind, server, store)
    again = copy.copy(original)
    again.max_retries = 1
    server.push(RETRY_ME, _answer_for(original))

    derived = again.with_options(timeout=30.0)

    assert derived.max_retries == 1
    assert await _aask(derived) == "General Kenobi"  # the copy's retry, not the original's none
    assert len(calls(session_events(store, "s"))) == 1
    await _aclose(original)


def test_a_copy_of_an_unwrapped_client_is_not_recorded(server: LocalServer, store: Store):
    client = _wrapped("openai", server, store)
    sessionware.unwrap(client)
    server.push(Reply.json(COMPLETION))

    again = copy.copy(client)

    assert not is_wrapped(again)
    assert again.chat.completions.create(model=GPT, messages=[HELLO]).choices[0].message.content
    assert store.list_sessions() == []
    client.close()


def test_a_client_derived_for_another_server_sends_what_the_sdk_sends_there(
    server: LocalServer, store: Store
):
    # A client of OpenAI's own API gets a prompt_cache_key and asks streams for their usage;
    # one derived from it for another server (a proxy, a local model) must not: that server
    # may refuse unknown fields. The derived client took the original's reading of its URL.
    original = sessionware.wrap(openai.OpenAI(api_key="k", max_retries=0), store=store, session_id="s")
    local = original.with_options(base_url=server.url)
    server.push(Reply.json(COMPLETION), Reply(chunks=sse(*CHUNKS, done=True), content_type=SSE))

    local.chat.completions.create(model=GPT, messages=[HELLO])
    stream = local.chat.completions.create(model=GPT, messages=[HELLO], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "General Kenobi"

    assert server.bodies == [
        {"model": GPT, "messages": [HELLO]},
        {"model": GPT, "messages": [HELLO], "stream": True},
    ]
    assert len(calls(session_events(store, "s"))) == 2
    original.close()


def test_unwrapping_a_copy_of_a_managed_client_leaves_the_original_managed(server: LocalServer, store: Store):
    # The copy shares the resource objects the original made (the SDK caches them on the
    # client), which managed mode hooks: unwrapping the copy must not unhook them, nor
    # switch off the original's settings, which the copy used to share.
    original = sessionware.wrap(claude(server), store=store, session_id="s", mode="managed")
    server.push(Reply.json(MESSAGE), Reply.json(MESSAGE))
    original.messages.create(model=CLAUDE, max_tokens=50, messages=[HELLO])
    taken_at = vars(original.messages)["_post"]  # where managed mode takes the calls

    again = copy.copy(original)
    sessionware.unwrap(again)
    original.messages.create(model=CLAUDE, max_tokens=50, messages=[HELLO])

    assert is_wrapped(original) and attached(original) and not is_wrapped(again)
    assert vars(original.messages)["_post"] is taken_at
    assert "VM:RULES" in json.dumps(server.bodies[1]["system"])  # still managed
    assert len(calls(session_events(store, "s"))) == 2
    original.close()
