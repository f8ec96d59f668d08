"""``prompt_cache_key`` on LiteLLM's calls to OpenAI's own API: the real ``litellm`` SDK and
its OpenAI handler, only HTTP mocked (``respx`` on ``api.openai.com``, or ``FakeOpenAI``
behind the transport of a client the app hands LiteLLM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import respx
from adapter_support import make_openai
from litellm_support import wait_for_calls

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.adapters.litellm import SessionCallback, managed
from sessionware.adapters.litellm.proxy import ProxyHook
from sessionware.adapters.openai.cache_key import key_for
from sessionware.core.store import Store

pytestmark = pytest.mark.usefixtures("no_internal_errors")

HELLO = [{"role": "user", "content": "Where is the Louvre?"}]


@pytest.fixture
def sent(openai_api: FakeOpenAI) -> Iterator[list[dict[str, Any]]]:
    """The bodies LiteLLM's own OpenAI client posts to api.openai.com."""
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return openai_api.handle(request)

    with respx.mock(assert_all_called=False) as http:
        http.post("https://api.openai.com/v1/chat/completions").mock(side_effect=answer)
        yield bodies


def test_a_named_session_sends_the_hash_of_its_id(litellm: Any, store: Store, sent: list[Any]) -> None:
    litellm.callbacks = [SessionCallback(store=store)]
    litellm.completion(
        model="gpt-4o-mini", messages=HELLO, api_key="sk-test", metadata={"session_id": "ticket-42"}
    )
    litellm.completion(model="gpt-4o-mini", messages=HELLO, api_key="sk-test", litellm_session_id="ticket-43")
    with sessionware.session("ticket-44"):
        litellm.completion(model="gpt-4o-mini", messages=HELLO, api_key="sk-test")

    assert [b["prompt_cache_key"] for b in sent] == [key_for(f"ticket-{n}") for n in (42, 43, 44)]
    events = wait_for_calls(store, 3)
    assert {"ticket-42", "ticket-43", "ticket-44"} <= events.keys()  # the sessions the keys name


def test_the_callbacks_own_session_names_the_key(litellm: Any, store: Store, sent: list[Any]) -> None:
    litellm.callbacks = [SessionCallback(store=store, session_id="support-9")]
    litellm.completion(model="gpt-4o-mini", messages=HELLO, api_key="sk-test")
    assert sent[0]["prompt_cache_key"] == key_for("support-9")


async def test_an_async_stream_of_a_growing_conversation_keeps_one_key(
    litellm: Any, store: Store, openai_api: FakeOpenAI
) -> None:
    # LiteLLM's own async client sends over aiohttp, which respx does not see: the app's
    # AsyncOpenAI client (OpenAI's API, FakeOpenAI behind its transport) carries the calls.
    litellm.callbacks = [SessionCallback(store=store)]
    client = make_openai("AsyncOpenAI", openai_api)
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}, *HELLO]
    await litellm.acompletion(model="gpt-4o-mini", messages=history, client=client)
    history += [{"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And the Prado?"}]
    stream = await litellm.acompletion(model="gpt-4o-mini", messages=history, client=client, stream=True)
    async for _ in stream:
        pass
    other = [{"role": "user", "content": "Another chat."}]
    await litellm.acompletion(model="gpt-4o-mini", messages=other, client=client)

    keys = [b["prompt_cache_key"] for b in openai_api.requests]
    assert keys[0] == keys[1] != keys[2]
    assert all(k.startswith("sw-") for k in keys)


def test_the_apps_own_key_and_other_servers_are_left_alone(
    litellm: Any, store: Store, sent: list[Any], openai_api: FakeOpenAI
) -> None:
    litellm.callbacks = [SessionCallback(store=store, session_id="s")]
    litellm.completion(model="gpt-4o-mini", messages=HELLO, api_key="sk-test", prompt_cache_key="mine")
    assert sent[0]["prompt_cache_key"] == "mine"

    elsewhere: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        elsewhere.append(json.loads(request.content))
        return openai_api.handle(request)

    local = openai.OpenAI(
        api_key="offline",
        base_url="http://127.0.0.1:8000/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
    )
    litellm.completion(model="gpt-4o-mini", messages=HELLO, client=local, api_base="http://127.0.0.1:8000/v1")
    assert elsewhere and "prompt_cache_key" not in elsewhere[0]


def test_the_proxy_hook_sends_the_key_the_same_way(litellm: Any, store: Store, sent: list[Any]) -> None:
    """The proxy's hook is a ``SessionCallback``: the proxy sends through the same
    ``litellm.acompletion`` and OpenAI handler, which hand it the body in the same way."""
    litellm.callbacks = [ProxyHook(store=store)]
    litellm.completion(
        model="gpt-4o-mini", messages=HELLO, api_key="sk-test", litellm_session_id="from-header-7"
    )
    assert sent[0]["prompt_cache_key"] == key_for("from-header-7")


def test_managed_rounds_carry_the_key_of_their_session(litellm: Any, store: Store, sent: list[Any]) -> None:
    handle = managed(budget=2000, store=store, session_id="managed-7")
    handle.completion(model="gpt-4o-mini", messages=HELLO, api_key="sk-test")
    litellm.callbacks = [
        SessionCallback(store=store, session_id="not-this-one")
    ]  # leaves managed rounds alone
    handle.completion(
        model="gpt-4o-mini", messages=[*HELLO, {"role": "user", "content": "More?"}], api_key="sk-test"
    )

    assert [b["prompt_cache_key"] for b in sent] == [key_for("managed-7")] * 2
    assert any(t["function"]["name"] == "search_pages" for t in sent[0]["tools"])  # the built context
