"""From session events to turns, pages and provider-shaped messages.

A *turn* starts at a user message and runs to the next one (events before the first
user message form turn 0). Turns are the unit of eviction, so an assistant tool call
and its results always stay together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionware.core.memory.enums import ContextPrefix, PageType, StorageTier
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.messages import (
    announce_tool_call,
    arguments_text,
    event_message,
    tool_result_text,
)
from sessionware.core.session.models import SessionEvent

__all__ = [
    "Message",
    "Turn",
    "event_page",
    "event_text",
    "merge_same_role",
    "openai_messages",
    "WHOLE_TYPES",
    "page_line",
    "recall_line",
    "whole_recall_line",
    "to_anthropic",
]

Message = dict[str, Any]

_PREFIX = {
    Role.USER: ContextPrefix.USER,
    Role.ASSISTANT: ContextPrefix.ASSISTANT,
    Role.TOOL: ContextPrefix.TOOL,
    Role.SYSTEM: ContextPrefix.PINNED,
}


@dataclass(slots=True)
class Turn:
    """One user message and everything up to the next one."""

    index: int
    events: list[SessionEvent] = field(default_factory=list)
    page_ids: list[str] = field(default_factory=list)
    rendered: dict[str, tuple[list[Message], list[int]]] = field(default_factory=dict)
    """Cached (messages, token counts) per provider shape; dropped when the turn grows."""

    def add(self, event: SessionEvent, page_id: str) -> None:
        self.events.append(event)
        self.page_ids.append(page_id)
        self.rendered.clear()


def event_text(event: SessionEvent) -> str:
    """The searchable text of a message or tool event."""
    if event.type is EventType.TOOL_CALL:
        arguments = arguments_text(event.tool_arguments)
        return f"{event.tool_name or 'tool'}({arguments}) -> {tool_result_text(event)}"
    text = event.text
    if event.tool_calls:
        calls = ", ".join(f"{c.name}({c.arguments})" for c in event.tool_calls)
        text = f"{text} [calls: {calls}]" if text else f"[calls: {calls}]"
    return text


def event_page(event: SessionEvent, turn: int, tokens: int, ordinal: int) -> MemoryPage:
    """The page of a message or tool event: ``msg_<ordinal>``, its place among the
    conversation's pages (so bookkeeping events in the log never shift page ids)."""
    is_tool = event.type is EventType.TOOL_CALL or event.role is Role.TOOL
    # Validated construction: faster than model_construct for this model (pydantic-core
    # fills the defaults; model_construct walks every field in Python), and each page gets
    # its own default lists and dicts.
    return MemoryPage(
        page_id=f"msg_{ordinal}",
        session_id=event.session_id,
        page_type=PageType.ARTIFACT if is_tool else PageType.TRANSCRIPT,
        role=Role.TOOL if is_tool else (event.role or Role.USER),
        text=event_text(event),
        seq=event.seq,
        turn=turn,
        last_turn=turn,
        tokens=tokens,
        tool_name=event.tool_name,
        tier=StorageTier.L0,
    )


def page_line(page: MemoryPage, text: str | None = None) -> str:
    """A ``VM:CONTEXT`` line: ``U (msg_12, t5): "escaped text"``.

    The body is a JSON string, so quotes and newlines can never break the grammar.
    """
    if page.page_type is PageType.SUMMARY or page.page_type is PageType.INDEX:
        prefix = ContextPrefix.SUMMARY
        where = f"t{page.turn}-{page.last_turn}"
    elif page.page_type is PageType.CLAIM:
        prefix = ContextPrefix.PINNED if page.pinned else ContextPrefix.CLAIM
        where = f"t{page.turn}"
    else:
        prefix = (
            ContextPrefix.PINNED if page.pinned else _PREFIX.get(page.role or Role.USER, ContextPrefix.USER)
        )
        where = f"t{page.turn}"
    body = json.dumps(page.text if text is None else text, ensure_ascii=False)
    return f"{prefix.value} ({page.page_id}, {where}): {body}"


def recall_line(page: MemoryPage, text: str | None = None, *, quoted: bool = True) -> str:
    """A recalled page: ``U msg_12: "escaped text"``, its speaker and page id (lines come
    in conversation order, so the turn is left out: four tokens a line fewer than a
    ``VM:CONTEXT`` line). ``quoted=False`` leaves the body as is, for a line that travels
    inside a JSON string already (search results).

    >>> recall_line(MemoryPage(page_id="msg_3", session_id="s", text="Lunch at noon."))
    'U msg_3: "Lunch at noon."'
    """
    if page.page_type is PageType.SUMMARY or page.page_type is PageType.INDEX:
        prefix = ContextPrefix.SUMMARY
    elif page.pinned:
        prefix = ContextPrefix.PINNED
    elif page.page_type is PageType.CLAIM:
        prefix = ContextPrefix.CLAIM
    else:
        prefix = _PREFIX.get(page.role or Role.USER, ContextPrefix.USER)
    body = page.text if text is None else text
    return f"{prefix.value} {page.page_id}: {json.dumps(body, ensure_ascii=False) if quoted else body}"


WHOLE_TYPES = (PageType.TRANSCRIPT, PageType.ARTIFACT)
"""Pages a recall line shows whole (when short enough); others are cut to a snippet."""


def whole_recall_line(
    cache: dict[str, tuple[str, int, int]], count: Callable[[str], int], page: MemoryPage
) -> tuple[str, int]:
    """``page``'s recall line shown whole (with its newline) and its exact tokens, from
    ``cache`` (page id: line, tokens, the page's own tokens) or counted with ``count`` and
    kept there."""
    known = cache.get(page.page_id)
    if known is not None:
        return known[0], known[1]
    unit = recall_line(page) + "\n"
    tokens = count(unit)
    cache[page.page_id] = (unit, tokens, page.tokens)
    return unit, tokens


def openai_messages(events: Sequence[SessionEvent], answered: Iterable[str] = ()) -> list[Message]:
    """OpenAI chat messages for one turn's events.

    Tool calls whose result is neither in ``events`` nor in ``answered`` (results the
    app is sending now) are dropped, and so are results without a call.
    """
    out: list[Message] = []
    synthetic: Message | None = None
    for event in events:
        if event.type is EventType.TOOL_CALL:
            call_id = event.tool_call_id or f"call_{event.id}"
            announced = any(call_id == c["id"] for m in out for c in m.get("tool_calls") or ())
            if not announced:
                synthetic = announce_tool_call(out, synthetic, event, call_id)
            out.append({"role": "tool", "tool_call_id": call_id, "content": tool_result_text(event)})
            continue
        synthetic = None
        out.append(event_message(event))
    return _valid_pairs(out, set(answered))


def _valid_pairs(messages: list[Message], extra_answered: set[str]) -> list[Message]:
    answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"} | extra_answered
    announced = {c["id"] for m in messages for c in m.get("tool_calls") or ()}
    valid: list[Message] = []
    for original in messages:
        msg = original
        calls = msg.get("tool_calls")
        if calls:
            kept = [c for c in calls if c["id"] in answered]
            if kept != calls:
                msg = {k: v for k, v in msg.items() if k != "tool_calls"}
                if kept:
                    msg["tool_calls"] = kept
            if not kept and not msg.get("content"):
                continue
        if msg["role"] == "tool" and msg["tool_call_id"] not in announced:
            continue
        valid.append(msg)
    return valid


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "image", "document", "tool_use", "tool_result"):
            out.append(part)
        elif "text" in part:
            out.append({"type": "text", "text": str(part["text"])})
    return out


def _anthropic_one(msg: Message) -> Message | None:
    role = msg["role"]
    if role == "tool":
        block = {
            "type": "tool_result",
            "tool_use_id": msg["tool_call_id"],
            "content": str(msg["content"] or ""),
        }
        return {"role": "user", "content": [block]}
    if role == "assistant":
        blocks = _blocks(msg.get("content"))
        for call in msg.get("tool_calls") or ():
            try:
                args = json.loads(call["function"]["arguments"] or "{}")
            except ValueError:
                args = {"arguments": call["function"]["arguments"]}
            if not isinstance(args, dict):
                args = {"value": args}
            blocks.append(
                {"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": args}
            )
        if not blocks:
            return None
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            return {"role": "assistant", "content": blocks[0]["text"]}
        return {"role": "assistant", "content": blocks}
    if role == "system":
        return {"role": "user", "content": f"[system note] {msg.get('content') or ''}"}
    content = msg.get("content")
    if isinstance(content, str):
        return {"role": "user", "content": content}
    return {"role": "user", "content": _blocks(content)}


def to_anthropic(messages: Iterable[Message]) -> list[Message]:
    """Anthropic Messages shape of OpenAI-shaped ``messages``, without merging turns."""
    out = []
    for msg in messages:
        converted = _anthropic_one(msg)
        if converted is not None:
            out.append(converted)
    return out


def merge_same_role(messages: list[Message]) -> list[Message]:
    """Join consecutive messages of one role (Anthropic requires strict alternation)."""
    out: list[Message] = []
    for msg in messages:
        if out and out[-1]["role"] == msg["role"]:
            prev = out[-1]
            out[-1] = {"role": prev["role"], "content": _blocks(prev["content"]) + _blocks(msg["content"])}
        else:
            out.append(msg)
    return out
