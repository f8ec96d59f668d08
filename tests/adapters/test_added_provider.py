"""A provider added from outside: its own adapter module and one row of the provider
table, and every entry point works with its clients (``acme_sdk``, a small SDK written
for these tests, with its HTTP answered in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import acme_sdk
import httpx
import pytest
from acme_provider import ACME
from adapter_support import calls, conversation, only_session, session_events

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.adapters.instrument import default_instrumentor
from sessionware.adapters.providers import add_provider, providers, remove_provider
from sessionware.adapters.summarizer import ClientSummarizer
from sessionware.core.memory import ContextPolicy
from sessionware.core.store import Store

MODEL = "acme-large"


@pytest.fixture
def acme() -> Iterator[None]:
    add_provider(ACME)
    yield
    remove_provider(ACME.name)


@pytest.fixture
def api() -> FakeOpenAI:
    return FakeOpenAI()


def ask(client: Any, history: list[dict[str, Any]], text: str) -> Any:
    history.append({"role": "user", "content": text})
    reply = client.chat.create(model=MODEL, messages=list(history))
    history.append({"role": "assistant", "content": reply.choices[0].message.content})
    return reply


def test_the_table_has_the_added_row_and_only_it_changes(acme: None) -> None:
    assert [row.name for row in providers()] == ["openai", "anthropic", "litellm", "acme_sdk"]
    remove_provider(ACME.name)
    assert "acme_sdk" not in [row.name for row in providers()]
    add_provider(ACME)  # for the fixture to take out again


def test_a_built_in_provider_cannot_be_removed() -> None:
    with pytest.raises(ValueError, match="built-in"):
        remove_provider("openai")


def test_a_wrapped_client_of_the_added_provider_records_its_conversation(
    acme: None, api: FakeOpenAI, store: Store
) -> None:
    client = acme_sdk.Acme(api_key="k", transport=api.transport())
    assert sessionware.wrap(client, store=store) is client
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]

    first = ask(client, history, "Hello")
    ask(client, history, "And again")

    assert isinstance(first, acme_sdk.Completion)  # the SDK's own objects, untouched
    events = session_events(store, only_session(store))
    assert conversation(events) == [
        ("user", "Hello"),
        ("assistant", "You said: Hello"),
        ("user", "And again"),
        ("assistant", "You said: And again"),
    ]
    recorded = calls(events)
    assert [e.provider for e in recorded] == ["acme", "acme"]
    assert all(e.usage is not None and e.usage.input_tokens > 0 for e in recorded)
    assert store.load(only_session(store)).system_prompt == "Be brief."
    sessionware.unwrap(client)
    assert "request" not in vars(client)
    client.close()


async def test_an_async_client_of_the_added_provider_is_recorded_too(
    acme: None, api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(acme_sdk.AsyncAcme(api_key="k", transport=api.transport()), store=store)

    with sessionware.session("acme-async"):
        reply = await client.chat.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])

    assert reply.choices[0].message.content == "You said: Hi"
    assert conversation(session_events(store, "acme-async")) == [
        ("user", "Hi"),
        ("assistant", "You said: Hi"),
    ]
    await client.aclose()


def test_a_failed_call_of_the_added_provider_is_recorded_and_reraised(
    acme: None, api: FakeOpenAI, store: Store
) -> None:
    api.push(lambda request: httpx.Response(503, json={"error": {"message": "busy"}}))
    client = sessionware.wrap(acme_sdk.Acme(api_key="k", transport=api.transport()), store=store)

    with pytest.raises(acme_sdk.AcmeError):
        client.chat.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])

    [failed] = calls(session_events(store, only_session(store)))
    assert failed.error is not None and failed.error.type == "AcmeError"
    client.close()


def test_instrument_patches_the_added_provider_s_client_classes_and_puts_them_back(
    acme: None, api: FakeOpenAI, store: Store
) -> None:
    before = vars(acme_sdk.Acme)["request"]
    made_before = acme_sdk.Acme(api_key="k", transport=api.transport())
    sessionware.instrument(store=store, providers=["acme_sdk"])
    try:
        assert default_instrumentor().patched() == ["acme_sdk.Acme.request", "acme_sdk.AsyncAcme.request"]
        ask(made_before, [], "Instrumented")
    finally:
        sessionware.uninstrument()

    assert vars(acme_sdk.Acme)["request"] is before
    assert conversation(session_events(store, only_session(store)))[0] == ("user", "Instrumented")
    made_before.close()


def test_managed_mode_shapes_the_added_provider_s_requests(acme: None, api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(
        acme_sdk.Acme(api_key="k", transport=api.transport()),
        store=store,
        session_id="managed",
        mode="managed",
        context=ContextPolicy(budget=2000),
    )

    ask(client, [], "Remember the code AC-42")

    sent = api.requests[-1]
    assert any(t["function"]["name"] == "page_fault" for t in sent.get("tools", []))  # the memory tools
    assert conversation(session_events(store, "managed"))[0] == ("user", "Remember the code AC-42")
    client.close()


async def test_the_summarizer_writes_through_the_added_provider_s_client(acme: None, api: FakeOpenAI) -> None:
    client = acme_sdk.Acme(api_key="k", transport=api.transport())
    summarize = ClientSummarizer(client, model=MODEL)

    summary = await summarize("A long exchange about invoices.", 40)

    assert summary.startswith("You said: A long exchange")
    assert api.requests[-1]["max_tokens"] == 40
    client.close()


def test_without_its_row_the_sdk_is_refused_by_wrap(api: FakeOpenAI) -> None:
    client = acme_sdk.Acme(api_key="k", transport=api.transport())
    with pytest.raises(TypeError, match="acme_sdk.Acme"):
        sessionware.wrap(client)
    client.close()
