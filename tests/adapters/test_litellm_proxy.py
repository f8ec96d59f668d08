"""The proxy hook in a real LiteLLM proxy (2 workers), driven by the real openai and
anthropic SDKs over HTTP on 127.0.0.1, recording into a real Redis.

The upstream is the fake OpenAI/Anthropic API served over HTTP; the proxy, its config,
its router (fallbacks), its auth and its cost figures are LiteLLM's own.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from proxy_support import Proxy, anthropic_client, openai_client

from sessionware.adapters.litellm.fake_upstream import FakeUpstream
from sessionware.core.errors import SessionNotFound
from sessionware.core.session.enums import EventType
from sessionware.core.session.models import SessionEvent
from sessionware.core.store import Store, open_store

pytestmark = [pytest.mark.slow, pytest.mark.redis]

_WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy_store_url(redis_url: str) -> str:
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own on the shared server
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, proxy_store_url: str) -> Iterator[Proxy]:
    running = Proxy.start(upstream.base_url, store=proxy_store_url, workers=2)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def store(proxy_store_url: str) -> Iterator[Store]:
    opened = open_store(proxy_store_url)
    yield opened
    opened.close()


def wait_for(store: Store, session_id: str, count: int) -> list[SessionEvent]:
    """The session's events once it holds ``count`` messages (the proxy records off its path)."""
    deadline = time.monotonic() + _WAIT_SECONDS
    events: list[SessionEvent] = []
    while time.monotonic() < deadline:
        try:
            events = store.load(session_id).events
        except SessionNotFound:
            events = []
        if len(messages(events)) >= count:
            return events
        time.sleep(0.1)
    raise AssertionError(f"{session_id}: {messages(events)} after {_WAIT_SECONDS} s, not {count} messages")


def messages(events: list[SessionEvent]) -> list[tuple[str, Any]]:
    return [(e.role.value if e.role else "", e.content) for e in events if e.type is EventType.MESSAGE]


def answer(events: list[SessionEvent]) -> SessionEvent:
    return next(e for e in events if e.type is EventType.MESSAGE and e.role and e.role.value == "assistant")


def sid() -> str:
    return f"proxy-{uuid.uuid4().hex[:12]}"


def test_chat_completions_are_recorded_in_the_session_the_metadata_names(proxy: Proxy, store: Store) -> None:
    session = sid()
    raw = openai_client(proxy).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hello"}],
        metadata={"session_id": session},
    )
    reply = raw.parse()
    events = wait_for(store, session, 2)
    assert messages(events) == [("user", "hello"), ("assistant", reply.choices[0].message.content)]
    event = answer(events)
    assert event.usage is not None and event.usage.input_tokens == reply.usage.prompt_tokens
    assert event.provider == "openai" and event.latency_ms is not None and event.latency_ms > 0
    # The proxy's own cost figure and ours agree, and the proxy's is kept beside ours.
    theirs = Decimal(raw.headers["x-litellm-response-cost"])
    assert event.metadata["litellm_cost"] == pytest.approx(float(theirs))
    assert event.cost is not None and abs(event.cost - theirs) <= theirs * Decimal("0.01")
    assert store.load_info(session).system_prompt == "Be terse."


def test_a_streamed_chat_is_recorded_once_with_its_time_to_first_token(proxy: Proxy, store: Store) -> None:
    session = sid()
    stream = openai_client(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        extra_headers={"x-litellm-session-id": session},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    events = wait_for(store, session, 2)
    assert messages(events) == [("user", "stream me"), ("assistant", text)]
    assert answer(events).ttft_ms is not None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_are_recorded(proxy: Proxy, store: Store, stream: bool) -> None:
    session = sid()
    client = openai_client(proxy)
    options: dict[str, Any] = {"extra_body": {"litellm_metadata": {"session_id": session}}}
    if stream:
        events_seen = list(
            client.responses.create(model="gpt-4o-mini", input="hi there", stream=True, **options)
        )
        text = next(e.response.output_text for e in events_seen if e.type == "response.completed")
    else:
        text = client.responses.create(model="gpt-4o-mini", input="hi there", **options).output_text
    events = wait_for(store, session, 2)
    assert messages(events) == [("user", "hi there"), ("assistant", text)]
    assert answer(events).usage is not None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_messages_are_recorded(proxy: Proxy, store: Store, stream: bool) -> None:
    session = sid()
    client = anthropic_client(proxy)
    request: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi claude"}],
        "extra_headers": {"x-litellm-session-id": session},
    }
    if stream:
        with client.messages.stream(**request) as reader:
            text = "".join(reader.text_stream)
    else:
        text = client.messages.create(**request).content[0].text
    events = wait_for(store, session, 2)
    assert messages(events) == [("user", "hi claude"), ("assistant", text)]
    assert answer(events).usage is not None
    assert store.load_info(session).system_prompt == "Be brief."


def test_a_conversation_without_a_session_id_threads_by_its_opening(proxy: Proxy, store: Store) -> None:
    client = openai_client(proxy)
    opening = [
        {"role": "system", "content": f"You are agent {uuid.uuid4().hex}."},
        {"role": "user", "content": "first"},
    ]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=opening)
    history = [*opening, {"role": "assistant", "content": first.choices[0].message.content}]
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[*history, {"role": "user", "content": "second"}]
    )
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        found = [info for info in store.list_sessions() if info.system_prompt == opening[0]["content"]]
        if found and found[0].last_seq >= 4:
            break
        time.sleep(0.1)
    assert len(found) == 1
    events = wait_for(store, found[0].id, 4)
    assert [m[1] for m in messages(events)] == ["first", "You said: first", "second", "You said: second"]


def test_a_fallback_is_recorded_once_as_the_call_that_answered(proxy: Proxy, store: Store) -> None:
    session = sid()
    raw = openai_client(proxy).chat.completions.with_raw_response.create(
        model="flaky", messages=[{"role": "user", "content": "fall back"}], metadata={"session_id": session}
    )
    assert raw.headers["x-litellm-attempted-fallbacks"] == "1"
    events = wait_for(store, session, 2)
    assert messages(events) == [("user", "fall back"), ("assistant", "You said: fall back")]
    assert answer(events).error is None


def test_a_failed_call_reaches_the_client_unchanged_and_is_recorded(proxy: Proxy, store: Store) -> None:
    import openai

    session = sid()
    with pytest.raises(openai.InternalServerError):
        openai_client(proxy).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "fail: now"}],
            metadata={"session_id": session},
        )
    deadline = time.monotonic() + _WAIT_SECONDS
    errors: list[SessionEvent] = []
    while time.monotonic() < deadline and not errors:
        try:
            errors = [e for e in store.load(session).events if e.error is not None]
        except SessionNotFound:
            pass
        time.sleep(0.1)
    assert len(errors) == 1


def test_the_proxy_still_refuses_a_key_it_does_not_know(proxy: Proxy, store: Store) -> None:
    import openai

    session = sid()
    client = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            metadata={"session_id": session},
        )
    # Without a database the proxy knows only its master key, and says so (400); with one, 401.
    assert refused.value.status_code in (400, 401)
    # The same session, then, with the proxy's key: only that call is in it (a refused
    # caller's request would be an unauthenticated write into a session it named).
    openai_client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], metadata={"session_id": session}
    )
    events = wait_for(store, session, 2)
    time.sleep(1.0)  # a refused call recorded late would show up meanwhile
    events = store.load(session).events
    assert messages(events)[0] == ("user", "hello") and len(messages(events)) == 2
    assert not [e for e in events if e.error is not None]


def test_the_proxy_example_runs_offline_and_lists_what_it_recorded(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "proxy" / "run.py"
    db = tmp_path / "proxy.db"
    done = subprocess.run(
        [sys.executable, str(example), str(db)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "responses: You said: Summarise the trip." in done.stdout
    sessions = open_store(f"sqlite:///{db}")
    try:
        ids = {info.id for info in sessions.list_sessions()}
        assert {"ticket-42", "ticket-43", "ticket-44"} <= ids
        assert len(ids) == 4  # and the unnamed chat, threaded by its opening
    finally:
        sessions.close()
