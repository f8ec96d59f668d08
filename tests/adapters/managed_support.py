"""Managed-mode test helpers: a scripted model that reads only what it is sent, the app's
side of each endpoint, and readers of wire bodies of all three shapes."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapter_support import ASYNC_KINDS, make_anthropic, make_openai

import sessionware
from sessionware.adapters.fakes import FakeAnthropic, FakeOpenAI, Reply
from sessionware.core.memory import ContextPolicy
from sessionware.core.store import Store

FACT = "The locker code for Maya is ZX-4412."
CODE = "ZX-4412"
QUESTION = "Do you remember the locker code for Maya?"
SYSTEM = "You are a careful assistant."
ENDPOINTS = ("chat", "responses", "messages")
_PAGE_ID = re.compile(r"\b((?:msg|sum|roll|chunk|claim|seg)_\d+)\b")


def filler(i: int) -> str:
    return f"Turn {i}: let us plan the garden beds, the compost and the watering schedule for week {i}."


def user_text(i: int) -> str:
    return f"Turn {i}: {FACT}" if i == 3 else filler(i)


# -- reading wire bodies ----------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def offered_tools(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or ():
        names.append(tool.get("name") or (tool.get("function") or {}).get("name"))
    return names


def tools_allowed(body: Mapping[str, Any]) -> bool:
    return body.get("tool_choice") not in ("none", {"type": "none"})


def last_turn(body: Mapping[str, Any]) -> tuple[str, str]:
    """(``user`` or ``tool``, its text) of the last message or item of a wire body."""
    if "messages" in body:
        message = body["messages"][-1]
        content = message.get("content")
        if message.get("role") == "tool":
            return "tool", _text(content)
        if isinstance(content, list):
            results = [b for b in content if b.get("type") == "tool_result"]
            if results:
                return "tool", _text(results[-1]["content"])
        return str(message.get("role")), _text(content)
    item = body["input"][-1]
    if item.get("type") == "function_call_output":
        return "tool", str(item["output"])
    return str(item.get("role")), _text(item.get("content"))


def question_of(body: Mapping[str, Any]) -> str:
    """The text of the last user message that is not only tool results."""
    items = body.get("messages") or body.get("input") or []
    for item in reversed(items):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list) and all(b.get("type") == "tool_result" for b in content):
                continue
            if isinstance(content, list):  # the recall region merged before the user's words
                content = [b for b in content if not str(b.get("text", "")).startswith("<VM:RECALL>")]
            return _text(content)
    return ""


def wire_text(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


# -- the scripted model -----------------------------------------------------------------------


@dataclass
class RecallModel:
    """Answers from what it is sent; recalls with memory tools when asked to remember.

    ``steps``: the memory calls it makes before answering (``search`` then ``fault`` of
    the first page id the search returned). ``stubborn``: calls ``page_fault`` whenever
    tools are allowed. ``ignore_tool_choice``: keeps calling even when they are not.
    ``app_tool``: also calls this app tool in the same message as the first memory call.
    ``preamble``: text said before a memory call.
    """

    steps: tuple[str, ...] = ("search",)
    stubborn: bool = False
    ignore_tool_choice: bool = False
    app_tool: str | None = None
    preamble: str | None = None
    app_first: bool = False
    """The app tool's call comes before the memory call in the same message."""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, body: Mapping[str, Any]) -> Reply:
        self.seen.append(dict(body))
        offered = "search_pages" in offered_tools(body)
        allowed = offered and (tools_allowed(body) or self.ignore_tool_choice)
        kind, text = last_turn(body)
        if self.stubborn and allowed:
            return Reply(tool_calls=[("page_fault", {"page_id": "msg_2"})])
        question = question_of(body)
        done = len(_results(body))
        if allowed and "remember" in question and done < len(self.steps):
            step = self.steps[done]
            if step == "search":
                calls = [("search_pages", {"query": question})]
            else:
                ids = _PAGE_ID.findall(text)
                calls = [("page_fault", {"page_id": ids[0] if ids else "msg_1"})]
            if self.app_tool and done == 0:
                app_call = (self.app_tool, {"city": "Oslo"})
                calls = [app_call, *calls] if self.app_first else [*calls, app_call]
            return Reply(text=self.preamble, tool_calls=calls)
        if self.app_tool and "remember" in question and "sunny" not in wire_text(body):
            return Reply(tool_calls=[(self.app_tool, {"city": "Oslo"})])
        sent = wire_text(body)
        found = re.search(r"ZX-\d{4}", sent)
        if "remember" in question:
            return Reply(text=f"The code is {found.group(0)}." if found else "I do not have it.")
        return Reply(text=f"Noted: {question[:24]}")


def _results(body: Mapping[str, Any]) -> list[str]:
    """Memory-call results in the wire body (tool results sent by the wrapper)."""
    out = []
    for item in body.get("messages") or body.get("input") or []:
        if item.get("role") == "tool":
            out.append(_text(item.get("content")))
        elif item.get("type") == "function_call_output":
            out.append(str(item.get("output")))
        elif isinstance(item.get("content"), list):
            out += [_text(b.get("content")) for b in item["content"] if b.get("type") == "tool_result"]
    return [r for r in out if r.startswith(('{"results"', '{"page"', '{"error"'))]


# -- the app's side of each endpoint ----------------------------------------------------------


@dataclass
class Seen:
    """What the app got: the answer's text and the tool calls it was shown."""

    text: str
    calls: list[str]
    chunks: int = 0
    items: list[Any] = field(default_factory=list)
    """The chunks (or events) of a stream, as the app read them."""


def history_for(endpoint: str, turns: int) -> list[dict[str, Any]]:
    """A conversation of ``turns`` user/assistant pairs, in the endpoint's shape."""
    out: list[dict[str, Any]] = []
    for i in range(turns):
        out.append({"role": "user", "content": user_text(i)})
        out.append({"role": "assistant", "content": f"Noted: {user_text(i)[:24]}"})
    return out


def request_kwargs(endpoint: str, history: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    if endpoint == "chat":
        return {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": SYSTEM}, *history],
            **extra,
        }
    if endpoint == "responses":
        return {"model": "gpt-4o-mini", "instructions": SYSTEM, "input": history, **extra}
    return {"model": "claude-haiku-4-5", "system": SYSTEM, "max_tokens": 300, "messages": history, **extra}


def create(client: Any, endpoint: str, history: list[dict[str, Any]], **extra: Any) -> Any:
    kwargs = request_kwargs(endpoint, history, **extra)
    if endpoint == "chat":
        return client.chat.completions.create(**kwargs)
    if endpoint == "responses":
        return client.responses.create(**kwargs)
    return client.messages.create(**kwargs)


def read_response(endpoint: str, response: Any) -> Seen:
    if endpoint == "chat":
        message = response.choices[0].message
        return Seen(message.content or "", [c.function.name for c in message.tool_calls or ()])
    if endpoint == "responses":
        calls = [o.name for o in response.output if o.type == "function_call"]
        return Seen(response.output_text, calls)
    texts = [b.text for b in response.content if b.type == "text"]
    return Seen("".join(texts), [b.name for b in response.content if b.type == "tool_use"])


def read_chunks(endpoint: str, chunks: list[Any]) -> Seen:
    text, calls = "", []
    for chunk in chunks:
        if endpoint == "chat":
            if chunk.choices:
                delta = chunk.choices[0].delta
                text += delta.content or ""
                calls += [c.function.name for c in delta.tool_calls or () if c.function and c.function.name]
        elif endpoint == "responses":
            if chunk.type == "response.output_text.delta":
                text += chunk.delta
            if chunk.type == "response.output_item.added" and chunk.item.type == "function_call":
                calls.append(chunk.item.name)
        else:
            if chunk.type == "content_block_delta" and chunk.delta.type == "text_delta":
                text += chunk.delta.text
            if chunk.type == "content_block_start" and chunk.content_block.type == "tool_use":
                calls.append(chunk.content_block.name)
    return Seen(text, calls, len(chunks), chunks)


def ask(
    client: Any, endpoint: str, history: list[dict[str, Any]], *, stream: bool = False, **extra: Any
) -> Seen:
    if stream:
        return read_chunks(endpoint, list(create(client, endpoint, history, stream=True, **extra)))
    return read_response(endpoint, create(client, endpoint, history, **extra))


async def aask(
    client: Any, endpoint: str, history: list[dict[str, Any]], *, stream: bool = False, **extra: Any
) -> Seen:
    if stream:
        response = await create(client, endpoint, history, stream=True, **extra)
        return read_chunks(endpoint, [chunk async for chunk in response])
    return read_response(endpoint, await create(client, endpoint, history, **extra))


# -- API validity of wire bodies -------------------------------------------------------------


def assert_api_valid(endpoint: str, body: Mapping[str, Any]) -> None:
    """The checks the providers make on a conversation: tool calls and results paired,
    Anthropic's user-first alternation."""
    if endpoint == "chat":
        _valid_chat(body["messages"])
    elif endpoint == "messages":
        _valid_anthropic(body["messages"])
    else:
        _valid_responses(body["input"])


def _valid_chat(messages: list[dict[str, Any]]) -> None:
    pending: set[str] = set()
    for message in messages:
        role = message["role"]
        assert role in ("system", "developer", "user", "assistant", "tool"), role
        if role == "tool":
            assert message["tool_call_id"] in pending, message
            pending.discard(message["tool_call_id"])
            continue
        assert not pending, f"calls {pending} unanswered before a {role} message"
        if role == "assistant":
            pending = {c["id"] for c in message.get("tool_calls") or ()}
            assert message.get("content") or pending, message
    assert not pending


def _valid_anthropic(messages: list[dict[str, Any]]) -> None:
    assert messages[0]["role"] == "user"
    called: set[str] = set()
    for i, message in enumerate(messages):
        assert message["role"] == ("user" if i % 2 == 0 else "assistant"), [m["role"] for m in messages]
        blocks = message["content"] if isinstance(message["content"], list) else []
        if message["role"] == "user":
            answered = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
            assert answered == called, (answered, called)
            called = set()
        else:
            called = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    assert not called


def _valid_responses(items: list[dict[str, Any]]) -> None:
    pending: set[str] = set()
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            pending.add(item["call_id"])
        elif kind == "function_call_output":
            assert item["call_id"] in pending, item
            pending.discard(item["call_id"])
        else:
            assert not pending, f"calls {pending} unanswered before {item.get('role')}"
            assert item.get("role") in ("system", "developer", "user", "assistant"), item
    assert not pending


# -- an app talking to a managed client ------------------------------------------------------


class App:
    """An app talking to a managed client, re-sending its whole history every call."""

    def __init__(self, kind: str, endpoint: str, model: RecallModel, store: Store, **policy: Any) -> None:
        self.kind, self.endpoint, self.is_async = kind, endpoint, kind in ASYNC_KINDS
        anthropic = endpoint == "messages"
        self.api = FakeAnthropic(model) if anthropic else FakeOpenAI(model)
        client = make_anthropic(kind, self.api) if anthropic else make_openai(kind, self.api)
        context = ContextPolicy(**{"budget": 1200, **policy})
        self.client = sessionware.wrap(client, store=store, session_id="s", mode="managed", context=context)
        self.history: list[dict[str, Any]] = []

    async def ask(self, *, stream: bool = False, **extra: Any) -> Seen:
        if self.is_async:
            return await aask(self.client, self.endpoint, self.history, stream=stream, **extra)
        return ask(self.client, self.endpoint, self.history, stream=stream, **extra)

    async def converse(self, turns: int) -> None:
        for i in range(turns):
            self.history.append({"role": "user", "content": user_text(i)})
            seen = await self.ask()
            self.history.append({"role": "assistant", "content": seen.text})

    async def probe(self, *, stream: bool = False, **extra: Any) -> Seen:
        self.history.append({"role": "user", "content": QUESTION})
        before = copy.deepcopy(self.history)
        seen = await self.ask(stream=stream, **extra)
        assert self.history == before  # the app's list and its messages are untouched
        return seen
