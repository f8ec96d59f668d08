"""LiteLLM calling the OpenAI SDK under a wrapped or instrumented client: counted once.

LiteLLM is driven through its real API with its real OpenAI client code; only HTTP is
fake (``FakeOpenAI`` behind the client's transport, or ``respx`` for the clients LiteLLM
builds itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from adapter_support import calls, make_openai
from litellm_support import await_calls, recorded_calls, wait_for_calls

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.adapters.litellm import SessionCallback
from sessionware.core.store import Store

# LiteLLM swallows what a callback raises: a bug of ours would only show up there.
pytestmark = pytest.mark.usefixtures("no_internal_errors")

MESSAGES = [{"role": "user", "content": "Where is the Louvre?"}]


@pytest.fixture
def instrumented(store: Store) -> Iterator[None]:
    sessionware.instrument(store=store)
    yield
    sessionware.uninstrument()


def test_a_call_through_a_wrapped_client_is_recorded_once_by_the_callback(
    litellm: Any, store: Store, openai_api: FakeOpenAI
):
    litellm.callbacks = [SessionCallback(store=store)]
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)

    reply = litellm.completion(model="gpt-4o-mini", messages=MESSAGES, client=client)

    assert reply.choices[0].message.content == "You said: Where is the Louvre?"
    assert len(openai_api.requests) == 1
    [call] = wait_for_calls(store, 1) and recorded_calls(store)
    assert call.metadata["litellm_call_id"]  # recorded by the callback, not the client


def test_a_stream_through_a_wrapped_client_is_recorded_once(
    litellm: Any, store: Store, openai_api: FakeOpenAI
):
    litellm.callbacks = [SessionCallback(store=store)]
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)

    stream = litellm.completion(model="gpt-4o-mini", messages=MESSAGES, client=client, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream)

    assert text == "You said: Where is the Louvre?"
    wait_for_calls(store, 1)
    [call] = recorded_calls(store)
    assert call.content == text and call.metadata["litellm_call_id"]


async def test_an_async_call_through_a_wrapped_client_is_recorded_once(
    litellm: Any, store: Store, openai_api: FakeOpenAI
):
    litellm.callbacks = [SessionCallback(store=store)]
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)

    await litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, client=client)

    await await_calls(store, 1)
    [call] = recorded_calls(store)
    assert call.metadata["litellm_call_id"]


def test_without_the_callback_the_wrapped_client_records_the_call(
    litellm: Any, store: Store, openai_api: FakeOpenAI
):
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)

    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, client=client)

    [call] = recorded_calls(store)
    assert "litellm_call_id" not in call.metadata


def test_the_wrapped_client_still_records_its_own_calls_while_the_callback_is_registered(
    litellm: Any, store: Store, openai_api: FakeOpenAI
):
    litellm.callbacks = [SessionCallback(store=store)]
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store, session_id="direct")

    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    [call] = recorded_calls(store)
    assert call.session_id == "direct"


def test_under_instrument_litellms_own_openai_client_is_counted_once(
    litellm: Any, store: Store, openai_api: FakeOpenAI, instrumented: None
):
    with respx.mock(assert_all_called=True) as http:
        http.post("https://api.openai.com/v1/chat/completions").mock(side_effect=openai_api.handle)
        reply = litellm.completion(model="gpt-4o-mini", messages=MESSAGES, api_key="sk-test")

    assert reply.choices[0].message.content == "You said: Where is the Louvre?"
    wait_for_calls(store, 1)
    [call] = recorded_calls(store)
    assert call.metadata["litellm_call_id"]


async def test_under_instrument_an_async_litellm_stream_through_a_plain_client_is_counted_once(
    litellm: Any, store: Store, openai_api: FakeOpenAI, instrumented: None
):
    client = make_openai("AsyncOpenAI", openai_api)  # not wrapped: the class is patched

    stream = await litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, client=client, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])

    assert text == "You said: Where is the Louvre?"
    events = await await_calls(store, 1)
    [call] = [c for e in events.values() for c in calls(e)]
    assert call.content == text and call.metadata["litellm_call_id"]


def test_a_conversation_keeps_its_session_whether_litellm_or_a_wrapped_client_sends_a_turn(
    litellm: Any, store: Store, openai_api: FakeOpenAI
):
    litellm.callbacks = [SessionCallback(store=store)]
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}, *MESSAGES]

    first = litellm.completion(model="gpt-4o-mini", messages=history, mock_response="In Paris.")
    wait_for_calls(store, 1)
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Open today?"},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=history)

    [(session_id, events)] = wait_for_calls(store, 2).items()
    assert session_id.startswith("auto-")
    assert [e.text for e in events if e.role is not None and e.type.value == "message"] == [
        "Where is the Louvre?",
        "In Paris.",
        "Open today?",
        "You said: Open today?",
    ]
