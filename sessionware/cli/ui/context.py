"""The context a call was sent, rebuilt from the session's log, with each message's part.

Parts, in the order a request holds them:

* ``system``: the app's system prompt (the last ``SYSTEM_PROMPT`` event before the call);
* ``memory``: managed mode's memory block (summaries of evicted turns, pinned facts);
* ``recalled``: pages the model recalled in this turn's hidden rounds;
* ``recent``: earlier turns sent verbatim;
* ``latest``: the turn that caused the call (messages after the last assistant answer);
* ``left_out``: turns the app sent but managed mode kept out of the wire (in memory).

An observe-mode call sent what the app sent, which the log holds exactly: the current
branch's messages up to the call (edits undone by ``BRANCH`` events).

A managed call's wire request is not stored message by message. Calls recorded with
``metadata["managed"]["sent"]`` (``adapters.managed.sent``) say it by reference to the
log: the recent turns as transcript page numbers, the recall region's pages, how many
messages are the latest turn, and the memory block by hash (its text recorded with the
first call that sent it). Applied to the log, that gives the request's messages back:
the block's text as sent, the window's turns with the recall region where the builder
put it (``recall_before``: right before the latest turn, or before the window's last turn
when the call carried tool results; shown page by page, on the wire the region wraps them
in one message), then the latest turn. Turns the app sent and managed mode kept out are
listed as ``left_out``; the page faults of the call's hidden rounds (requests made after
the built one) follow as ``recalled``. ``exact`` is true unless the block's text or a page is missing.

Older managed calls carry only the sizes the context builder reported (``built_tokens``,
``stable_prefix_tokens`` = system + memory block, ``cacheable_prefix_tokens`` = that +
recent turns). From those the recent turns are taken back from the latest turn until
their tokens, counted locally, fill the recorded size; the memory block is shown as the
compaction summaries recorded so far. The answer says ``exact: false`` for such a
rebuild. Both give the tokens each part held by the builder's own count.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from sessionware.adapters.managed.sent import SENT_KEY, SentContext
from sessionware.cli.ui.session_data import LoadedSession, event_kind, is_call
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.models import SessionEvent

__all__ = ["MAX_MESSAGES", "ContextPart", "call_context"]

_TEXT_LIMIT = 4_000
MAX_MESSAGES = 400
"""Messages of one context sent to the page; earlier ones are counted in ``omitted``."""


class ContextPart(StrEnum):
    SYSTEM = "system"
    MEMORY = "memory"
    RECALLED = "recalled"
    RECENT = "recent"
    LATEST = "latest"
    LEFT_OUT = "left_out"


def _text(event: SessionEvent) -> str:
    if event.type is EventType.TOOL_CALL:
        return _compact(event.tool_result if event.error is None else f"error: {event.error.message}")
    content = event.content
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        text = "".join(str(p["text"]) if "text" in p else f"[{p.get('type', 'part')}]" for p in content)
    if event.tool_calls:
        calls = "; ".join(f"{c.name}({c.arguments})" for c in event.tool_calls)
        text = f"{text}\n-> {calls}" if text else f"-> {calls}"
    return text


def _wire(event: SessionEvent) -> dict[str, Any]:
    """The message as a chat API would count it."""
    message: dict[str, Any] = {"role": _role(event), "content": _text(event)}
    if event.tool_call_id:
        message["tool_call_id"] = event.tool_call_id
    return message


def _role(event: SessionEvent) -> str:
    return Role.TOOL.value if event.type is EventType.TOOL_CALL else (event.role or Role.USER).value


def _thread(events: list[SessionEvent]) -> tuple[SessionEvent | None, list[SessionEvent]]:
    """The system prompt event and the branch's conversation messages, as of the end of ``events``."""
    system: SessionEvent | None = None
    thread: list[SessionEvent] = []
    for event in events:
        if event.type is EventType.BRANCH and event.branch_of is not None:
            cut = event.branch_of
            while thread and thread[-1].seq > cut:
                thread.pop()
        elif event.type is EventType.SYSTEM_PROMPT:
            system = event
        elif event.type in (EventType.MESSAGE, EventType.TOOL_CALL) and not event.hidden:
            thread.append(event)
    return system, thread


def _latest_start(thread: list[SessionEvent]) -> int:
    """Index of the first message of the latest turn (after the last assistant answer)."""
    for i in range(len(thread) - 1, -1, -1):
        if thread[i].role is Role.ASSISTANT and not thread[i].tool_calls:
            return i + 1
    # No finished answer yet: the turn starts at the last user message.
    for i in range(len(thread) - 1, -1, -1):
        if thread[i].role is Role.USER:
            return i
    return 0


def _message(event: SessionEvent, part: ContextPart, tokens: int | None = None) -> dict[str, Any]:
    text = _text(event)
    return {
        "seq": event.seq,
        "role": _role(event),
        "kind": event_kind(event),
        "part": part.value,
        "text": text[:_TEXT_LIMIT],
        "clipped": len(text) > _TEXT_LIMIT,
        "tokens": tokens,
    }


def call_context(session: LoadedSession, seq: int) -> dict[str, Any] | None:
    """What the call recorded at ``seq`` was sent, part by part; None when ``seq`` is no call."""
    at = session.index_of(seq)
    if at is None or not is_call(session.events[at]):
        return None
    call = session.events[at]
    before = session.events[:at]
    system, thread = _thread(before)
    start = _latest_start(thread)
    managed = call.metadata.get("managed")
    turn_events = [e for e in before if e.seq > (thread[start - 1].seq if start else 0)]
    answer: dict[str, Any] = {
        "seq": seq,
        "model": call.model,
        "managed": isinstance(managed, dict),
        "hidden": call.hidden,
        "app_input_tokens": call.app_input_tokens,
        "wire_input_tokens": call.usage.input_tokens if call.usage else None,
        "cached_tokens": call.usage.cache_read_tokens if call.usage else None,
    }
    messages, prompt_known = _system_message(session, at, system)
    if not isinstance(managed, dict) or "built_tokens" not in managed:
        messages.extend(_message(e, ContextPart.RECENT) for e in thread[:start])
        messages.extend(_message(e, ContextPart.LATEST) for e in thread[start:])
        exact = prompt_known and not isinstance(managed, dict)
        answer.update(exact=exact, parts=_chars_by_part(messages), basis="characters")
        return _capped(answer, messages)
    parts = _managed_parts(managed)
    sent = _sent_messages(session.events, at, thread, turn_events, managed.get(SENT_KEY))
    if sent is not None:
        found, complete = sent
        messages.extend(found)
        answer.update(exact=prompt_known and complete, parts=parts, basis="tokens", managed_report=managed)
        return _capped(answer, messages)
    counter = counter_for_model(call.model)
    recent_budget = parts.get(ContextPart.RECENT.value, 0)
    recent_from = start
    used = 0
    while recent_from > 0:
        cost = counter.count_message(_wire(thread[recent_from - 1]))
        if used + cost > recent_budget:
            break
        used += cost
        recent_from -= 1
    summaries = [e for e in before if e.type is EventType.COMPACTION and e.content]
    if summaries:
        block = "\n".join(_text(e) for e in summaries)
        memory = {
            "seq": summaries[-1].seq,
            "role": Role.SYSTEM.value,
            "kind": "memory",
            "part": ContextPart.MEMORY.value,
            "text": block[-_TEXT_LIMIT:],
            "clipped": len(block) > _TEXT_LIMIT,
            "tokens": None,
            "note": f"summaries of {len(summaries)} compactions recorded so far",
        }
        messages.append(memory)
    for event in turn_events:
        if event.type is EventType.PAGE_FAULT:
            recalled = _message(event, ContextPart.RECALLED)
            recalled["text"] = f"{event.tool_name}({_compact(event.tool_arguments)})"
            recalled["note"] = ", ".join(str(p) for p in event.metadata.get("recalled") or [])
            messages.append(recalled)
    messages.extend(_message(e, ContextPart.LEFT_OUT) for e in thread[:recent_from])
    messages.extend(_message(e, ContextPart.RECENT) for e in thread[recent_from:start])
    messages.extend(_message(e, ContextPart.LATEST) for e in thread[start:])
    answer.update(exact=False, parts=parts, basis="tokens", managed_report=managed)
    return _capped(answer, messages)


def _system_message(
    session: LoadedSession, at: int, system: SessionEvent | None
) -> tuple[list[dict[str, Any]], bool]:
    """The system prompt the call at ``at`` was sent (none, or one message), and whether
    the log says which it was."""
    if system is not None and system.content:
        return [_message(system, ContextPart.SYSTEM)], True
    if system is not None or not session.info.system_prompt:
        return [], True
    # A prompt given when the session was created lives in its header only; the header
    # holds the latest one, which is the one in force unless a change was logged later.
    later = any(e.type is EventType.SYSTEM_PROMPT for e in session.events[at:])
    message = {
        "seq": None,
        "role": Role.SYSTEM.value,
        "kind": "system",
        "part": ContextPart.SYSTEM.value,
        "text": "" if later else session.info.system_prompt[:_TEXT_LIMIT],
        "clipped": False,
        "tokens": None,
        "note": "the prompt in force then was not logged (it was changed later)"
        if later
        else "from the session header",
    }
    return [message], not later


def _sent_messages(
    events: list[SessionEvent],
    at: int,
    thread: list[SessionEvent],
    turn_events: list[SessionEvent],
    recorded: Any,
) -> tuple[list[dict[str, Any]], bool] | None:
    """The messages after the system prompt of the call at ``events[at]``, from its
    ``managed.sent`` record, and whether every one was found; None without a record."""
    if not isinstance(recorded, dict):
        return None
    try:
        sent = SentContext.model_validate(recorded)
    except ValidationError:
        return None
    transcript = [e for e in thread if e.role is not Role.SYSTEM]
    pages = {f"msg_{n}": e for n, e in enumerate(transcript, start=1)}
    if not 0 <= sent.latest <= len(transcript):
        return None
    complete = True
    messages: list[dict[str, Any]] = []
    if sent.block_hash:
        memory = _block_message(events, at, sent.block_hash)
        complete = complete and memory["seq"] is not None
        messages.append(memory)
    window = [pages.get(page_id) for page_id in sent.pages()]
    complete = complete and all(e is not None for e in window)
    shown = [e for e in window if e is not None]
    latest = transcript[len(transcript) - sent.latest :]
    kept = {e.seq for e in shown} | {e.seq for e in latest}
    kept |= {pages[p].seq for p in sent.recalled if p in pages}
    messages.extend(_message(e, ContextPart.LEFT_OUT) for e in transcript if e.seq not in kept)
    at, placed = _recall_at(sent, window, shown)
    complete = complete and placed
    messages.extend(_message(e, ContextPart.RECENT) for e in shown[:at])
    for page_id in sent.recalled:
        page = pages.get(page_id)
        recalled = _message(page, ContextPart.RECALLED) if page is not None else _missing(page_id)
        recalled["note"] = f"recall region: page {page_id}"
        complete = complete and page is not None
        messages.append(recalled)
    messages.extend(_message(e, ContextPart.RECENT) for e in shown[at:])
    messages.extend(_message(e, ContextPart.LATEST) for e in latest)
    for event in turn_events:
        if event.type is EventType.PAGE_FAULT:
            fault = _message(event, ContextPart.RECALLED)
            fault["text"] = f"{event.tool_name}({_compact(event.tool_arguments)})"
            found = ", ".join(str(p) for p in event.metadata.get("recalled") or [])
            fault["note"] = "a hidden round of this call" + (f": {found}" if found else "")
            messages.append(fault)
    return messages, complete


def _recall_at(
    sent: SentContext, window: list[SessionEvent | None], shown: list[SessionEvent]
) -> tuple[int, bool]:
    """How many of the window's ``shown`` messages were sent before the recall region, as
    the builder recorded it (``recall_before``), and whether the record says so. Calls
    recorded before it did had the region before the window's last turn."""
    if "recall_before" not in sent.model_fields_set:
        return max((i for i, e in enumerate(shown) if e.role is Role.USER), default=len(shown)), True
    if sent.recall_before is None:
        return len(shown), True
    pages = sent.pages()
    if sent.recall_before not in pages:
        return len(shown), False
    cut = pages.index(sent.recall_before)
    return sum(e is not None for e in window[:cut]), True


def _block_message(events: list[SessionEvent], at: int, block_hash: str) -> dict[str, Any]:
    """The memory block of hash ``block_hash``: its text as recorded with the first call
    that sent it (at or before ``events[at]``)."""
    for event in reversed(events[: at + 1]):
        managed = event.metadata.get("managed")
        recorded = managed.get(SENT_KEY) if isinstance(managed, dict) else None
        if (
            isinstance(recorded, dict)
            and recorded.get("block_hash") == block_hash
            and isinstance(recorded.get("block"), str)
        ):
            text: str = recorded["block"]
            return {
                "seq": event.seq,
                "role": Role.SYSTEM.value,
                "kind": "memory",
                "part": ContextPart.MEMORY.value,
                "text": text[:_TEXT_LIMIT],
                "clipped": len(text) > _TEXT_LIMIT,
                "tokens": None,
                "note": f"as recorded with #{event.seq}",
            }
    missing = _missing(block_hash)
    missing.update(kind="memory", part=ContextPart.MEMORY.value, note="its text is not in the log")
    return missing


def _missing(name: str) -> dict[str, Any]:
    return {
        "seq": None,
        "role": Role.SYSTEM.value,
        "kind": "missing",
        "part": ContextPart.RECALLED.value,
        "text": "",
        "clipped": False,
        "tokens": None,
        "note": f"{name}: not found in the log",
    }


def _capped(answer: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """At most ``MAX_MESSAGES`` messages: the leading system and memory ones, then the latest."""
    head = [m for m in messages[:2] if m["part"] in (ContextPart.SYSTEM.value, ContextPart.MEMORY.value)]
    rest = messages[len(head) :]
    room = MAX_MESSAGES - len(head)
    answer["messages"] = head + rest[-room:]
    answer["omitted"] = max(len(rest) - room, 0)
    answer["omitted_after"] = len(head)
    return answer


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _chars_by_part(messages: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages:
        counts[message["part"]] = counts.get(message["part"], 0) + len(message["text"])
    return counts


def _managed_parts(managed: dict[str, Any]) -> dict[str, int]:
    """Tokens per part by the builder's own count (its recorded ``parts`` when present)."""
    sent = managed.get(SENT_KEY)
    recorded = sent.get("parts") if isinstance(sent, dict) else managed.get("parts")
    if isinstance(recorded, dict):
        return {
            ContextPart.SYSTEM.value: int(recorded.get("system", 0)),
            ContextPart.MEMORY.value: int(recorded.get("memory", 0)) + int(recorded.get("tools", 0)),
            ContextPart.RECALLED.value: int(recorded.get("recall", 0)),
            ContextPart.RECENT.value: int(recorded.get("window", 0)),
            ContextPart.LATEST.value: int(recorded.get("incoming", 0)),
        }
    built = int(managed.get("built_tokens", 0))
    stable = int(managed.get("stable_prefix_tokens", 0))
    cacheable = int(managed.get("cacheable_prefix_tokens", stable))
    return {
        "system_and_memory": stable,
        ContextPart.RECENT.value: max(cacheable - stable, 0),
        ContextPart.LATEST.value: max(built - cacheable, 0),
    }
