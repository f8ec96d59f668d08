"""The storage contract: an append-only event log per session, plus headers and pages.

A backend implements ``StoreBackend``. Its methods are plain blocking calls: the
``Store`` facade runs them on its own long-lived writer thread (never on the caller's
thread or event loop) when the backend does I/O, and inline when it does not (memory).
Writes arrive as ordered batches of ``WriteOp`` so a backend can apply each batch in
one transaction; events are only ever appended, never rewritten.

Backends keep each session's totals by folding the events they append, so a header
never has to be rewritten wholesale to keep figures current.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain, groupby
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast, runtime_checkable

from sessionware.core.session.models import Session, SessionEvent, SessionInfo

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "AppendEvents",
    "CreateSession",
    "DeleteSession",
    "PutPages",
    "SaveHeader",
    "StoreBackend",
    "WriteOp",
    "coalesce_appends",
    "event_bodies",
    "event_body",
]


@dataclass(frozen=True, slots=True)
class CreateSession:
    """Create a session; fails if the id exists."""

    info: SessionInfo


@dataclass(frozen=True, slots=True)
class SaveHeader:
    """Replace a session's header fields (metadata, system prompt, runs, parent).

    Totals and ``last_seq`` are ignored: the backend derives them from appended events.
    """

    info: SessionInfo


class AppendEvents(NamedTuple):
    """Append events whose ``seq`` continue the session's log without a gap.

    A named tuple rather than a frozen dataclass like the other operations: one is built
    per recorded event, and a tuple is built in half the time.
    """

    session_id: str
    events: tuple[SessionEvent, ...]


@dataclass(frozen=True, slots=True)
class PutPages:
    """Upsert memory pages of a session, each a JSON document keyed by page id."""

    session_id: str
    pages: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DeleteSession:
    """Delete a session with its events and pages."""

    session_id: str


WriteOp = CreateSession | SaveHeader | AppendEvents | PutPages | DeleteSession


def event_body(event: SessionEvent) -> str:
    """An event as a backend stores it: JSON without the fields left at their defaults.

    A recorded message leaves most fields at their defaults (no tool call, no error, no
    usage), so this is about half the bytes of a full dump, and serialises in about half
    the time on the writer thread. ``SessionEvent.model_validate_json`` restores the
    defaults, and reads full dumps written before just the same.
    """
    return event.model_dump_json(exclude_defaults=True)


def event_bodies(events: Sequence[SessionEvent]) -> str:
    """``event_body`` of each event, as one JSON array serialised in one call."""
    return _event_list().dump_json(list(events), exclude_defaults=True).decode()


@cache
def _event_list() -> TypeAdapter[list[SessionEvent]]:
    from pydantic import TypeAdapter  # built on the first write: import time

    return TypeAdapter(list[SessionEvent])


def coalesce_appends(ops: Sequence[WriteOp]) -> list[WriteOp]:
    """``ops`` with each run of consecutive appends to one session merged into one append.

    Recording submits one append per event; a backend that pays per append (a header
    read and rewrite) writes a batch of them as one.
    """
    merged: list[WriteOp] = []
    for _, group in groupby(ops, key=_append_run_key):
        run = list(group)
        if len(run) == 1:
            merged.append(run[0])
        else:  # only appends to one session share a key
            appends = cast(list[AppendEvents], run)
            events = tuple(chain.from_iterable(a.events for a in appends))
            merged.append(AppendEvents(appends[0].session_id, events))
    return merged


def _append_run_key(op: WriteOp) -> object:
    """Consecutive ops with equal keys merge: appends by session, anything else never."""
    return op.session_id if type(op) is AppendEvents else object()


@runtime_checkable
class StoreBackend(Protocol):
    """A place sessions live. Implementations raise ``sessionware`` errors only:
    ``SessionNotFound``, ``SessionAlreadyExists`` and ``StorageError``."""

    @property
    def kind(self) -> str:
        """Short backend name for messages: ``memory``, ``sqlite``, ``redis``."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives (path or URL), for error messages."""
        ...

    @property
    def blocking(self) -> bool:
        """True when calls do I/O and must run on the store's writer thread."""
        ...

    def write(self, ops: Sequence[WriteOp]) -> None:
        """Apply ``ops`` in order, atomically where the backend can."""
        ...

    def load(self, session_id: str) -> Session:
        """The session with its events and children."""
        ...

    def load_info(self, session_id: str) -> SessionInfo: ...

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]: ...

    def exists(self, session_id: str) -> bool: ...

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        """Sessions newest first, optionally only the children of ``parent_id``."""
        ...

    def load_pages(self, session_id: str) -> dict[str, str]: ...

    def close(self) -> None: ...
