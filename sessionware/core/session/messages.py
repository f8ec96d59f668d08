"""From a session's events to a provider-ready message list (OpenAI chat shape).

The list is always valid for the OpenAI API: every ``tool`` message follows the
assistant message whose ``tool_calls`` it answers, and no assistant tool call is left
without its result. Tools recorded with ``tool_used`` but never announced by an
assistant message get one synthesised, so seed-style logs convert too. An edited
history (a ``BRANCH`` event) replaces what came after the branch point.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.models import SessionEvent

__all__ = [
    "announce_tool_call",
    "arguments_text",
    "conversation_events",
    "event_message",
    "events_to_messages",
    "tool_result_text",
]

Message = dict[str, Any]


def tool_result_text(event: SessionEvent) -> str:
    """The text a ``tool`` message carries for a ``TOOL_CALL`` event."""
    if event.error is not None:
        return f"Error: {event.error.message}"
    result = event.tool_result
    if isinstance(result, str):
        return result
    return json.dumps(result, default=str, ensure_ascii=False)


def arguments_text(arguments: Any) -> str:
    """Tool call arguments as the JSON text the API carries."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, default=str, ensure_ascii=False)


def conversation_events(events: Iterable[SessionEvent]) -> list[SessionEvent]:
    """Message and tool events of the current branch, in order."""
    kept: list[SessionEvent] = []
    for event in events:
        if event.type is EventType.BRANCH and event.branch_of is not None:
            cut = event.branch_of
            while kept and kept[-1].seq > cut:
                kept.pop()
        elif event.type in (EventType.MESSAGE, EventType.TOOL_CALL):
            kept.append(event)
    return kept


def event_message(event: SessionEvent) -> Message:
    """A message event as an OpenAI chat message."""
    role = event.role or Role.USER
    msg: Message = {"role": role.value, "content": event.content}
    if event.name:
        msg["name"] = event.name
    if role is Role.ASSISTANT and event.tool_calls:
        msg["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in event.tool_calls
        ]
    if role is Role.TOOL:
        msg["tool_call_id"] = event.tool_call_id or ""
    return msg


def announce_tool_call(
    out: list[Message], synthetic: Message | None, event: SessionEvent, call_id: str
) -> Message:
    """Announce a tool call the log never saw the model make (a seed-style ``tool_used``).

    The call goes into ``synthetic``, an assistant message appended to ``out`` when it is
    None (consecutive such results share one); returns that message.
    """
    if synthetic is None:
        synthetic = {"role": Role.ASSISTANT.value, "content": None, "tool_calls": []}
        out.append(synthetic)
    function = {"name": event.tool_name or "tool", "arguments": arguments_text(event.tool_arguments)}
    synthetic["tool_calls"].append({"id": call_id, "type": "function", "function": function})
    return synthetic


def events_to_messages(events: Sequence[SessionEvent], *, system_prompt: str | None = None) -> list[Message]:
    """Build the message list for ``events``, preceded by ``system_prompt`` when given.

    >>> events_to_messages([], system_prompt="Be brief.")
    [{'role': 'system', 'content': 'Be brief.'}]
    """
    out: list[Message] = []
    if system_prompt and system_prompt.strip():
        out.append({"role": Role.SYSTEM.value, "content": system_prompt})
    open_calls: set[str] = set()
    synthetic: Message | None = None
    for event in conversation_events(events):
        if event.type is EventType.TOOL_CALL:
            call_id = event.tool_call_id or f"call_{event.id}"
            if call_id not in open_calls:
                synthetic = announce_tool_call(out, synthetic, event, call_id)
            open_calls.discard(call_id)
            out.append({"role": Role.TOOL.value, "tool_call_id": call_id, "content": tool_result_text(event)})
            continue
        synthetic = None
        msg = event_message(event)
        if event.role is Role.TOOL:
            open_calls.discard(msg["tool_call_id"])
        else:
            open_calls = {c.id for c in event.tool_calls} if event.role is Role.ASSISTANT else set()
        out.append(msg)
    return _drop_unanswered(out)


def _drop_unanswered(messages: list[Message]) -> list[Message]:
    """Remove tool calls without results and tool results without calls."""
    answered: set[str] = set()
    announced: set[str] = set()
    for msg in messages:
        if msg["role"] == Role.TOOL.value:
            answered.add(msg["tool_call_id"])
        announced.update(call["id"] for call in msg.get("tool_calls") or ())
    if announced <= answered <= announced:
        return messages
    valid: list[Message] = []
    for msg in messages:
        calls = msg.get("tool_calls")
        if calls:
            kept = [c for c in calls if c["id"] in answered]
            if not kept and not msg.get("content"):
                continue
            if kept != calls:
                trimmed = {k: v for k, v in msg.items() if k != "tool_calls"}
                valid.append({**trimmed, "tool_calls": kept} if kept else trimmed)
                continue
        if msg["role"] == Role.TOOL.value and msg["tool_call_id"] not in announced:
            continue
        valid.append(msg)
    return valid
