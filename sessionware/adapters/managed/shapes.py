"""Managed mode, per endpoint: where the latest turn is, and how a built context goes on the wire.

The context builder renders OpenAI chat messages or Anthropic Messages (``Provider``).
A ``Shape`` puts that output into the request body of its endpoint, keeping every other
field of the app's body as it was:

* ``ChatShape``: ``/chat/completions`` (the builder's own shape);
* ``MessagesShape``: Anthropic ``/v1/messages`` (the builder's Anthropic shape; its
  ``system`` blocks replace the app's ``system``);
* ``ResponsesShape``: OpenAI ``/responses``: the builder renders chat messages, which are
  turned into Responses input items (``function_call`` / ``function_call_output`` for
  tool calls and results), and the VM tools into Responses' flat function tools.

The *latest turn* is the trailing part of the app's conversation that the model has not
answered yet (a user message, or the tool results answering its last tool calls). It is
sent verbatim, exactly as the app built it, after the context the builder made.

Each shape also writes the body of a hidden round: the model's memory calls and their
results appended to what was just sent, and the app's own calls of that message left
out (they were not run; the model asks again if it still wants them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from sessionware.adapters.engine.messages import content_text, plain
from sessionware.adapters.engine.types import CallOutput, EndpointKind, WireCall
from sessionware.core.memory.enums import Provider
from sessionware.core.memory.faults import is_vm_tool
from sessionware.core.memory.models import BuiltContext

__all__ = ["ChatShape", "MessagesShape", "ResponsesShape", "Served", "Shape", "shape_for"]

Body = Mapping[str, Any]
Message = dict[str, Any]
Served = list[tuple[WireCall, str]]
"""Memory calls of one round with the text of their results."""

_CHAT_TURN_ROLES = frozenset({"user", "tool", "function", "system", "developer"})
_SYSTEM_ROLES = frozenset({"system", "developer"})


class Shape(Protocol):
    """How managed mode reads and writes one endpoint's request bodies."""

    provider: Provider
    """The message shape the context builder renders for this endpoint."""

    def latest(self, body: Body) -> list[Message]:
        """The app's latest turn, verbatim (empty when there is none to answer)."""
        ...

    def incoming(self, latest: list[Message]) -> list[Message]:
        """``latest`` in the builder's shape."""
        ...

    def alone(self, latest: list[Message]) -> dict[str, Any]:
        """A body holding only ``latest`` (to read it as the endpoint reads requests)."""
        ...

    def unanswered(self, body: Body, latest: list[Message]) -> str | None:
        """Why ``latest`` does not answer the tool calls before it (None when it does)."""
        ...

    def app_tools(self, body: Body) -> list[Message]:
        """The app's tools in the builder's shape (they count against the budget)."""
        ...

    def vm_tool_names(self, body: Body) -> set[str]:
        """Names of the app's own tools that clash with the VM tools."""
        ...

    def can_hide_calls(self, body: Body) -> bool:
        """Whether memory calls in a response to ``body`` can be served out of the app's sight."""
        ...

    def wire(self, body: Body, ctx: BuiltContext, latest: list[Message]) -> dict[str, Any]:
        """The body to send: ``ctx`` in place of the app's conversation, VM tools added."""
        ...

    def vm_tools(self, ctx: BuiltContext) -> list[Message]:
        """The memory tools of ``ctx`` in this endpoint's shape."""
        ...

    def follow_up(self, body: Body, output: CallOutput, served: Served) -> dict[str, Any]:
        """``body`` (what was just sent) with the model's memory calls and their results."""
        ...

    def forced(self, body: Body) -> dict[str, Any]:
        """``body`` with tool calls switched off, so the model answers."""
        ...

    def count_shape(self, messages: Sequence[Message]) -> list[Message]:
        """Messages of this shape as chat messages, for counting wire tokens."""
        ...


def _tool_names(tools: Any, *, nested: bool) -> set[str]:
    names: set[str] = set()
    for tool in tools or ():
        if not isinstance(tool, Mapping):
            continue
        name = (tool.get("function") or {}).get("name") if nested else tool.get("name")
        if isinstance(name, str) and is_vm_tool(name):
            names.add(name)
    return names


def _arguments(call: WireCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        return {"arguments": call.arguments}
    return value if isinstance(value, dict) else {"value": value}


def _before(items: Sequence[Any], n: int) -> dict[str, Any]:
    """The dict item before the last ``n`` dict items of ``items`` (``{}`` if none).

    Walks from the end: the app's history can be long, its latest turn is short. Items
    are read with ``plain`` (the app's own objects when read at the resource method).
    """
    i = len(items)
    while i > 0:
        i -= 1
        item = plain(items[i])
        if isinstance(item, dict):
            if n == 0:
                return item
            n -= 1
    return {}


def _tail(items: Sequence[Any], start: int) -> list[Message]:
    """``items[start:]`` read with ``plain``, dicts only."""
    return [m for m in map(plain, items[start:]) if isinstance(m, dict)]


def _prefill(message: Any) -> bool:
    """An assistant message without calls at the end of a request: the model continues it."""
    return isinstance(message, dict) and message.get("role") == "assistant" and not message.get("tool_calls")


def _mismatch(called: list[Any], answered: list[Any]) -> str | None:
    if set(called) == set(answered):
        return None
    return f"tool calls {sorted(map(str, called))} answered by {sorted(map(str, answered))}"


# -- OpenAI chat completions ------------------------------------------------------------


class ChatShape:
    provider = Provider.OPENAI

    def latest(self, body: Body) -> list[Message]:
        messages = body.get("messages") or ()
        end = len(messages)
        while end > 0 and _prefill(plain(messages[end - 1])):
            end -= 1  # an assistant message the model is to continue (a prefill, a retry)
        start = end
        while start > 0:
            message = plain(messages[start - 1])
            if isinstance(message, dict) and message.get("role") not in _CHAT_TURN_ROLES:
                break
            start -= 1
        if start == end < len(messages):
            return []  # nothing before the prefill for it to answer
        run = _tail(messages, start)
        if start == 0:  # no answer yet: the leading system messages are the prompt
            lead = 0
            while lead < len(run) and run[lead].get("role") in _SYSTEM_ROLES:
                lead += 1
            run = run[lead:]
        return run

    def incoming(self, latest: list[Message]) -> list[Message]:
        return latest

    def alone(self, latest: list[Message]) -> dict[str, Any]:
        return {"messages": latest}

    def unanswered(self, body: Body, latest: list[Message]) -> str | None:
        before = _before(body.get("messages") or (), len(latest))
        called = [c.get("id") for c in before.get("tool_calls") or () if isinstance(c, dict)]
        answered = [m.get("tool_call_id") for m in latest if m.get("role") == "tool"]
        return _mismatch(called, answered)

    def app_tools(self, body: Body) -> list[Message]:
        return [t for t in body.get("tools") or () if isinstance(t, dict)]

    def vm_tool_names(self, body: Body) -> set[str]:
        return _tool_names(body.get("tools"), nested=True) | _tool_names(body.get("functions"), nested=False)

    def can_hide_calls(self, body: Body) -> bool:
        # Legacy ``functions`` cannot be mixed with ``tools``; several choices would each
        # need their own hidden rounds; a prefill is continued, not interrupted by memory calls.
        messages: Sequence[Any] = body.get("messages") or ()
        prefilled = bool(messages) and _prefill(plain(messages[-1]))
        return not body.get("functions") and (body.get("n") or 1) == 1 and not prefilled

    def wire(self, body: Body, ctx: BuiltContext, latest: list[Message]) -> dict[str, Any]:
        out = {**body, "messages": ctx.messages}
        tools = self.app_tools(body) + self.vm_tools(ctx)
        if tools:
            out["tools"] = tools
        return out

    def vm_tools(self, ctx: BuiltContext) -> list[Message]:
        return list(ctx.tools)

    def follow_up(self, body: Body, output: CallOutput, served: Served) -> dict[str, Any]:
        assistant: Message = {
            "role": "assistant",
            "content": output.text,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c, _ in served
            ],
        }
        results = [{"role": "tool", "tool_call_id": c.id, "content": text} for c, text in served]
        return {**body, "messages": [*body["messages"], assistant, *results]}

    def forced(self, body: Body) -> dict[str, Any]:
        return {**body, "tool_choice": "none"}

    def count_shape(self, messages: Sequence[Message]) -> list[Message]:
        return list(messages)


# -- Anthropic Messages -----------------------------------------------------------------


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


class MessagesShape:
    provider = Provider.ANTHROPIC

    def latest(self, body: Body) -> list[Message]:
        messages = body.get("messages") or ()
        for i in range(len(messages) - 1, -1, -1):
            message = plain(messages[i])
            if isinstance(message, dict) and message.get("role") == "user":
                return _tail(messages, i)
        return []

    def incoming(self, latest: list[Message]) -> list[Message]:
        return latest

    def alone(self, latest: list[Message]) -> dict[str, Any]:
        return {"messages": latest}

    def unanswered(self, body: Body, latest: list[Message]) -> str | None:
        before = _before(body.get("messages") or (), len(latest))
        called = [b.get("id") for b in _blocks(before.get("content")) if b.get("type") == "tool_use"]
        answered = [
            b.get("tool_use_id") for b in _blocks(latest[0].get("content")) if b.get("type") == "tool_result"
        ]
        return _mismatch(called, answered)

    def app_tools(self, body: Body) -> list[Message]:
        return [t for t in body.get("tools") or () if isinstance(t, dict)]

    def vm_tool_names(self, body: Body) -> set[str]:
        return _tool_names(body.get("tools"), nested=False)

    def can_hide_calls(self, body: Body) -> bool:
        messages = body.get("messages") or ()
        last = plain(messages[-1]) if messages else None
        prefilled = isinstance(last, dict) and last.get("role") != "user"
        thinking = body.get("thinking")
        # A continued assistant prefill, and extended thinking (whose signed blocks would
        # have to be sent back with the memory calls), keep their calls visible: no VM tools.
        return not prefilled and not (isinstance(thinking, dict) and thinking.get("type") == "enabled")

    def wire(self, body: Body, ctx: BuiltContext, latest: list[Message]) -> dict[str, Any]:
        out = {**body, "messages": ctx.messages}
        if ctx.system:
            out["system"] = ctx.system
        else:
            out.pop("system", None)
        tools = self.app_tools(body) + self.vm_tools(ctx)
        if tools:
            out["tools"] = tools
        return out

    def vm_tools(self, ctx: BuiltContext) -> list[Message]:
        return list(ctx.tools)

    def follow_up(self, body: Body, output: CallOutput, served: Served) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": output.text}] if output.text else []
        content += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c)} for c, _ in served
        ]
        results = [{"type": "tool_result", "tool_use_id": c.id, "content": text} for c, text in served]
        messages = [
            *body["messages"],
            {"role": "assistant", "content": content},
            {"role": "user", "content": results},
        ]
        return {**body, "messages": messages}

    def forced(self, body: Body) -> dict[str, Any]:
        return {**body, "tool_choice": {"type": "none"}}

    def count_shape(self, messages: Sequence[Message]) -> list[Message]:
        return list(messages)


# -- OpenAI Responses -------------------------------------------------------------------

_ANSWER_ITEMS = frozenset({"function_call", "custom_tool_call", "reasoning"})


def _responses_parts(content: Any, *, assistant: bool) -> Any:
    """Chat content parts as Responses input parts."""
    if not isinstance(content, list):
        return content
    text_kind = "output_text" if assistant else "input_text"
    parts: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            parts.append(part)
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append({"type": text_kind, "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
        else:
            parts.append(part)
    return parts


def _chat_parts(content: Any) -> Any:
    """Responses content parts as chat parts (for the builder and for counting)."""
    if not isinstance(content, list):
        return content
    parts: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": part.get("image_url")}})
        else:
            parts.append(part)
    return parts


def _chat_tool(tool: Mapping[str, Any]) -> Message:
    if tool.get("type") == "function" and "function" not in tool:
        function = {k: v for k, v in tool.items() if k in ("name", "description", "parameters", "strict")}
        return {"type": "function", "function": function}
    return dict(tool)


def _responses_tool(tool: Mapping[str, Any]) -> Message:
    function = tool.get("function")
    if isinstance(function, dict):
        return {"type": "function", **function}
    return dict(tool)


class ResponsesShape:
    """``/responses`` requests without server-side state (no ``previous_response_id``)."""

    provider = Provider.OPENAI

    def _items(self, body: Body) -> list[Any]:
        data = body.get("input")
        if isinstance(data, str):
            return [{"role": "user", "content": data}]
        return _tail(data or (), 0)

    @staticmethod
    def _backwards(body: Body) -> Iterator[Message]:
        """The input's items from the last, read with ``plain`` (the history can be long)."""
        data = body.get("input")
        if isinstance(data, str):
            yield {"role": "user", "content": data}
            return
        data = data or ()
        for i in range(len(data) - 1, -1, -1):
            item = plain(data[i])
            if isinstance(item, dict):
                yield item

    def latest(self, body: Body) -> list[Message]:
        latest: list[Message] = []
        answered = False
        prefill = True  # trailing assistant messages: a prefill the model continues
        for item in self._backwards(body):
            if prefill and item.get("role") == "assistant" and item.get("type") in (None, "message"):
                latest.append(item)
                continue
            prefill = False
            if item.get("type") in _ANSWER_ITEMS or item.get("role") == "assistant":
                answered = True
                break
            latest.append(item)
        if latest and all(i.get("role") == "assistant" for i in latest):
            return []  # nothing before the prefill for it to answer
        latest.reverse()
        # Leading instructions-like items of a first request are the system prompt.
        while not answered and latest and latest[0].get("role") in _SYSTEM_ROLES:
            latest = latest[1:]
        return latest

    def incoming(self, latest: list[Message]) -> list[Message]:
        out: list[Message] = []
        for item in latest:
            kind = item.get("type")
            if kind in ("function_call_output", "custom_tool_call_output"):
                output = item.get("output")
                text = output if isinstance(output, str) else content_text(output)
                out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
            elif item.get("role") in _SYSTEM_ROLES:
                out.append({"role": "system", "content": content_text(item.get("content"))})
            elif item.get("role") == "assistant":  # a prefill
                out.append({"role": "assistant", "content": content_text(item.get("content"))})
            else:
                out.append({"role": "user", "content": _chat_parts(item.get("content"))})
        return out

    def alone(self, latest: list[Message]) -> dict[str, Any]:
        return {"input": latest}

    def unanswered(self, body: Body, latest: list[Message]) -> str | None:
        called: list[Any] = []
        for n, item in enumerate(self._backwards(body)):
            if n < len(latest):
                continue
            if item.get("type") not in ("function_call", "custom_tool_call"):
                break
            called.append(item.get("call_id"))
        kinds = ("function_call_output", "custom_tool_call_output")
        answered = [i.get("call_id") for i in latest if i.get("type") in kinds]
        return _mismatch(called, answered)

    def app_tools(self, body: Body) -> list[Message]:
        return [_chat_tool(t) for t in body.get("tools") or () if isinstance(t, dict)]

    def vm_tool_names(self, body: Body) -> set[str]:
        return _tool_names(body.get("tools"), nested=False)

    def can_hide_calls(self, body: Body) -> bool:
        last = next(self._backwards(body), None)
        return not (last is not None and last.get("role") == "assistant")  # a prefill is continued

    def wire(self, body: Body, ctx: BuiltContext, latest: list[Message]) -> dict[str, Any]:
        context = ctx.messages[: len(ctx.messages) - len(latest)]
        out = {**body}
        if body.get("instructions") and context and context[0].get("role") == "system":
            # The app's instructions stay where the app put them (the builder's first
            # system message is that same prompt).
            out["instructions"] = context[0]["content"]
            context = context[1:]
        out["input"] = [*self._input_items(context), *latest]
        tools = [dict(t) for t in body.get("tools") or () if isinstance(t, dict)]
        tools += self.vm_tools(ctx)
        if tools:
            out["tools"] = tools
        return out

    def vm_tools(self, ctx: BuiltContext) -> list[Message]:
        return [_responses_tool(t) for t in ctx.tools]

    def _input_items(self, messages: Sequence[Message]) -> list[Message]:
        items: list[Message] = []
        for msg in messages:
            role = msg.get("role")
            if role == "tool":
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": msg.get("tool_call_id"),
                        "output": content_text(msg.get("content")),
                    }
                )
                continue
            content = msg.get("content")
            if role == "assistant":
                if content:
                    items.append({"role": "assistant", "content": _responses_parts(content, assistant=True)})
                for call in msg.get("tool_calls") or ():
                    function = call.get("function") or {}
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": call.get("id"),
                            "name": function.get("name"),
                            "arguments": function.get("arguments") or "{}",
                        }
                    )
                continue
            items.append({"role": role, "content": _responses_parts(content, assistant=False)})
        return items

    def follow_up(self, body: Body, output: CallOutput, served: Served) -> dict[str, Any]:
        items = list(self._items(body))
        if output.text:
            items.append({"role": "assistant", "content": output.text})
        for call, _ in served:
            items.append(
                {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments}
            )
        items += [{"type": "function_call_output", "call_id": c.id, "output": text} for c, text in served]
        return {**body, "input": items}

    def forced(self, body: Body) -> dict[str, Any]:
        return {**body, "tool_choice": "none"}

    def count_shape(self, messages: Sequence[Message]) -> list[Message]:
        """Responses input items as chat messages (calls merged into their assistant turn)."""
        out: list[Message] = []
        for item in messages:
            kind = item.get("type")
            if kind in ("function_call", "custom_tool_call"):
                call = {"function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}}
                if out and out[-1].get("role") == "assistant":
                    out[-1].setdefault("tool_calls", []).append(call)
                else:
                    out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif kind in ("function_call_output", "custom_tool_call_output"):
                out.append(
                    {"role": "tool", "content": item.get("output"), "tool_call_id": item.get("call_id")}
                )
            elif kind not in _ANSWER_ITEMS:
                out.append({"role": item.get("role"), "content": _chat_parts(item.get("content"))})
        return out


_SHAPES: dict[EndpointKind, Shape] = {
    EndpointKind.CHAT: ChatShape(),
    EndpointKind.MESSAGES: MessagesShape(),
    EndpointKind.RESPONSES: ResponsesShape(),
}


def shape_for(kind: EndpointKind) -> Shape | None:
    """The shape of an endpoint managed mode rewrites (None: embeddings and the like)."""
    return _SHAPES.get(kind)
