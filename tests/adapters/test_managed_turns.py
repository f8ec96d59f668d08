"""Managed mode across the rounds of one user turn: prefills, agent loops, mixed calls.

Real SDKs over fake HTTP transports; the scripted models read only what they are sent, so
what they answer shows what reached them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from adapter_support import ASYNC_KINDS, make_anthropic, make_openai, session_events
from managed_support import (
    CODE,
    QUESTION,
    aask,
    ask,
    history_for,
    last_turn,
    offered_tools,
    question_of,
    read_response,
    request_kwargs,
    tools_allowed,
    wire_text,
)

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.memory import ContextPolicy
from sessionware.core.session.enums import EventType
from sessionware.core.store import Store

ENDPOINT_KINDS = [
    ("OpenAI", "chat"),
    ("AsyncOpenAI", "chat"),
    ("OpenAI", "responses"),
    ("AsyncOpenAI", "responses"),
    ("Anthropic", "messages"),
    ("AsyncAnthropic", "messages"),
]


def managed_client(kind: str, endpoint: str, script: Any, store: Store, **policy: Any) -> tuple[Any, Any]:
    api: Any = FakeAnthropic(script) if endpoint == "messages" else FakeOpenAI(script)
    client = make_anthropic(kind, api) if endpoint == "messages" else make_openai(kind, api)
    context = ContextPolicy(**{"budget": 1500, **policy})
    return sessionware.wrap(client, store=store, session_id="s", mode="managed", context=context), api


async def call(client: Any, kind: str, endpoint: str, history: list[dict[str, Any]], **extra: Any) -> Any:
    if kind in ASYNC_KINDS:
        return await aask(client, endpoint, history, **extra)
    return ask(client, endpoint, history, **extra)


def conversation_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body.get("messages") or body.get("input") or ())


# -- prefills and retries ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("kind", "endpoint"), ENDPOINT_KINDS)
async def test_a_request_ending_with_the_assistant_is_budgeted(
    kind: str, endpoint: str, stream: bool, store: Store
) -> None:
    """A prefill (or a retry re-sending a cut answer) is built inside the budget, with the
    app's last turn and its assistant message sent verbatim at the end."""
    client, api = managed_client(kind, endpoint, lambda body: Reply(text=" ZX-4412."), store)
    prefill = {"role": "assistant", "content": "The locker code is"}
    question = {"role": "user", "content": QUESTION}
    history = [*history_for(endpoint, 120), question, prefill]

    seen = await call(client, kind, endpoint, history, stream=stream)

    assert seen.text == " ZX-4412."
    sent = api.requests[-1]
    wire = conversation_of(sent)
    assert wire[-1] == prefill
    if endpoint == "messages":  # the recall region is the first text block of the question's message
        assert wire[-2]["role"] == "user" and wire[-2]["content"][-1] == {"type": "text", "text": QUESTION}
    else:
        assert wire[-2] == question
    assert len(wire) < 60 and "search_pages" not in offered_tools(sent)
    if endpoint == "chat":
        assert counter_for_model("gpt-4o-mini").count_messages(wire, sent.get("tools")) <= 1500
    final = session_events(store, "s")[-1]
    assert final.metadata["managed"]["budget"] == 1500
    assert final.metadata["managed"]["built_tokens"] <= 1500
    assert final.app_input_tokens is not None and final.app_input_tokens > 3000


# -- recall survives the turn ------------------------------------------------------------------

WEATHER_TOOL = {
    "chat": {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    "responses": {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
    "messages": {"name": "get_weather", "input_schema": {"type": "object"}},
}


_NAMES = ("Omar", "Lena", "Ivan", "Nora", "Ruth", "Emil", "Sara", "Theo", "Ines", "Karl", "Yara", "Paul")


def fact_text(i: int) -> str:
    """A turn of many similar facts (a summary cannot keep them all), the locker code one of them."""
    name, code = (
        ("Maya", CODE)
        if i == 20
        else (f"{_NAMES[i % len(_NAMES)]} {_NAMES[i // len(_NAMES)]}son", f"ZX-{5000 + i}")
    )
    return f"Turn {i}: the locker code for {name} is {code}."


class AgentModel:
    """Recalls the code with memory calls (``search_pages``, then ``page_fault`` of the first
    page found when ``fault``), then calls the app's ``get_weather``, then answers with the
    code and the weather. Stateless: it reads only what it is sent, so once the code drops
    out of what it is sent it searches again."""

    def __init__(self, *, fault: bool = True) -> None:
        self.fault = fault
        self.memory_calls = 0

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        sent = wire_text(body)
        if "remember" not in question_of(body):
            return Reply(text="Noted.")
        allowed = "search_pages" in offered_tools(body) and tools_allowed(body)
        kind, text = last_turn(body)
        found = re.findall(r"\b(msg_\d+)\b", text) if kind == "tool" and '"results"' in text else []
        if allowed and found and self.fault:
            self.memory_calls += 1
            return Reply(tool_calls=[("page_fault", {"page_id": found[0]})])
        if CODE not in sent:
            if not allowed:
                return Reply(text="I do not have it.")
            self.memory_calls += 1
            return Reply(tool_calls=[("search_pages", {"query": "locker code Maya"})])
        if "sunny" not in sent:
            return Reply(tool_calls=[("get_weather", {"city": "Oslo"})])
        return Reply(text=f"The code is {CODE} and it is sunny.")


def app_tool_turn(endpoint: str, seen: Any, response_calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The messages an app appends after running the calls it was given (id, name)."""
    if endpoint == "chat":
        calls = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": "{}"}}
            for i, n in response_calls
        ]
        return [
            {"role": "assistant", "content": None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": i, "content": "sunny, 21C"} for i, _ in response_calls),
        ]
    if endpoint == "responses":
        items: list[dict[str, Any]] = [
            {"type": "function_call", "call_id": i, "name": n, "arguments": "{}"} for i, n in response_calls
        ]
        return items + [
            {"type": "function_call_output", "call_id": i, "output": "sunny, 21C"} for i, _ in response_calls
        ]
    return [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": i, "name": n, "input": {}} for i, n in response_calls],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": i, "content": "sunny, 21C"} for i, _ in response_calls
            ],
        },
    ]


def calls_of(endpoint: str, response: Any) -> list[tuple[str, str]]:
    if endpoint == "chat":
        return [(c.id, c.function.name) for c in response.choices[0].message.tool_calls or ()]
    if endpoint == "responses":
        return [(o.call_id, o.name) for o in response.output if o.type == "function_call"]
    return [(b.id, b.name) for b in response.content if b.type == "tool_use"]


def calls_in_chunks(endpoint: str, items: list[Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for c in items:
        if endpoint == "chat" and c.choices:
            out += [(t.id, t.function.name) for t in c.choices[0].delta.tool_calls or () if t.id]
        elif (
            endpoint == "responses"
            and c.type == "response.output_item.added"
            and c.item.type == "function_call"
        ):
            out.append((c.item.call_id, c.item.name))
        elif (
            endpoint == "messages" and c.type == "content_block_start" and c.content_block.type == "tool_use"
        ):
            out.append((c.content_block.id, c.content_block.name))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "endpoint", "stream", "fault"),
    [
        *((kind, endpoint, stream, True) for kind, endpoint in ENDPOINT_KINDS for stream in (False, True)),
        ("OpenAI", "chat", False, False),
        ("AsyncAnthropic", "messages", True, False),
    ],
)
async def test_what_memory_calls_recalled_stays_through_the_apps_tool_rounds(
    kind: str, endpoint: str, stream: bool, fault: bool, store: Store
) -> None:
    """Round 0 ``search_pages``, round 1 ``page_fault`` (hidden), round 2 the app's own
    ``get_weather``, run by the app; round 3, a new call of the app, still shows what was
    recalled, so the model answers without searching again."""
    model = AgentModel(fault=fault)
    # Recall off: the question's own words would bring the fact in before any memory call.
    client, api = managed_client(kind, endpoint, model, store, budget=1200, recall=False)
    history: list[dict[str, Any]] = []
    for i in range(60):
        history.append({"role": "user", "content": fact_text(i)})
        seen = await call(client, kind, endpoint, history)
        history.append({"role": "assistant", "content": seen.text})
    history.append({"role": "user", "content": QUESTION})
    tools = [WEATHER_TOOL[endpoint]]
    sent_before = len(api.requests)

    for _ in range(3):  # the app's agent loop: run the tools it is given until an answer
        if stream:
            seen = await call(client, kind, endpoint, history, stream=True, tools=tools)
            given = calls_in_chunks(endpoint, seen.items)
        else:
            kwargs = request_kwargs(endpoint, history, tools=tools)
            resource = (
                client.messages
                if endpoint == "messages"
                else (client.responses if endpoint == "responses" else client.chat.completions)
            )
            response = resource.create(**kwargs)
            response = await response if kind in ASYNC_KINDS else response
            seen, given = read_response(endpoint, response), calls_of(endpoint, response)
        if not given:
            break
        assert [n for _, n in given] == ["get_weather"]  # never a call the app cannot answer
        history += app_tool_turn(endpoint, seen, given)

    assert seen.text == f"The code is {CODE} and it is sunny."
    recalls = ["search_pages", "page_fault"] if fault else ["search_pages"]
    assert model.memory_calls == len(recalls)  # nothing searched again: counted once for the turn
    assert CODE not in wire_text(api.requests[sent_before])  # it had to be recalled
    after_tool = api.requests[-1]
    assert CODE in wire_text(after_tool) and "<VM:RECALL>" in wire_text(after_tool)
    assert len(api.requests) - sent_before == len(recalls) + 2  # hidden rounds, the weather call, the answer
    faults = [e for e in session_events(store, "s") if e.type is EventType.PAGE_FAULT]
    assert [e.tool_name for e in faults] == recalls
