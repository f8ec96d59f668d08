"""What managed mode puts on the wire: inside the budget, API-valid, cache-stable, and the
app's request untouched when it is itself invalid (captured at the mock transport)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import anthropic
import httpx
import openai
import pytest
from adapter_support import make_anthropic, make_openai, session_events
from managed_support import SYSTEM, assert_api_valid, create, last_turn, offered_tools, question_of

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.defaults import default_price_book
from sessionware.core.errors import TokenLimitExceeded
from sessionware.core.memory import ContextPolicy
from sessionware.core.session.enums import EventType, Role
from sessionware.core.store import Store

WEATHER = {
    "chat": {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    "responses": {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
    "messages": {"name": "get_weather", "input_schema": {"type": "object"}},
}


def weather_model(body: Mapping[str, Any]) -> Reply:
    """Calls the app's weather tool when asked about the weather; answers otherwise."""
    kind, text = last_turn(body)
    if kind == "tool":
        return Reply(text=f"It is {text} today.")
    question = question_of(body)
    if "weather" in question and "get_weather" in offered_tools(body):
        return Reply(tool_calls=[("get_weather", {"city": "Oslo"})])
    return Reply(text=f"Noted: {question[:40]}")


class Capture:
    """The raw request bytes each transport call carried."""

    def __init__(self, api: FakeOpenAI | FakeAnthropic) -> None:
        self.api = api
        self.raw: list[bytes] = []

    def handle(self, request: Any) -> Any:
        self.raw.append(request.content)
        return self.api.handle(request)


def managed(
    endpoint: str, store: Store, policy: ContextPolicy, script: Any = weather_model
) -> tuple[Any, Any]:
    if endpoint == "messages":
        api: Any = FakeAnthropic(script)
        client = make_anthropic("Anthropic", api)
    else:
        api = FakeOpenAI(script)
        client = make_openai("OpenAI", api)
    return sessionware.wrap(client, store=store, session_id="s", mode="managed", context=policy), api


def tool_turn(endpoint: str, response: Any) -> list[dict[str, Any]]:
    """The messages an app appends after running the tool the model called."""
    if endpoint == "chat":
        call = response.choices[0].message.tool_calls[0]
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call.id, "type": "function", "function": call.function.model_dump()}],
        }
        return [assistant, {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}]
    if endpoint == "responses":
        call = next(o for o in response.output if o.type == "function_call")
        item = {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        }
        return [item, {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}]
    block = next(b for b in response.content if b.type == "tool_use")
    return [
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny, 21C"}],
        },
    ]


def answer_text(endpoint: str, response: Any) -> str | None:
    if endpoint == "chat":
        message = response.choices[0].message
        return None if message.tool_calls else message.content
    if endpoint == "responses":
        return None if any(o.type == "function_call" for o in response.output) else response.output_text
    return None if any(b.type == "tool_use" for b in response.content) else response.content[0].text


def converse(client: Any, endpoint: str, turns: int) -> list[dict[str, Any]]:
    """An app that runs its weather tool whenever the model asks, re-sending everything."""
    history: list[dict[str, Any]] = []
    for i in range(turns):
        ask = (
            f"What is the weather in Oslo on day {i}?"
            if i % 5 == 4
            else f"Turn {i}: notes on the garden plan."
        )
        history.append({"role": "user", "content": ask})
        while True:
            before = copy.deepcopy(history)
            response = create(client, endpoint, history, tools=[WEATHER[endpoint]])
            assert history == before
            text = answer_text(endpoint, response)
            if text is not None:
                history.append({"role": "assistant", "content": text})
                break
            history += tool_turn(endpoint, response)
    return history


def wire_tokens(endpoint: str, body: Mapping[str, Any]) -> int:
    """Tokens of a wire body by the accounting module's count (exact for OpenAI models)."""
    counter = counter_for_model(body["model"])
    if endpoint == "chat":
        return counter.count_messages(body["messages"], body.get("tools"))
    if endpoint == "messages":
        system = "".join(b["text"] for b in body.get("system") or ())
        messages = [{"role": "system", "content": system}, *body["messages"]]
        return counter.count_messages(messages, body.get("tools"))
    return counter.count_messages(body["input"], body.get("tools"))


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["chat", "responses", "messages"])
def test_every_wire_request_is_inside_the_budget_and_api_valid(endpoint: str, store: Store) -> None:
    budget = 1000
    client, api = managed(endpoint, store, ContextPolicy(budget=budget))

    history = converse(client, endpoint, 120)

    app_tokens = wire_tokens(endpoint, create_body(endpoint, history))
    assert app_tokens > 3 * budget  # the app asks to send far more than the budget
    for body in api.requests:
        assert_api_valid(endpoint, body)
        if endpoint == "chat":
            assert wire_tokens(endpoint, body) <= budget
    finals = [e for e in session_events(store, "s") if "managed" in e.metadata and e.usage is not None]
    assert finals and all(e.metadata["managed"]["built_tokens"] <= budget for e in finals)
    assert max(e.metadata["managed"]["compactions"] for e in finals) >= 1


def create_body(endpoint: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    if endpoint == "chat":
        return {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM}, *history]}
    if endpoint == "responses":
        return {"model": "gpt-4o-mini", "input": [{"role": "system", "content": SYSTEM}, *history]}
    return {"model": "claude-haiku-4-5", "system": [{"text": SYSTEM}], "messages": history}


@pytest.mark.slow
def test_the_built_count_is_the_exact_count_of_the_chat_wire(store: Store) -> None:
    client, api = managed("chat", store, ContextPolicy(budget=900))
    converse(client, "chat", 40)
    finals = [e for e in session_events(store, "s") if e.role is Role.ASSISTANT]
    sent = list(api.requests)
    assert len(finals) == len(sent)
    for event, body in zip(finals, sent, strict=True):
        assert event.metadata["managed"]["built_tokens"] == wire_tokens("chat", body)


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["chat", "messages"])
def test_the_wire_prefix_is_byte_identical_until_a_compaction(endpoint: str, store: Store) -> None:
    anthropic_api = endpoint == "messages"
    api: Any = FakeAnthropic(weather_model) if anthropic_api else FakeOpenAI(weather_model)
    capture = Capture(api)
    transport = (
        __import__("httpx2").MockTransport(capture.handle)
        if anthropic_api
        else httpx.MockTransport(capture.handle)
    )
    client = (
        anthropic.Anthropic(api_key="k", http_client=__import__("httpx2").Client(transport=transport))
        if anthropic_api
        else openai.OpenAI(api_key="k", http_client=httpx.Client(transport=transport))
    )
    sessionware.wrap(client, store=store, session_id="s", mode="managed", context=ContextPolicy(budget=1500))

    converse(client, endpoint, 80)

    versions = [
        e.metadata["managed"]["prefix_version"]
        for e in session_events(store, "s")
        if e.role is Role.ASSISTANT
    ]
    assert len(set(versions)) > 1  # compactions happened
    stable = recalled = 0
    for (v1, raw1, body1), (v2, raw2, body2) in zip(
        zip(versions, capture.raw, api.requests, strict=True),
        zip(versions[1:], capture.raw[1:], api.requests[1:], strict=False),
        strict=False,
    ):
        if v1 != v2:
            continue
        stable += 1
        # Everything before what was chosen for the first call's question (its recall
        # region, else its latest turn) is sent again, byte for byte; a later round of the
        # same user turn (after the app's tool call) sends the same recall lines again (as
        # many of them as still fit, from the first).
        latest = json.dumps(body1["messages"][-1], separators=(",", ":")).encode()
        offset = raw1.rindex(latest[:16])
        if b"<VM:RECALL>" in raw1:
            recalled += 1
            if question_of(body1) != question_of(body2):
                offset = raw1.rindex(b'{"role"', 0, raw1.index(b"<VM:RECALL>"))
            else:
                offset = raw2.index(b"</VM:RECALL>")
        assert raw2[:offset] == raw1[:offset]
        assert body2.get("system") == body1.get("system") and body2["tools"] == body1["tools"]
    assert stable > len(versions) // 2 and recalled > 0


def test_the_budget_defaults_to_the_model_window_less_the_output_reserved(store: Store) -> None:
    client, _ = managed("chat", store, ContextPolicy())
    window = default_price_book().context_window("gpt-4o-mini", "openai")
    assert window is not None

    create(client, "chat", [{"role": "user", "content": "hi"}])
    create(client, "chat", [{"role": "user", "content": "hi"}], max_tokens=20_000)

    budgets = [
        e.metadata["managed"]["budget"] for e in session_events(store, "s") if e.role is Role.ASSISTANT
    ]
    assert budgets == [window - 4096, window - 20_000]


@pytest.mark.parametrize("endpoint", ["chat", "responses", "messages"])
def test_a_budget_too_small_raises_before_anything_is_sent(endpoint: str, store: Store) -> None:
    client, api = managed(endpoint, store, ContextPolicy(budget=40))
    history = [{"role": "user", "content": "A question that is far too long for this budget. " * 10}]

    with pytest.raises(TokenLimitExceeded) as raised:
        create(client, endpoint, history)

    assert api.requests == []
    assert raised.value.limit == 40 and raised.value.required > 40
    events = session_events(store, "s")
    assert [e.role for e in events if e.type is EventType.MESSAGE] == [Role.USER]  # nothing lost
    assert events[-1].error is not None and events[-1].error.type == "TokenLimitExceeded"


def rejecting(body: Mapping[str, Any]) -> Reply:
    """A provider that checks tool pairs, as the real ones do."""
    try:
        assert_api_valid("messages" if "max_tokens" in body else "chat", body)
    except AssertionError:
        return Reply(status=400, error="tool calls must be followed by their results")
    return Reply(text="ok")


@pytest.mark.parametrize("mode", ["observe", "managed"])
@pytest.mark.parametrize("endpoint", ["chat", "messages"])
def test_an_invalid_history_gets_the_providers_own_error(endpoint: str, mode: str, store: Store) -> None:
    if endpoint == "chat":
        api: Any = FakeOpenAI(rejecting)
        client = make_openai("OpenAI", api)
        call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        history = [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "user", "content": "never mind"},
        ]
        error: type[Exception] = openai.BadRequestError
    else:
        api = FakeAnthropic(rejecting)
        client = make_anthropic("Anthropic", api)
        history = [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t9", "name": "w", "input": {}}]},
            {"role": "user", "content": "never mind"},
        ]
        error = anthropic.BadRequestError
    policy = ContextPolicy(budget=2000) if mode == "managed" else None
    sessionware.wrap(client, store=store, session_id="s", mode=mode, context=policy)

    with pytest.raises(error, match="must be followed"):
        create(client, endpoint, history)

    sent = api.requests[-1]["messages"]
    assert sent[-len(history) :] == history and len(api.requests) == 1


def test_calls_on_server_side_state_and_embeddings_pass_through(store: Store) -> None:
    client, api = managed("responses", store, ContextPolicy(budget=500), script=None)

    client.responses.create(model="gpt-4o-mini", input="and then?", previous_response_id="resp_1")
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])

    assert api.requests[0]["input"] == "and then?" and "tools" not in api.requests[0]
    assert api.requests[1]["input"] == ["a", "b"]
