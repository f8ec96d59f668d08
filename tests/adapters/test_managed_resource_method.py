"""Managed mode takes the app's arguments at the SDK's resource method.

The SDK then prepares only the request managed mode built, not the app's whole history;
everything else stays the SDK's: its types, helpers, raw views and errors. An iterable the
app passes is read exactly once, and what was read is what is sent (issue 20, item 4).
Real SDKs over fake HTTP transports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import anthropic
import openai
import pydantic
import pytest
from adapter_support import ASYNC_KINDS, make_anthropic, make_openai, session_events
from anthropic.types import TextBlock
from managed_support import SYSTEM, history_for, request_kwargs
from openai.types.chat import ChatCompletionMessage
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.errors import TokenLimitExceeded
from sessionware.core.memory import ContextPolicy
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

CASES = [
    ("OpenAI", "chat"),
    ("AsyncOpenAI", "chat"),
    ("OpenAI", "responses"),
    ("AsyncOpenAI", "responses"),
    ("Anthropic", "messages"),
    ("AsyncAnthropic", "messages"),
]


def _client(kind: str, endpoint: str, api: Any, store: Store | None, **policy: Any) -> Any:
    client = make_anthropic(kind, api) if endpoint == "messages" else make_openai(kind, api)
    if store is None:
        return client
    context = ContextPolicy(**{"budget": 1500, **policy})
    return sessionware.wrap(client, store=store, session_id="s", mode="managed", context=context)


def _api(endpoint: str, script: Any = None) -> Any:
    return FakeAnthropic(script) if endpoint == "messages" else FakeOpenAI(script)


async def _call(client: Any, kind: str, endpoint: str, *, how: str = "create", **kwargs: Any) -> str:
    """Make a call the way ``how`` says and return the text the app got."""
    is_async = kind in ASYNC_KINDS
    resource = {"chat": lambda: client.chat.completions, "responses": lambda: client.responses}.get(
        endpoint, lambda: client.messages
    )()
    if how == "create":
        result = resource.create(**kwargs)
        return _text(endpoint, await result if is_async else result)
    if how == "stream=True":
        stream = resource.create(stream=True, **kwargs)
        stream = await stream if is_async else stream
        chunks = [c async for c in stream] if is_async else list(stream)
        return _chunk_text(endpoint, chunks)
    manager = resource.stream(**kwargs)  # the .stream() helper
    if is_async:
        async with manager as events:
            return await _final_text(endpoint, events, is_async=True)
    with manager as events:
        return await _final_text(endpoint, events, is_async=False)


def _text(endpoint: str, response: Any) -> str:
    if endpoint == "chat":
        return str(response.choices[0].message.content)
    if endpoint == "responses":
        return str(response.output_text)
    return "".join(b.text for b in response.content if b.type == "text")


def _chunk_text(endpoint: str, chunks: list[Any]) -> str:
    text = ""
    for chunk in chunks:
        if endpoint == "chat" and chunk.choices:
            text += chunk.choices[0].delta.content or ""
        elif endpoint == "responses" and chunk.type == "response.output_text.delta":
            text += chunk.delta
        elif (
            endpoint == "messages"
            and chunk.type == "content_block_delta"
            and chunk.delta.type == "text_delta"
        ):
            text += chunk.delta.text
    return text


async def _final_text(endpoint: str, events: Any, *, is_async: bool) -> str:
    if endpoint == "messages":
        return str(await events.get_final_text() if is_async else events.get_final_text())
    if is_async:
        async for _ in events:
            pass
    else:
        for _ in events:
            pass
    final = await events.get_final_completion() if endpoint == "chat" and is_async else None
    if endpoint == "chat":
        final = final or events.get_final_completion()
        return str(final.choices[0].message.content)
    final = await events.get_final_response() if is_async else events.get_final_response()
    return str(final.output_text)


def _conversation_arg(endpoint: str) -> str:
    return "input" if endpoint == "responses" else "messages"


def _wire_texts(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages") or body.get("input"), ensure_ascii=False)


# -- the SDK prepares only what is sent ----------------------------------------------------------


class _CountedChat(ChatCompletionMessage):
    dumps: ClassVar[int] = 0

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        type(self).dumps += 1
        return super().model_dump(**kwargs)


class _CountedText(TextBlock):
    dumps: ClassVar[int] = 0

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        type(self).dumps += 1
        return super().model_dump(**kwargs)


class _CountedOutput(ResponseOutputMessage):
    dumps: ClassVar[int] = 0

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        type(self).dumps += 1
        return super().model_dump(**kwargs)


def _sdk_object(endpoint: str, text: str) -> tuple[Any, type[Any]]:
    """An assistant turn the app re-sends as the SDK gave it, counting its dumps."""
    if endpoint == "chat":
        return _CountedChat(role="assistant", content=text), _CountedChat
    if endpoint == "responses":
        part = ResponseOutputText(type="output_text", text=text, annotations=[])
        return (
            _CountedOutput(id="msg_1", type="message", role="assistant", status="completed", content=[part]),
            _CountedOutput,
        )
    return {"role": "assistant", "content": [_CountedText(type="text", text=text)]}, _CountedText


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_the_sdk_never_prepares_the_history_the_app_resends(
    kind: str, endpoint: str, store: Store
) -> None:
    history = history_for(endpoint, 40)
    history[11], counted = _sdk_object(endpoint, "Noted: the SDK object turn")
    bare = _client(kind, endpoint, _api(endpoint), None)
    api = _api(endpoint)
    managed = _client(kind, endpoint, api, store)

    before = counted.dumps
    await _call(
        bare, kind, endpoint, **request_kwargs(endpoint, [*history, {"role": "user", "content": "x"}])
    )
    assert counted.dumps > before  # the SDK prepares every message it is given

    for i in range(3):
        history.append({"role": "user", "content": f"New question {i}?"})
        said = await _call(managed, kind, endpoint, **request_kwargs(endpoint, history))
        if i == 0:
            after_first = counted.dumps  # read once, when the session first saw it
        history.append({"role": "assistant", "content": said})  # what the model answered
    if endpoint == "chat":  # re-sent histories are compared, not read again (see engine.resent)
        assert counted.dumps == after_first
    sent = api.requests[-1]
    assert "<VM:" in json.dumps(sent)  # a built context went out
    assert len(sent.get("messages") or sent["input"]) < len(history) / 2  # not the whole history
    events = session_events(store, "s")
    texts = [e.content for e in events if e.type is EventType.MESSAGE and e.role is Role.ASSISTANT]
    assert sum("the SDK object turn" in json.dumps(t) for t in texts) == 1
    assert not any(e.type is EventType.BRANCH for e in events)


# -- an iterable is read once, and what was read is sent ----------------------------------------


def _parts(text: str, endpoint: str) -> Iterator[dict[str, Any]]:
    kind = "input_text" if endpoint == "responses" else "text"
    yield {"type": kind, "text": text}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["create", "stream=True", "helper"])
@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_one_shot_iterables_are_read_once_and_sent(
    kind: str, endpoint: str, how: str, store: Store
) -> None:
    api = _api(endpoint)
    client = _client(kind, endpoint, api, store)
    history = history_for(endpoint, 5)
    latest = {"role": "user", "content": _parts("What is the plan for the beds?", endpoint)}
    kwargs = request_kwargs(endpoint, [*history, latest])
    arg = _conversation_arg(endpoint)
    kwargs[arg] = iter(kwargs[arg])
    if endpoint == "messages":
        kwargs["system"] = iter([{"type": "text", "text": SYSTEM}])

    text = await _call(client, kind, endpoint, how=how, **kwargs)

    assert text == "You said: What is the plan for the beds?"
    sent = api.requests[-1]
    assert "What is the plan for the beds?" in _wire_texts(sent)
    assert "Turn 4" in _wire_texts(sent)  # the history was read, not an emptied iterator
    events = session_events(store, "s")
    users = [e for e in events if e.type is EventType.MESSAGE and e.role is Role.USER]
    assert len(users) == 6 and "plan for the beds" in json.dumps(users[-1].content)


@pytest.mark.parametrize(("kind", "endpoint"), CASES)
async def test_a_call_passed_through_sends_what_was_read(kind: str, endpoint: str, store: Store) -> None:
    """An invalid turn (a tool result that answers no call) is sent untouched for the
    provider to refuse: the generators the app passed arrive whole."""
    api = _api(endpoint)
    client = _client(kind, endpoint, api, store)
    history = history_for(endpoint, 3)
    if endpoint == "chat":
        orphan: dict[str, Any] = {"role": "tool", "tool_call_id": "call_x", "content": "42"}
    elif endpoint == "responses":
        orphan = {"type": "function_call_output", "call_id": "call_x", "output": "42"}
    else:
        orphan = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "42"}],
        }
    kwargs = request_kwargs(endpoint, [*history, {"role": "user", "content": _parts("hi", endpoint)}, orphan])
    arg = _conversation_arg(endpoint)
    given = list(kwargs[arg])
    kwargs[arg] = iter(given)

    await _call(client, kind, endpoint, **kwargs)

    sent = api.requests[-1][arg]
    assert len(sent) == len(given)
    assert "<VM:" not in json.dumps(api.requests[-1])
    assert sent[-2]["content"] == [
        {"type": "input_text" if endpoint == "responses" else "text", "text": "hi"}
    ]


# -- the SDK's views, helpers and errors -------------------------------------------------------


class _Answer(pydantic.BaseModel):
    city: str


class _Lookup(pydantic.BaseModel):
    q: str


async def test_parse_with_strict_tools_and_raw_views_keep_sdk_types(store: Store) -> None:
    api = FakeOpenAI(lambda body: Reply(text='{"city": "Oslo"}'))
    client = _client("OpenAI", "chat", api, store)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where?"}]

    parsed = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=messages,
        response_format=_Answer,
        tools=[openai.pydantic_function_tool(_Lookup)],
    )
    assert parsed.choices[0].message.parsed == _Answer(city="Oslo")
    names = [t["function"]["name"] for t in api.requests[-1]["tools"]]
    assert names == ["_Lookup", "page_fault", "search_pages"]

    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    assert isinstance(raw.parse(), openai.types.chat.ChatCompletion)
    assert "<VM:" in json.dumps(api.requests[-1])
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=messages) as r:
        assert r.parse().choices[0].message.content == '{"city": "Oslo"}'
    assert "<VM:" in json.dumps(api.requests[-1])


async def test_errors_reach_the_app_as_the_sdk_raises_them(store: Store) -> None:
    api = FakeOpenAI(lambda body: Reply(status=400, error="bad request"))
    client = _client("AsyncOpenAI", "chat", api, store)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )

    aapi = FakeAnthropic()
    tiny = _client("Anthropic", "messages", aapi, store, budget=10)
    with pytest.raises(TokenLimitExceeded):
        tiny.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=history_for("messages", 3)
            + [{"role": "user", "content": "a question far too long for a ten token budget " * 3}],
        )
    assert aapi.requests == []
    with pytest.raises(anthropic.BadRequestError):
        _client("Anthropic", "messages", FakeAnthropic(lambda b: Reply(status=400)), store).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


def test_observe_mode_and_unwrap_leave_the_resource_methods_alone(store: Store) -> None:
    client = make_openai("OpenAI", FakeOpenAI())
    sessionware.wrap(client, store=store)
    assert "create" not in vars(client.chat.completions)
    sessionware.wrap(client, store=store, mode="managed")
    assert "create" in vars(client.chat.completions) and "parse" in vars(client.responses)
    sessionware.wrap(client, store=store)  # back to observe mode: the hooks go
    assert "create" not in vars(client.chat.completions)
    sessionware.wrap(client, store=store, mode="managed")
    raw_view = client.chat.completions.with_raw_response
    sessionware.unwrap(client)
    assert "create" not in vars(client.chat.completions)
    assert client.chat.completions.with_raw_response is not raw_view

    anthropic_client = sessionware.wrap(
        make_anthropic("Anthropic", FakeAnthropic()), store=store, mode="managed"
    )
    assert "_post" in vars(anthropic_client.messages)
    sessionware.unwrap(anthropic_client)
    assert vars(anthropic_client.messages)["_post"] == anthropic_client.post


async def test_a_view_taken_before_wrapping_is_still_managed(store: Store) -> None:
    api = FakeOpenAI()
    client = make_openai("OpenAI", api)
    early_view = client.chat.completions.with_raw_response
    sessionware.wrap(client, store=store, session_id="s", mode="managed", context=ContextPolicy(budget=1500))

    early_view.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    assert "<VM:" in json.dumps(api.requests[-1])
    assert [e.content for e in session_events(store, "s") if e.type is EventType.MESSAGE] == [
        "hi",
        "You said: hi",
    ]
