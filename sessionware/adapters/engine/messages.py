"""Small helpers shared by the provider readers and the recorder.

* ``message_key`` / ``event_key``: an in-process identity for a conversation message,
  equal for a message as the app re-sends it and as sessionware recorded it. Text parts
  are compared by their text, tool calls by id, name and arguments; fields that do not
  change what the model saw (``name``, annotations, thinking blocks) are ignored. A tool
  result is identified by its call id alone: the id names one execution, and the app's
  own rendering of the result (``str(result)``, its JSON) need not match the text of a
  ``TOOL_CALL`` event a tool runner or a wrapped tool processor recorded for it.
* ``fingerprint``: a stable (cross-process) digest of a conversation's opening.
* ``AttrDict``: attribute access over parsed JSON, so the readers written for SDK
  objects also read payloads seen only as bytes (``with_streaming_response``).
* ``plain``: an argument the app gave the SDK (a message, a content part) as the JSON
  the SDK would send: readers that run before the SDK prepared the request (managed
  mode takes the app's arguments at the resource method) read messages through it.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sessionware.adapters.engine.types import WireCall, WireMessage
from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.messages import tool_result_text
from sessionware.core.session.models import SessionEvent

__all__ = [
    "AttrDict",
    "canonical_json",
    "content_text",
    "event_key",
    "field",
    "fingerprint",
    "message_key",
    "message_keys",
    "plain",
    "reading_once",
    "to_int",
    "usage_of",
    "wrap_json",
]

_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
# Parts that carry no conversation content of their own for identity purposes: the
# provider returns them and the app may or may not send them back.
_IGNORED_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning", "tool_use", "function_call"})


_SCALARS = frozenset({str, int, float, bool, type(None)})

# One-shot iterables ``plain`` has read during the current ``reading_once`` block, by
# ``id``: read again, they give what was read the first time.
_read_once: contextvars.ContextVar[dict[int, tuple[Any, list[Any]]] | None] = contextvars.ContextVar(
    "sessionware_read_once", default=None
)


@contextmanager
def reading_once() -> Iterator[dict[int, tuple[Any, list[Any]]]]:
    """A block in which every iterable ``plain`` reads is read once: a second ``plain`` of
    the same object gives the same list, not what an exhausted iterator has left."""
    memo: dict[int, tuple[Any, list[Any]]] = {}
    token = _read_once.set(memo)
    try:
        yield memo
    finally:
        _read_once.reset(token)


def plain(value: Any) -> Any:
    """``value`` as the JSON the SDK would send for it: pydantic models dumped as the SDKs
    dump them (``exclude_unset``, JSON mode), tuples and other iterables as lists, in
    nested values too. Already plain values are returned as they are (no copy); a
    changed dict or list is a copy, so the app's objects are never changed.

    >>> m = {"role": "user", "content": ({"type": "text", "text": "hi"},)}
    >>> plain(m)
    {'role': 'user', 'content': [{'type': 'text', 'text': 'hi'}]}
    >>> plain(m) is m, plain({"role": "user", "content": "hi"})["content"]
    (False, 'hi')
    """
    cls = value.__class__
    if cls in _SCALARS:
        return value
    if cls is dict:
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if item.__class__ in _SCALARS:
                continue
            read = plain(item)
            if read is not item:
                if out is None:
                    out = dict(value)
                out[key] = read
        return value if out is None else out
    if cls is list:
        copied: list[Any] | None = None
        for i, item in enumerate(value):
            if item.__class__ in _SCALARS:
                continue
            read = plain(item)
            if read is not item:
                if copied is None:
                    copied = list(value)
                copied[i] = read
        return value if copied is None else copied
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        exclude = getattr(value, "__api_exclude__", None)
        return plain(dump(mode="json", exclude_unset=True, by_alias=True, exclude=exclude))
    if isinstance(value, dict):
        return plain(dict(value))
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Iterable):
        return value
    memo = _read_once.get()
    if memo is not None:
        seen = memo.get(id(value))
        if seen is not None:
            return seen[1]
    items = [plain(item) for item in value]
    if memo is not None:
        memo[id(value)] = (value, items)
    return items


def canonical_json(value: Any) -> str:
    """JSON text that is equal for equal values (sorted keys, no spaces)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _text_key(content: Any) -> Any:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    others: list[Any] = []
    for part in content if isinstance(content, Iterable) else (content,):
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            texts.append(str(part.get("text") or ""))
        elif kind not in _IGNORED_PARTS:
            others.append(_freeze(part))
    joined = "".join(texts)
    return (joined, tuple(others)) if others else joined


def content_text(content: Any) -> str:
    """The text of a message content: a string, or its text parts joined."""
    key = _text_key(content)
    return key if isinstance(key, str) else key[0]


def message_key(message: WireMessage) -> int:
    """Identity of a message within this process (collisions are 1 in 2**64)."""
    if message.call_id:
        return hash((message.role, message.call_id))
    return hash((message.role, _text_key(message.content), message.calls, ""))


def message_keys(messages: list[WireMessage]) -> list[int]:
    """``message_key`` of each message (inlined: every message is keyed on every call)."""
    return [
        hash((m[0], m[3]))
        if m[3]
        else hash((m[0], m[1] if m[1].__class__ is str else _text_key(m[1]), m[2], ""))
        for m in messages
    ]


def event_key(event: SessionEvent) -> int | None:
    """``message_key`` of a recorded event, or None for events that are not messages."""
    if event.type is EventType.TOOL_CALL:
        if event.tool_call_id:
            return hash((Role.TOOL, event.tool_call_id))
        return hash((Role.TOOL, tool_result_text(event), (), ""))
    if event.type is not EventType.MESSAGE or event.role is None:
        return None
    if event.tool_call_id:
        return hash((event.role, event.tool_call_id))
    tool_calls = event.tool_calls
    calls = tuple([WireCall(c.id, c.name, c.arguments) for c in tool_calls]) if tool_calls else ()
    content = event.content
    return hash((event.role, content if content.__class__ is str else _text_key(content), calls, ""))


def fingerprint(system: str | None, first_user: Any) -> str | None:
    """A stable id for a conversation: its system text and first user message content.

    Returns None when the request has neither, so there is nothing to thread on.
    """
    global _last_fingerprint
    if not system and first_user is None:
        return None
    last = _last_fingerprint
    # Apps re-send the same string objects call after call: skip the digest then. The
    # cache holds them, so ``is`` cannot match a new object at a recycled address.
    if last is not None and last[0] is system and last[1] is first_user:
        return last[2]
    found = _digest(system, first_user)
    _last_fingerprint = (system, first_user, found)
    return found


_last_fingerprint: tuple[Any, Any, str] | None = None


def _digest(system: str | None, first_user: Any) -> str:
    digest = hashlib.sha256()
    digest.update((system or "").encode())
    digest.update(b"\x00")
    if first_user is not None:
        key = _text_key(first_user)
        digest.update((key if isinstance(key, str) else canonical_json(key)).encode())
    return "auto-" + digest.hexdigest()[:24]


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` for a mapping, ``obj.name`` otherwise; None when absent."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


_new = object.__new__
_set = object.__setattr__
_USAGE_FIELDS = frozenset(TokenUsage.model_fields)


def usage_of(
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    source: TokenSource = TokenSource.PROVIDER,
) -> TokenUsage:
    """A ``TokenUsage`` from counts already made valid (``to_int``), built without
    validation: ``model_construct`` alone costs ~5 µs, a tenth of the per-call budget."""
    usage = _new(TokenUsage)
    _set(
        usage,
        "__dict__",
        {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
            "source": source,
        },
    )
    _set(usage, "__pydantic_fields_set__", set(_USAGE_FIELDS))
    _set(usage, "__pydantic_extra__", None)
    _set(usage, "__pydantic_private__", None)
    return usage


def to_int(value: Any) -> int:
    """A provider count as a non-negative int (missing or odd values count as 0)."""
    return value if isinstance(value, int) and value > 0 else 0


class AttrDict(dict[str, Any]):
    """A JSON object whose keys read as attributes; missing keys read as None."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return wrap_json(self.get(name))


def wrap_json(value: Any) -> Any:
    """``value`` with objects (also inside lists) readable as attributes."""
    if isinstance(value, dict) and not isinstance(value, AttrDict):
        return AttrDict(value)
    if isinstance(value, list):
        return [wrap_json(v) for v in value]
    return value
