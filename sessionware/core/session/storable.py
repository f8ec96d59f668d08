"""What a store can hold: text UTF-8 can encode, session ids it accepts.

Python strings may hold lone surrogates (``"\\ud800"``: half of a UTF-16 pair, produced
by ``surrogateescape`` decoding, by JSON text that escapes one, or by a provider's reply);
UTF-8 cannot encode them, so no JSON store can hold them. Two policies apply:

* what the app hands ``SessionManager`` is checked at the door (``unstorable``): a
  typed ``InvalidSessionOperation`` names the field, nothing is recorded;
* what comes from a provider or a wrapped call is repaired where it is serialised
  (``storable_event``), the way JSON encoders do it: a surrogate pair becomes its
  character, a lone surrogate U+FFFD. The stored event lists the repaired fields in
  ``SessionEvent.repaired``; the store counts it (``health()``).

>>> repair_text("ok \\ud83d\\ude00 \\ud800!")
'ok 😀 �!'
>>> check_session_id("ticket-42")
'ticket-42'
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel
from pydantic_core import to_json

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.models import SessionEvent

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "RepairedEvent",
    "check_session_id",
    "repair_text",
    "storable_event",
    "storable_model",
    "unstorable",
]

MAX_SESSION_ID_LENGTH = 256
M = TypeVar("M", bound=BaseModel)


class RepairedEvent(NamedTuple):
    """An event (or, with ``event_id`` None, a session header) stored with repaired text."""

    session_id: str
    event_id: str | None
    fields: tuple[str, ...]


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def repair_text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if _encodable(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_PLAIN = (int, float, bool, Decimal, type(None))


_SURROGATE = "holds a lone surrogate (text UTF-8 cannot encode)"
_NOT_JSON = "is not JSON-serialisable"

Notes = list[tuple[str, str]]


def _repair(value: Any, path: str, notes: Notes) -> Any:
    """``value`` made JSON-storable; each repaired place is added to ``notes`` as
    (path, what was wrong)."""
    if isinstance(value, str):
        if _encodable(value):
            return value
        notes.append((path, _SURROGATE))
        return repair_text(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = _repair(key, f"{path}.<key>", notes) if isinstance(key, str) else key
            new_item = _repair(item, f"{path}.{new_key}", notes)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [_repair(item, f"{path}[{i}]", notes) for i, item in enumerate(value)]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items) if isinstance(value, tuple) else items
    if isinstance(value, BaseModel):
        update = {}
        for name, item in value.__dict__.items():
            new_item = _repair(item, f"{path}.{name}", notes)
            if new_item is not item:
                update[name] = new_item
        return value.model_copy(update=update) if update else value
    try:
        to_json(value)
    except ValueError:  # an object JSON cannot hold: kept as its text
        notes.append((path, _NOT_JSON))
        return repair_text(repr(value))
    return value


def storable_event(event: SessionEvent) -> tuple[SessionEvent, RepairedEvent | None]:
    """``event``, or a copy with its unencodable text repaired and ``repaired`` set."""
    notes: Notes = []
    update: dict[str, Any] = {}
    for name, value in event.__dict__.items():
        new = _repair(value, name, notes)
        if new is not value:
            update[name] = new
    if not notes:
        return event, None
    paths = tuple(path for path, _ in notes)
    update["repaired"] = (*event.repaired, *paths)
    fixed = event.model_copy(update=update)
    return fixed, RepairedEvent(fixed.session_id, fixed.id, paths)


def storable_model(model: M, path: str) -> tuple[M, list[str]]:
    """``model`` (a header, a run...) with unencodable text repaired, and where it was."""
    notes: Notes = []
    fixed = _repair(model, path, notes)
    return fixed, [p for p, _ in notes]


def unstorable(value: Any, path: str) -> str | None:
    """What makes ``value`` unstorable ("content[0].text holds a lone surrogate..."), or None.

    For checks at the door: cheap for ASCII text, which is all most calls carry.
    """
    if isinstance(value, str):
        return None if _encodable(value) else f"{path} {_SURROGATE}"
    if value is None or isinstance(value, _PLAIN):
        return None
    notes: Notes = []
    _repair(value, path, notes)
    return " ".join(notes[0]) if notes else None


def check_session_id(session_id: object, operation: str = "session") -> str:
    """``session_id`` if a store can hold it: a non-empty printable ``str`` of at most
    256 characters; ``InvalidSessionOperation`` otherwise."""
    if not isinstance(session_id, str):
        raise InvalidSessionOperation(
            operation, f"a session id must be a str, got {type(session_id).__name__}"
        )
    if not session_id.strip():
        raise InvalidSessionOperation(
            operation, f"a session id must not be empty or blank, got {session_id!r}"
        )
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise InvalidSessionOperation(
            operation,
            f"a session id must be at most {MAX_SESSION_ID_LENGTH} characters, got {len(session_id)}",
        )
    if not session_id.isprintable():
        bad = next(c for c in session_id if not c.isprintable())
        raise InvalidSessionOperation(
            operation,
            f"a session id must be printable text; {session_id!r} holds {bad!r}"
            f" at position {session_id.index(bad)}",
        )
    return session_id
