"""``wrap`` / ``unwrap``: same object, idempotent, reversible, every supported client class."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from adapter_support import (
    ANTHROPIC_KINDS,
    ASYNC_KINDS,
    OPENAI_KINDS,
    calls,
    make_anthropic,
    make_openai,
    only_session,
    session_events,
)

import sessionware
from sessionware.adapters.api import is_wrapped
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.store import Store

USER = [{"role": "user", "content": "What is the capital of Portugal?"}]


def _call(client: Any, kind: str) -> Any:
    if kind in ANTHROPIC_KINDS:
        result = client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=64, messages=USER)
    else:
        result = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    if kind in ASYNC_KINDS:
        return asyncio.run(result)
    return result


def _client(kind: str, openai_api: FakeOpenAI, anthropic_api: FakeAnthropic) -> Any:
    if kind in ANTHROPIC_KINDS:
        return make_anthropic(kind, anthropic_api)
    return make_openai(kind, openai_api)


@pytest.mark.parametrize("kind", OPENAI_KINDS + ANTHROPIC_KINDS)
def test_every_supported_client_is_wrapped_in_place_and_records(
    kind: str, openai_api: FakeOpenAI, anthropic_api: FakeAnthropic, store: Store
) -> None:
    client = _client(kind, openai_api, anthropic_api)
    wrapped = sessionware.wrap(client, store=store)

    assert wrapped is client
    assert type(wrapped).__name__ == kind
    result = _call(client, kind)

    text = result.content[0].text if kind in ANTHROPIC_KINDS else result.choices[0].message.content
    assert text == "You said: What is the capital of Portugal?"
    events = session_events(store, only_session(store))
    [call] = calls(events)
    assert call.content == text
    assert call.provider == {"AzureOpenAI": "azure", "AsyncAzureOpenAI": "azure"}.get(
        kind, "anthropic" if kind in ANTHROPIC_KINDS else "openai"
    )
    assert call.usage is not None and call.usage.input_tokens > 0
    assert call.cost is not None and call.cost > 0


@pytest.mark.parametrize("kind", OPENAI_KINDS + ANTHROPIC_KINDS)
def test_unwrap_restores_the_client_exactly(
    kind: str, openai_api: FakeOpenAI, anthropic_api: FakeAnthropic, store: Store
) -> None:
    client = _client(kind, openai_api, anthropic_api)
    before = dict(vars(client))

    sessionware.unwrap(sessionware.wrap(client, store=store))

    assert vars(client) == before
    assert not is_wrapped(client)
    _call(client, kind)
    store.flush()
    assert store.list_sessions() == []


def test_wrapping_twice_records_each_call_once(openai_api: FakeOpenAI, store: Store) -> None:
    client = make_openai("OpenAI", openai_api)
    sessionware.wrap(client, store=store)
    sessionware.wrap(client, store=store)

    client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert len(calls(session_events(store, only_session(store)))) == 1


def test_wrapping_again_with_new_settings_updates_them(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store, session_id="first")
    sessionware.wrap(client, store=store, session_id="second")

    client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    store.flush()
    assert [i.id for i in store.list_sessions()] == ["second"]


def test_unwrapping_an_unwrapped_client_is_a_no_op(openai_api: FakeOpenAI) -> None:
    client = make_openai("OpenAI", openai_api)
    before = dict(vars(client))

    assert sessionware.unwrap(client) is client
    assert vars(client) == before


@pytest.mark.parametrize("derive", ["with_options", "copy"])
def test_clients_derived_from_a_wrapped_client_record_too(
    derive: str, openai_api: FakeOpenAI, store: Store
) -> None:
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store, session_id="s")

    derived = getattr(client, derive)(timeout=5.0)
    derived.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert isinstance(derived, openai.OpenAI)
    assert len(calls(session_events(store, "s"))) == 1


@pytest.mark.parametrize("thing", [object(), "OpenAI", None, openai.resources.chat.Chat])
def test_unsupported_objects_get_a_type_error_naming_the_supported_clients(thing: object) -> None:
    with pytest.raises(
        TypeError, match=r"supports openai\.OpenAI, openai\.AsyncOpenAI.*anthropic\.AsyncAnthropic"
    ):
        sessionware.wrap(thing)


def test_bad_wrap_arguments_are_refused_before_anything_is_hooked(openai_api: FakeOpenAI) -> None:
    client = make_openai("OpenAI", openai_api)

    with pytest.raises(InvalidSessionOperation, match="context= configures managed mode"):
        sessionware.wrap(client, context=sessionware.ContextPolicy(budget=1000))
    with pytest.raises(InvalidSessionOperation, match="mode must be 'observe' or 'managed'"):
        sessionware.wrap(client, mode="turbo")
    with pytest.raises(InvalidSessionOperation, match="a session id must not be empty or blank"):
        sessionware.wrap(client, session_id=" ")
    assert not is_wrapped(client)


def test_a_store_url_is_accepted(openai_api: FakeOpenAI, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=url, session_id="disk")

    client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    on_disk = sessionware.open_store(url)
    assert on_disk.load("disk").totals.llm_calls == 1


def test_isinstance_and_type_are_unchanged(anthropic_api: FakeAnthropic) -> None:
    client = make_anthropic("AsyncAnthropic", anthropic_api)

    sessionware.wrap(client)

    assert isinstance(client, anthropic.AsyncAnthropic)
    assert type(client) is anthropic.AsyncAnthropic
