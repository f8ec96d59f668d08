"""``prompt_cache_key`` on OpenAI's own API: a stable hash of the session, in observe and
managed mode, never over the app's own key, never on other hosts or endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import openai

import sessionware
from sessionware import ContextPolicy
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.adapters.openai.cache_key import key_for

MODEL = "gpt-4o-mini"


def _client(bodies: list[dict[str, Any]], *, base_url: str | None = None, **wrap_kwargs: Any) -> Any:
    def script(body: Any) -> Reply:
        bodies.append(dict(body))
        return Reply(text="ok")

    api = FakeOpenAI(script)
    client = openai.OpenAI(
        api_key="offline", base_url=base_url, http_client=httpx.Client(transport=api.transport())
    )
    return sessionware.wrap(client, **wrap_kwargs)


def test_a_named_session_sends_the_hash_of_its_id() -> None:
    bodies: list[dict[str, Any]] = []
    client = _client(bodies, session_id="ticket-42")
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with sessionware.session("ticket-43"):
        _client(bodies).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])

    assert [b["prompt_cache_key"] for b in bodies] == [key_for("ticket-42"), key_for("ticket-43")]


def test_an_automatic_session_keeps_one_key_as_its_history_grows() -> None:
    bodies: list[dict[str, Any]] = []
    client = _client(bodies)
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plan a trip."}]
    client.chat.completions.create(model=MODEL, messages=history)
    history += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "To Lisbon."}]
    client.chat.completions.create(model=MODEL, messages=history, stream=True).close()
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Another chat."}])

    keys = [b["prompt_cache_key"] for b in bodies]
    assert keys[0] == keys[1] != keys[2]
    session = sessionware.current_session()
    assert session is not None and keys[2] == key_for(session.id)


def test_the_apps_own_key_and_other_hosts_and_endpoints_are_left_alone() -> None:
    bodies: list[dict[str, Any]] = []
    _client(bodies, session_id="s").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], prompt_cache_key="mine"
    )
    _client(bodies, base_url="http://127.0.0.1:8000/v1", session_id="s").chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert bodies[0]["prompt_cache_key"] == "mine"
    assert "prompt_cache_key" not in bodies[1]


def test_managed_mode_sends_the_key_with_its_built_context() -> None:
    bodies: list[dict[str, Any]] = []
    client = _client(bodies, session_id="managed-7", mode="managed", context=ContextPolicy(budget=2000))
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert bodies[0]["prompt_cache_key"] == key_for("managed-7")
    assert any(t["function"]["name"] == "search_pages" for t in bodies[0]["tools"])  # the built context


def test_instrumented_clients_send_the_key_in_observe_and_managed_mode() -> None:
    bodies: list[dict[str, Any]] = []

    def script(body: Any) -> Reply:
        bodies.append(dict(body))
        return Reply(text="ok")

    def plain(base_url: str | None = None) -> Any:
        transport = FakeOpenAI(script).transport()
        return openai.OpenAI(
            api_key="offline", base_url=base_url, http_client=httpx.Client(transport=transport)
        )

    hello = [{"role": "user", "content": "hi"}]
    sessionware.instrument(store="memory://", session_id="zero-code-1", providers=["openai"])
    try:
        plain().chat.completions.create(model=MODEL, messages=hello)
        plain().responses.create(model=MODEL, input="hi")
        plain(base_url="http://127.0.0.1:8000/v1").chat.completions.create(model=MODEL, messages=hello)
    finally:
        sessionware.uninstrument()
    sessionware.instrument(store="memory://", session_id="zero-code-2", providers=["openai"], mode="managed")
    try:
        plain().chat.completions.create(model=MODEL, messages=hello)
    finally:
        sessionware.uninstrument()

    keys = [b.get("prompt_cache_key") for b in bodies]
    assert keys == [key_for("zero-code-1"), key_for("zero-code-1"), None, key_for("zero-code-2")]
    assert any(t["function"]["name"] == "search_pages" for t in bodies[-1]["tools"])  # managed
