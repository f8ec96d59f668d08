"""Managed mode for LiteLLM: ``managed(...)`` sends a budgeted context through LiteLLM's real
``completion`` / ``acompletion`` and serves the model's memory calls out of the app's sight.

LiteLLM runs its real code down to the OpenAI SDK client it is given (``client=``); only
HTTP is fake (``FakeOpenAI`` behind the client's transport), so the scripted model
(``RecallModel``) answers only from what LiteLLM actually sent. LiteLLM's own offline
mocks (``mock_response``, ``mock_tool_calls``) are used where no model needs to read
what it is sent.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from adapter_support import make_openai, session_events
from litellm_support import recorded_calls
from managed_support import (
    CODE,
    QUESTION,
    SYSTEM,
    RecallModel,
    assert_api_valid,
    last_turn,
    offered_tools,
    user_text,
)

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.adapters.litellm import ManagedLiteLLM, ManagedStream, SessionCallback, managed
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.memory import ContextPolicy
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

# LiteLLM swallows what a callback raises: a bug of ours would only show up there.
pytestmark = pytest.mark.usefixtures("no_internal_errors")

MODEL = "gpt-4o-mini"


class App:
    """A LiteLLM app that re-sends its whole history on every call, through a managed handle."""

    def __init__(self, store: Store, model: RecallModel | None = None, *, is_async: bool = False, **kw: Any):
        self.api = FakeOpenAI(model or RecallModel())
        self.client = kw.pop("client", None) or make_openai("AsyncOpenAI" if is_async else "OpenAI", self.api)
        self.is_async = is_async
        self.handle = managed(store=store, session_id="s", **{"budget": 1200, **kw})
        self.history: list[Any] = [{"role": "system", "content": SYSTEM}]

    async def send(self, **extra: Any) -> Any:
        kwargs = {"model": MODEL, "messages": self.history, "client": self.client, **extra}
        if self.is_async:
            return await self.handle.acompletion(**kwargs)
        return self.handle.completion(**kwargs)

    async def ask(self, *, stream: bool = False, **extra: Any) -> tuple[str, list[str]]:
        """The answer's text and the tool calls the app was shown."""
        reply = await self.send(stream=stream, **extra)
        if not stream:
            message = reply.choices[0].message
            return message.content or "", [c.function.name for c in message.tool_calls or ()]
        chunks = [c async for c in reply] if self.is_async else list(reply)
        text, names = "", []
        for chunk in chunks:
            delta = chunk.choices[0].delta if chunk.choices else None
            if delta is not None:
                text += delta.content or ""
                names += [c.function.name for c in delta.tool_calls or () if c.function.name]
        return text, names

    async def converse(self, turns: int) -> None:
        for i in range(turns):
            self.history.append({"role": "user", "content": user_text(i)})
            reply = await self.send()
            self.history.append(reply.choices[0].message)  # LiteLLM's own Message, as apps do

    async def probe(self, *, stream: bool = False) -> tuple[str, list[str]]:
        self.history.append({"role": "user", "content": QUESTION})
        before = copy.deepcopy(self.history)
        seen = await self.ask(stream=stream)
        assert self.history == before  # the app's list and its messages are untouched
        return seen


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_memory_call_is_served_in_a_hidden_round_and_the_app_sees_only_the_answer(
    litellm: Any, store: Store, is_async: bool, stream: bool
) -> None:
    # Recall off: the builder would show the fact for the question's own words, and search
    # leaves out what the context shows; here the model's memory call is what finds it.
    app = App(store, is_async=is_async, budget=None, context=ContextPolicy(budget=1200, recall=False))
    await app.converse(40)
    sent_before = len(app.api.requests)

    text, shown_calls = await app.probe(stream=stream)

    assert text == f"The code is {CODE}."
    assert shown_calls == []
    asked, answered = app.api.requests[sent_before:]
    assert "search_pages" in offered_tools(asked)
    kind_of_last, result = last_turn(answered)
    assert kind_of_last == "tool" and CODE in result
    events = session_events(store, "s")
    [hidden] = [e for e in events[-4:] if e.hidden and e.type is EventType.LLM_CALL]
    assert [c.name for c in hidden.tool_calls] == ["search_pages"] and hidden.usage is not None
    assert [e.tool_name for e in events if e.type is EventType.PAGE_FAULT] == ["search_pages"]
    final = events[-1]
    assert (final.role, final.content, final.tool_calls) == (Role.ASSISTANT, text, ())
    assert final.metadata["managed"]["hidden_rounds"] == 1
    assert final.usage is not None and final.usage.input_tokens > 0
    if stream:
        assert hidden.ttft_ms is not None and final.ttft_ms is not None


async def test_wire_tokens_stay_inside_the_budget_while_the_app_sends_its_whole_history(
    litellm: Any, store: Store
) -> None:
    app = App(store, budget=900)
    await app.converse(60)
    await app.probe()

    counter = counter_for_model(MODEL)
    for body in app.api.requests:
        assert counter.count_messages(body["messages"], body.get("tools") or []) <= 900
        assert_api_valid("chat", body)
    final = session_events(store, "s")[-1]
    assert final.app_input_tokens is not None and final.app_input_tokens > 2 * 900
    assert final.usage is not None and final.usage.input_tokens < 900


@pytest.mark.parametrize("client_kind", ["plain", "wrapped", "instrumented"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_managed_call_is_recorded_once_with_the_callback_and_a_recorded_openai_client(
    litellm: Any, store: Store, is_async: bool, client_kind: str
) -> None:
    seen = _LiteLLMEvents()
    litellm.callbacks = [SessionCallback(store=store), seen]
    api = FakeOpenAI(RecallModel())
    client = make_openai("AsyncOpenAI" if is_async else "OpenAI", api)
    if client_kind == "wrapped":
        client = sessionware.wrap(client, store=store)
    if client_kind == "instrumented":
        sessionware.instrument(store=store, providers=["openai"])
    try:
        app = App(store, is_async=is_async, client=client)
        app.api = api
        await app.converse(30)
        await app.probe()
        await seen.wait_for(len(api.requests))  # LiteLLM's callbacks ran for every round
    finally:
        if client_kind == "instrumented":
            sessionware.uninstrument()

    calls = recorded_calls(store)
    assert len(api.requests) == 32  # 31 app calls, one with a hidden round before its answer
    assert [c.hidden for c in calls] == [False] * 30 + [True, False]
    assert {c.session_id for c in calls} == {"s"}
    assert not any("litellm_call_id" in c.metadata for c in calls)  # none came from the callback


class _LiteLLMEvents:
    """A LiteLLM callback that counts the success events LiteLLM fired (after ours ran)."""

    def __new__(cls) -> Any:
        from litellm.integrations.custom_logger import CustomLogger

        class Counter(CustomLogger):
            def __init__(self) -> None:
                super().__init__()
                self.ids: set[str] = set()
                self.lock = threading.Lock()

            def log_success_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                with self.lock:
                    self.ids.add(kwargs["litellm_call_id"])

            async def async_log_success_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                self.log_success_event(kwargs, response_obj, start_time, end_time)

            async def wait_for(self, count: int, timeout: float = 20.0) -> None:
                # Async events run on this loop, sync ones on LiteLLM's threads: yield to both.
                deadline = time.monotonic() + timeout
                while len(self.ids) < count:
                    assert time.monotonic() < deadline, f"LiteLLM fired {len(self.ids)} of {count} events"
                    await asyncio.sleep(0.02)

        return Counter()


def test_install_makes_litellm_completion_managed_until_uninstall(litellm: Any, store: Store) -> None:
    api = FakeOpenAI(RecallModel())
    client = make_openai("OpenAI", api)
    own_completion, own_acompletion = litellm.completion, litellm.acompletion
    handle = managed(budget=1500, store=store, session_id="s")

    assert handle.install() is handle and handle.installed
    patched = litellm.completion
    handle.install()
    assert litellm.completion is patched  # installing twice changes nothing
    litellm.completion(model=MODEL, messages=[{"role": "user", "content": "hi"}], client=client)
    assert "search_pages" in offered_tools(api.requests[-1])

    assert handle.uninstall() is True
    assert (litellm.completion, litellm.acompletion) == (own_completion, own_acompletion)
    assert handle.uninstall() is False and not handle.installed
    litellm.completion(model=MODEL, messages=[{"role": "user", "content": "hi"}], client=client)
    assert offered_tools(api.requests[-1]) == []
    assert len(recorded_calls(store)) == 1  # the call after uninstall is LiteLLM's own


async def test_as_a_with_block_acompletion_is_managed_inside_only(litellm: Any, store: Store) -> None:
    api = FakeOpenAI(RecallModel())
    client = make_openai("AsyncOpenAI", api)
    own = litellm.acompletion
    messages = [{"role": "user", "content": "hi"}]

    with managed(budget=1500, store=store):
        await litellm.acompletion(MODEL, messages, client=client)  # model and messages by position
    await litellm.acompletion(model=MODEL, messages=messages, client=client)

    assert litellm.acompletion is own
    assert ["search_pages" in offered_tools(body) for body in api.requests] == [True, False]


def test_installing_another_handle_replaces_the_first(
    litellm: Any, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    own = litellm.completion
    first, second = managed(budget=1500, store=store), managed(budget=1600, store=store)
    first.install()

    with caplog.at_level(logging.WARNING):
        second.install()

    assert second.installed and not first.installed
    assert "managed by another handle" in caplog.text
    second.uninstall()
    assert litellm.completion is own


def test_a_wrapper_put_around_the_patch_stays_and_passes_through_after_uninstall(
    litellm: Any, store: Store
) -> None:
    api = FakeOpenAI(RecallModel())
    client = make_openai("OpenAI", api)
    own = litellm.completion
    handle = managed(budget=1500, store=store).install()
    patched = litellm.completion

    def other_library(*args: Any, **kwargs: Any) -> Any:
        return patched(*args, **kwargs)

    litellm.completion = other_library
    try:
        handle.uninstall()
        litellm.completion(model=MODEL, messages=[{"role": "user", "content": "hi"}], client=client)
    finally:
        litellm.completion = own

    assert offered_tools(api.requests[-1]) == []
    assert recorded_calls(store) == []


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_budget_too_small_raises_token_limit_exceeded_before_anything_is_sent(
    litellm: Any, store: Store, is_async: bool
) -> None:
    app = App(store, is_async=is_async, budget=40)
    app.history.append({"role": "user", "content": "Plan the whole garden for me, bed by bed. " * 20})

    with pytest.raises(TokenLimitExceeded):
        await app.send()

    assert app.api.requests == []
    [refused] = recorded_calls(store)
    assert refused.error is not None and refused.metadata["managed"]["refused"] == "budget"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_litellms_error_reaches_the_app_unchanged_and_is_recorded(
    litellm: Any, store: Store, is_async: bool, stream: bool
) -> None:
    plain = FakeOpenAI()
    plain.push(Reply(status=400, error="The messages are malformed."))
    plain_client = make_openai("AsyncOpenAI" if is_async else "OpenAI", plain)
    kwargs = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with pytest.raises(Exception) as unmanaged:
        if is_async:
            await litellm.acompletion(client=plain_client, **kwargs)
        else:
            litellm.completion(client=plain_client, **kwargs)
    app = App(store, is_async=is_async)
    app.api.push(Reply(status=400, error="The messages are malformed."))

    with pytest.raises(Exception) as caught:
        await app.send(stream=stream)

    assert type(caught.value) is type(unmanaged.value) is litellm.BadRequestError
    assert str(caught.value) == str(unmanaged.value)
    [failed] = recorded_calls(store)
    assert failed.error is not None and failed.error.type == "BadRequestError"


async def test_litellms_mock_response_streams_through_a_managed_stream(litellm: Any, store: Store) -> None:
    handle = managed(budget=1500, store=store, session_id="mock")
    messages = [{"role": "user", "content": "Say hello."}]

    stream = handle.completion(
        model=MODEL, messages=messages, mock_response="Hello there, gardener!", stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)

    assert isinstance(stream, ManagedStream)
    assert stream.model == MODEL  # LiteLLM's CustomStreamWrapper shows through
    assert text == "Hello there, gardener!"
    [call] = recorded_calls(store)
    assert call.content == text and "managed" in call.metadata


def test_a_model_that_keeps_faulting_is_stopped_and_the_app_gets_no_memory_call(
    litellm: Any, store: Store
) -> None:
    handle = managed(context=ContextPolicy(budget=1500, max_faults_per_turn=1), store=store, session_id="m")
    fault = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "page_fault", "arguments": '{"page_id": "x"}'},
    }

    reply = handle.completion(
        model=MODEL, messages=[{"role": "user", "content": "Recall it."}], mock_tool_calls=[fault]
    )

    assert not reply.choices[0].message.tool_calls
    final = session_events(store, "m")[-1]
    assert final.tool_calls == () and final.metadata["managed"]["hidden_rounds"] == 2


def test_the_calls_metadata_names_its_session(litellm: Any, store: Store) -> None:
    handle = managed(budget=1500, store=store)

    handle.completion(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        mock_response="hello",
        metadata={"session_id": "m-1"},
    )

    [call] = recorded_calls(store)
    assert call.session_id == "m-1"


def test_bad_settings_are_refused_with_a_typed_error() -> None:
    with pytest.raises(InvalidSessionOperation):
        managed(budget=0)
    with pytest.raises(InvalidSessionOperation):
        managed(budget=100, context=ContextPolicy(budget=200))
    with pytest.raises(InvalidSessionOperation):
        managed(session_id=" ")
    assert isinstance(managed(), ManagedLiteLLM)


@pytest.mark.slow
def test_the_example_recalls_an_evicted_fact_through_litellm_offline() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "managed_litellm.py"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}

    done = subprocess.run(
        [sys.executable, str(example)], check=False, capture_output=True, text=True, env=env, timeout=180
    )

    assert done.returncode == 0, done.stderr
    assert "assistant: Your wheel truing is ticket 582043." in done.stdout
    assert "1 hidden round(s), 1 memory call(s)" in done.stdout
    assert "page faults 1" in done.stdout


@pytest.mark.slow
async def test_instrument_in_managed_mode_manages_litellm_and_records_each_call_once(
    litellm: Any, store: Store
) -> None:
    own = litellm.completion, litellm.acompletion
    api = FakeOpenAI(RecallModel())
    seen = _LiteLLMEvents()
    sessionware.instrument(store=store, mode="managed", budget=1500, session_id="z")
    try:
        litellm.callbacks.append(seen)
        litellm.completion(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], client=make_openai("OpenAI", api)
        )
        await litellm.acompletion(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], client=make_openai("AsyncOpenAI", api)
        )
        await seen.wait_for(2)
    finally:
        sessionware.uninstrument()

    assert (litellm.completion, litellm.acompletion) == own
    assert all("search_pages" in offered_tools(body) for body in api.requests)
    calls = recorded_calls(store)
    assert len(calls) == 2 and {c.session_id for c in calls} == {"z"}
    assert all("managed" in c.metadata and "litellm_call_id" not in c.metadata for c in calls)
