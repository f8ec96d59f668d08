"""``instrument()`` / ``uninstrument()`` in this process: class-level patching of the real
SDK clients (HTTP faked), idempotence, exact reversal, and no double counting with
``wrap()``."""

from __future__ import annotations

import doctest
import importlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import openai.lib.azure
import pytest
from adapter_support import calls, conversation, make_anthropic, make_openai, session_events

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.adapters.instrument import default_instrumentor, is_instrumented
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.store import Store

CLIENT_CLASSES = (
    openai.OpenAI,
    openai.AsyncOpenAI,
    openai.lib.azure.AzureOpenAI,
    openai.lib.azure.AsyncAzureOpenAI,
    anthropic.Anthropic,
    anthropic.AsyncAnthropic,
)
HELLO = [{"role": "user", "content": "hello"}]
SYSTEM_PROMPT = {"role": "system", "content": "You are brief."}


@pytest.fixture(autouse=True)
def never_left_instrumented() -> Iterator[None]:
    yield
    if is_instrumented():
        sessionware.uninstrument()


def class_attributes() -> list[dict[str, Any]]:
    return [dict(vars(cls)) for cls in CLIENT_CLASSES]


def test_the_round_trip_restores_the_exact_original_attributes(store: Store, litellm: Any):
    app_callback = object()
    litellm.success_callback.append(app_callback)
    before = class_attributes()
    lists_before = {name: list(getattr(litellm, name)) for name in ("callbacks", "success_callback")}
    meta_path_before = list(sys.meta_path)

    sessionware.instrument(store=store)
    assert vars(openai.OpenAI)["request"] is not before[0].get("request")
    assert "_request" in vars(anthropic.AsyncAnthropic)  # anthropic's funnel (see the provider table)
    assert any(type(cb).__name__ == "SessionCallback" for cb in litellm.callbacks)
    sessionware.uninstrument()

    after = class_attributes()
    assert after == before
    # inherited before, inherited again
    assert all("request" not in attrs and "_request" not in attrs for attrs in after)
    assert {name: list(getattr(litellm, name)) for name in lists_before} == lists_before
    assert sys.meta_path == meta_path_before
    assert not is_instrumented()


def test_clients_created_before_and_after_are_recorded(store: Store, openai_api: FakeOpenAI):
    early = make_openai("OpenAI", openai_api)
    sessionware.instrument(store=store, providers=["openai"])
    late = make_openai("AzureOpenAI", openai_api)

    early.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "early"}])
    late.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "late"}])

    assert store.flush() is None
    providers = sorted(
        c.provider for info in store.list_sessions() for c in calls(session_events(store, info.id))
    )
    assert providers == ["azure", "openai"]


async def test_async_clients_and_streams_of_both_sdks_are_recorded(
    store: Store, openai_api: FakeOpenAI, anthropic_api: FakeAnthropic
):
    sessionware.instrument(store=store, session_id="all")
    oai = make_openai("AsyncOpenAI", openai_api)
    claude = make_anthropic("AsyncAnthropic", anthropic_api)

    stream = await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await claude.messages.create(model="claude-3-5-sonnet-latest", max_tokens=50, messages=HELLO)

    recorded = calls(session_events(store, "all"))
    assert [c.provider for c in recorded] == ["openai", "anthropic"]
    assert recorded[0].content == text


def test_instrumenting_twice_patches_once_and_warns(
    store: Store, openai_api: FakeOpenAI, caplog: pytest.LogCaptureFixture
):
    sessionware.instrument(store=store, providers=["openai"])
    patched = default_instrumentor().patched()
    hook = vars(openai.OpenAI)["request"]
    with caplog.at_level(logging.WARNING):
        sessionware.instrument(store=store, providers=["openai"])

    assert default_instrumentor().patched() == patched and vars(openai.OpenAI)["request"] is hook
    assert "already instrumented" in caplog.text
    make_openai("OpenAI", openai_api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert len(calls(session_events(store, store.list_sessions()[0].id))) == 1


def test_instrumenting_again_with_other_settings_applies_them(store: Store, openai_api: FakeOpenAI):
    client = make_openai("OpenAI", openai_api)
    sessionware.instrument(store=store, session_id="first", providers=["openai"])
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    sessionware.instrument(store=store, session_id="second", providers=["openai"])
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert len(calls(session_events(store, "first"))) == 1
    assert len(calls(session_events(store, "second"))) == 1


def test_uninstrumenting_when_not_instrumented_only_warns(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        sessionware.uninstrument()
    assert "not instrumented" in caplog.text


def test_after_uninstrument_nothing_is_recorded(store: Store, openai_api: FakeOpenAI):
    client = make_openai("OpenAI", openai_api)
    sessionware.instrument(store=store, providers=["openai"])
    sessionware.uninstrument()

    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    store.flush()
    assert store.list_sessions() == []


@pytest.mark.parametrize("wrap_first", [True, False])
def test_a_wrapped_client_under_instrumentation_records_once_with_its_own_settings(
    store: Store, openai_api: FakeOpenAI, wrap_first: bool
):
    client = make_openai("OpenAI", openai_api)
    if wrap_first:
        sessionware.wrap(client, store=store, session_id="wrapped")
    sessionware.instrument(store=store, session_id="global", providers=["openai"])
    if not wrap_first:
        sessionware.wrap(client, store=store, session_id="wrapped")

    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    for _ in stream:
        pass

    assert [s.id for s in store.list_sessions()] == ["wrapped"]
    assert len(calls(session_events(store, "wrapped"))) == 2


def test_a_client_wrapped_while_instrumented_records_once_after_uninstrument(
    store: Store, openai_api: FakeOpenAI
):
    sessionware.instrument(store=store, providers=["openai"])
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store, session_id="wrapped")
    sessionware.uninstrument()

    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert len(calls(session_events(store, "wrapped"))) == 1


def test_only_the_chosen_providers_are_patched(store: Store, anthropic_api: FakeAnthropic):
    before = dict(vars(openai.OpenAI))
    sessionware.instrument(store=store, providers=["anthropic"])

    assert dict(vars(openai.OpenAI)) == before
    make_anthropic("Anthropic", anthropic_api).messages.create(
        model="claude-3-5-sonnet-latest", max_tokens=20, messages=HELLO
    )
    [info] = store.list_sessions()
    assert conversation(session_events(store, info.id))[0] == ("user", "hello")


def test_an_unsupported_sdk_version_is_left_alone_with_a_warning(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(openai, "__version__", "9.0.0")
    with caplog.at_level(logging.WARNING):
        sessionware.instrument(store=store, providers=["openai", "anthropic"])

    assert "does not instrument openai 9.0.0" in caplog.text
    assert "request" not in vars(openai.OpenAI)
    assert "anthropic.Anthropic._request" in default_instrumentor().patched()


def test_a_hook_replaced_by_another_library_is_left_in_place_and_switched_off(
    store: Store, openai_api: FakeOpenAI, caplog: pytest.LogCaptureFixture
):
    sessionware.instrument(store=store, providers=["openai"])
    ours = vars(openai.OpenAI)["request"]

    def theirs(self: Any, *args: Any, **kwargs: Any) -> Any:
        return ours(self, *args, **kwargs)

    openai.OpenAI.request = theirs  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING):
            sessionware.uninstrument()
        assert vars(openai.OpenAI)["request"] is theirs
        assert "replaced after sessionware patched it" in caplog.text
        make_openai("OpenAI", openai_api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        store.flush()
        assert store.list_sessions() == []
    finally:
        del openai.OpenAI.request


def test_the_apps_own_session_callback_is_kept_and_not_doubled(store: Store, litellm: Any):
    from sessionware.adapters.litellm import SessionCallback

    own = SessionCallback(store=store)
    litellm.callbacks = [own]

    sessionware.instrument(store=store)
    assert litellm.callbacks == [own]
    sessionware.uninstrument()
    assert litellm.callbacks == [own]


def test_litellm_calls_are_recorded_once_under_instrumentation(store: Store, litellm: Any):
    from litellm_support import wait_for_calls

    sessionware.instrument(store=store)
    litellm.completion(model="gpt-4o-mini", messages=HELLO, mock_response="hi there")

    [events] = wait_for_calls(store, 1).values()
    assert conversation(events) == [("user", "hello"), ("assistant", "hi there")]


def test_managed_mode_sends_the_built_context_and_records_both_sides(store: Store, openai_api: FakeOpenAI):
    client = make_openai("OpenAI", openai_api)
    sessionware.instrument(
        store=store, session_id="managed", mode="managed", budget=3000, providers=["openai"]
    )

    client.chat.completions.create(model="gpt-4o-mini", messages=[SYSTEM_PROMPT, *HELLO])

    [sent] = openai_api.requests
    assert {t["function"]["name"] for t in sent["tools"]} >= {"page_fault", "search_pages"}
    [answer] = calls(session_events(store, "managed"))
    assert answer.metadata["managed"]["budget"] == 3000
    assert answer.app_input_tokens is not None


def test_managed_calls_of_an_instrumented_client_are_taken_at_the_resource_method(
    store: Store, openai_api: FakeOpenAI
):
    client = make_openai("OpenAI", openai_api)
    sessionware.instrument(
        store=store, session_id="managed", mode="managed", budget=3000, providers=["openai"]
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=[SYSTEM_PROMPT, *HELLO])
    assert "create" in vars(client.chat.completions)  # hooked when the client was first seen

    client.chat.completions.create(model="gpt-4o-mini", messages=[SYSTEM_PROMPT, *HELLO, *HELLO])
    assert "page_fault" in json.dumps(openai_api.requests[-1])
    assert len(calls(session_events(store, "managed"))) == 2

    sessionware.uninstrument()
    client.chat.completions.create(model="gpt-4o-mini", messages=[SYSTEM_PROMPT, *HELLO])
    assert "page_fault" not in json.dumps(openai_api.requests[-1])  # passed through, as sent
    assert openai_api.requests[-1]["messages"] == [SYSTEM_PROMPT, *HELLO]
    assert len(calls(session_events(store, "managed"))) == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"budget": 4000}, "configures managed mode"),
        ({"mode": "managed", "budget": 4000, "context": ContextPolicy()}, "not both"),
        ({"mode": "managed", "budget": -5}, "positive number"),
        ({"mode": "turbo"}, "mode must be"),
        ({"providers": ["cohere"]}, "unknown provider"),
        ({"session_id": ""}, "non-empty"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_patched(settings: dict[str, Any], message: str):
    before = class_attributes()
    with pytest.raises(sessionware.InvalidSessionOperation, match=message):
        sessionware.instrument(**settings)
    assert class_attributes() == before and not is_instrumented()


def test_an_unknown_store_is_refused_when_the_sdks_are_loaded(openai_api: FakeOpenAI):
    before = class_attributes()
    with pytest.raises(sessionware.InvalidSessionOperation, match="unknown store"):
        sessionware.instrument(store="bogus://nowhere", providers=["openai"])
    assert class_attributes() == before and not is_instrumented()


def test_a_failed_bookkeeping_step_never_breaks_the_call(
    store: Store, openai_api: FakeOpenAI, lenient: None, monkeypatch: pytest.MonkeyPatch
):
    from sessionware.adapters.openai import spec as openai_adapter

    def broken_spec(client: Any) -> Any:
        raise RuntimeError("spec reader broke")

    monkeypatch.setattr(openai_adapter, "spec_for", broken_spec)
    sessionware.instrument(store=store, providers=["openai"])
    openai_api.push(Reply(text="still answered"))

    reply = make_openai("OpenAI", openai_api).chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert reply.choices[0].message.content == "still answered"
    assert sessionware.adapters.api.health().last_error == "RuntimeError: spec reader broke"


def test_the_docstring_examples_hold():
    result = doctest.testmod(
        importlib.import_module("sessionware.adapters.instrument.instrumentor"), optionflags=doctest.ELLIPSIS
    )

    assert result.attempted > 0
    assert result.failed == 0
