"""Managed mode in a real LiteLLM proxy (2 workers, ``SESSIONWARE_MODE=managed``), driven
by the openai and anthropic SDKs over HTTP, recording into a real Redis.

The upstream is the fake OpenAI/Anthropic API; it keeps the bodies it received, so the
tests see what the proxy actually sent: the VM-built context inside the budget, and the
hidden rounds that served the model's memory calls.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from proxy_support import Proxy, anthropic_client, openai_client

from sessionware.adapters.litellm.fake_upstream import FakeUpstream
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.errors import SessionNotFound
from sessionware.core.session.enums import EventType
from sessionware.core.session.models import SessionEvent
from sessionware.core.store import Store, open_store

pytestmark = [pytest.mark.slow, pytest.mark.redis]

BUDGET = 1500
_WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream(keep=64).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store_url(redis_url: str) -> str:
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, store_url: str) -> Iterator[Proxy]:
    env = {"SESSIONWARE_MODE": "managed", "SESSIONWARE_BUDGET": str(BUDGET)}
    running = Proxy.start(upstream.base_url, store=store_url, workers=2, env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def sent_upstream(upstream: FakeUpstream, marker: str) -> list[dict[str, Any]]:
    """The bodies the upstream received whose latest message mentions ``marker``."""
    found = []
    for body in list(upstream.received):
        messages = body.get("messages") or []
        if any(marker in str(m.get("content")) for m in messages if m.get("role") == "user"):
            found.append(body)
    return found


def long_history(marker: str, turns: int) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a patient assistant."}]
    for turn in range(turns):
        filler = f"turn {turn} of {marker}: " + "the quick brown fox jumps over the lazy dog " * 4
        history += [{"role": "user", "content": filler}, {"role": "assistant", "content": f"noted {turn}"}]
    return history


def wait_for(store: Store, session_id: str, predicate: Any) -> list[SessionEvent]:
    deadline = time.monotonic() + _WAIT_SECONDS
    events: list[SessionEvent] = []
    while time.monotonic() < deadline:
        try:
            events = store.load(session_id).events
        except SessionNotFound:
            events = []
        if predicate(events):
            return events
        time.sleep(0.1)
    raise AssertionError(f"{session_id}: {[(e.type, e.content) for e in events]}")


def answers(events: list[SessionEvent]) -> list[SessionEvent]:
    return [e for e in events if e.type is EventType.MESSAGE and e.role and e.role.value == "assistant"]


def wire_tokens(body: dict[str, Any]) -> int:
    return counter_for_model("gpt-4o-mini").count_messages(body["messages"], body.get("tools") or None)


def test_a_long_history_goes_upstream_inside_the_budget(
    proxy: Proxy, upstream: FakeUpstream, store: Store
) -> None:
    marker, session = uuid.uuid4().hex[:10], f"managed-{uuid.uuid4().hex[:8]}"
    history = long_history(marker, 80)  # ~5,000 tokens: three times the budget
    question = f"last question {marker}"
    app_tokens = counter_for_model("gpt-4o-mini").count_messages(history)
    assert app_tokens > 3 * BUDGET
    with openai_client(proxy) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[*history, {"role": "user", "content": question}],
            metadata={"session_id": session},
        )
    assert reply.choices[0].message.content == f"You said: {question}"
    assert not reply.choices[0].message.tool_calls
    sent = [b for b in sent_upstream(upstream, question) if b["messages"][-1]["content"] == question]
    assert len(sent) == 1
    wire = sent[0]
    assert wire_tokens(wire) <= BUDGET < app_tokens
    assert {t["function"]["name"] for t in wire.get("tools") or ()} >= {"search_pages"}
    assert wire["messages"][0] == {"role": "system", "content": "You are a patient assistant."}
    events = wait_for(store, session, lambda e: len(answers(e)) >= 81)
    final = answers(events)[-1]
    assert final.content == f"You said: {question}"
    managed = final.metadata["managed"]
    assert managed["budget"] == BUDGET and managed["built_tokens"] <= BUDGET
    assert final.app_input_tokens is not None and final.app_input_tokens > 3 * BUDGET
    # The whole history is in the session once, though only the budget went upstream.
    assert len([e for e in events if e.type is EventType.MESSAGE and e.role and e.role.value == "user"]) == 81


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_memory_calls_are_served_in_hidden_rounds(
    proxy: Proxy, upstream: FakeUpstream, store: Store, stream: bool
) -> None:
    marker, session = uuid.uuid4().hex[:10], f"managed-{uuid.uuid4().hex[:8]}"
    history = long_history(marker, 40)
    question = f"recall: turn 3 of {marker}"
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [*history, {"role": "user", "content": question}],
        "metadata": {"session_id": session},
    }
    with openai_client(proxy) as client:
        if stream:
            chunks = list(client.chat.completions.create(stream=True, **request))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
        else:
            message = client.chat.completions.create(**request).choices[0].message
            assert not message.tool_calls
            text = message.content or ""
    assert text == f"You said: {question}"
    rounds = sent_upstream(upstream, question)
    assert len(rounds) == 2  # the round that asked to recall, then the one that answered
    assert rounds[1]["messages"][-1]["role"] == "tool"
    assert all(wire_tokens(body) <= BUDGET for body in rounds)
    events = wait_for(store, session, lambda e: any(a.content == text for a in answers(e)))
    hidden = [e for e in events if e.hidden and e.type is EventType.LLM_CALL]
    assert [e.type for e in events].count(EventType.PAGE_FAULT) == 1  # the memory call, served
    assert len(hidden) == 1 and [c.name for c in hidden[0].tool_calls] == ["search_pages"]
    final = answers(events)[-1]
    assert final.metadata["managed"]["hidden_rounds"] == 1 and not final.tool_calls
    assert len(answers(events)) == 41  # recorded once: not by the observing hook as well


def test_a_budget_too_small_for_the_latest_turn_is_refused_with_http_400(proxy: Proxy) -> None:
    import openai

    huge = "word " * (2 * BUDGET)
    with openai_client(proxy) as client, pytest.raises(openai.BadRequestError, match="budget"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": huge}])


def test_anthropic_messages_pass_untouched_and_are_recorded(
    proxy: Proxy, upstream: FakeUpstream, store: Store
) -> None:
    marker, session = uuid.uuid4().hex[:10], f"managed-{uuid.uuid4().hex[:8]}"
    question = f"hello claude {marker}"
    with anthropic_client(proxy) as client:
        reply = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": question}],
            extra_headers={"x-litellm-session-id": session},
        )
    assert reply.content[0].text == f"You said: {question}"
    sent = sent_upstream(upstream, question)
    assert len(sent) == 1 and "tools" not in sent[0]
    events = wait_for(store, session, lambda e: len(answers(e)) >= 1)
    assert answers(events)[0].content == f"You said: {question}"
