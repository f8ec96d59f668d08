"""The live view of one session: the single writer of its event log in this process.

Everything that records (the ``SessionManager`` facade, the SDK adapters) goes through
a ``SessionState``: it numbers events, folds totals, notifies listeners (the virtual
memory, segmentation) and hands the append to the store. Recording is synchronous
pure computation plus a queue hand-off, so sync clients need no event loop and async
clients never block on I/O.

Deferred records
----------------
A recorder may hand its work to a background thread instead of doing it on the caller's
path (the SDK adapters do: the app's call only captures references). It queues that work
on the session with ``defer``; ``settle`` runs whatever is queued, in order, on the
calling thread. Every read (``events``, ``info``) and every write (``record``,
``record_many``, ``save_header``) of the session settles first, so deferred records keep
their place in the event order and anything that reads a session sees every record made
before it; ``Store.flush`` and the store's reads settle the sessions that still hold
deferred work (see ``Store.settle``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.enums import EventSource, EventType
from sessionware.core.session.ids import new_event_id
from sessionware.core.session.models import SessionEvent, SessionInfo, trusted_event, utcnow
from sessionware.core.store.base import AppendEvents, SaveHeader
from sessionware.core.store.store import Store

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventListener", "SessionState"]

#: Largest content one event may carry; bigger input is refused before anything is stored.
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

EventListener = Callable[[SessionEvent], None]


# Fields checked before recording: anything the store cannot serialise would otherwise
# be accepted here and then fail in the store's writer, after the caller had returned.
_CHECKED_FIELDS = ("content", "tool_result", "tool_arguments", "metadata")


def _content_size(value: Any) -> int:
    """Serialised size of ``value``; raises ``ValueError`` when it is not JSON-serialisable."""
    if value is None:
        return 0
    if isinstance(value, str):
        if not value.isascii():
            value.encode()  # lone surrogates cannot be stored as UTF-8
        return len(value)
    return len(to_json(value))


class SessionState:
    """In-process state of one session. Thread-safe; every method is non-blocking."""

    def __init__(
        self,
        info: SessionInfo,
        events: list[SessionEvent],
        store: Store,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._info = info
        self._events = events
        self.store = store
        self.max_event_bytes = max_event_bytes
        self.lock = threading.RLock()
        self._listeners: list[EventListener] = []
        self.extensions: dict[str, Any] = {}
        """Per-session state owned by other parts (VM, adapters), keyed by their name."""
        self._deferred: deque[Callable[[], None]] = deque()
        self._settling: int | None = None
        """``threading.get_ident()`` of the thread running deferred work, while it does."""

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def info(self) -> SessionInfo:
        """The header and totals, with every deferred record applied."""
        if self._deferred or self._settling is not None or self.store._unresolved:
            self.settle()
        return self._info

    @property
    def events(self) -> list[SessionEvent]:
        """The event log (the live list), with every deferred record applied."""
        if self._deferred or self._settling is not None or self.store._unresolved:
            self.settle()
        return self._events

    # -- deferred records ---------------------------------------------------------

    def defer(self, work: Callable[[], None]) -> bool:
        """Queue ``work`` (a callable that records into this session) to run before
        anything else reads or writes the session.

        Returns True when nothing was queued before: the caller must then see that
        ``settle`` runs soon (the adapters hand it to their recorder thread). ``work``
        handles its own failures; one that escapes propagates from ``settle``, and the
        work queued after it stays queued.
        """
        deferred = self._deferred
        deferred.append(work)
        # Checked after the append: a settle running concurrently either takes this
        # work in its loop or has already emptied the queue, making the length 1.
        if len(deferred) == 1:
            self.store.add_unsettled(self)
            return True
        return False

    @property
    def unsettled(self) -> bool:
        """True while deferred work is queued or running (or calls of this store whose
        session is not worked out yet are queued: they may belong here)."""
        return bool(self._deferred) or self._settling is not None or bool(self.store._unresolved)

    def settle(self) -> None:
        """Run the deferred work now, in order, on this thread (a no-op when there is none).

        Waits while another thread runs it; called from inside that work (a listener
        reading the session), returns at once.
        """
        me = threading.get_ident()
        if self.store._unresolved and self._settling != me:
            # Calls whose session is not known yet may belong here (no lock held yet).
            self.store.resolve()
        if not self._deferred and self._settling is None:
            return
        if self._settling == me:
            return
        with self.lock:
            if not self._deferred:
                return
            self._settling = me
            try:
                while self._deferred:
                    self._deferred.popleft()()
            finally:
                self._settling = None
                self.store.discard_unsettled(self)
                if self._deferred:  # what a failed work left behind
                    self.store.add_unsettled(self)

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` after each event is recorded (under the session lock)."""
        with self.lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _check(self, fields: dict[str, Any]) -> None:
        for key in _CHECKED_FIELDS:
            value = fields.get(key)
            if not value:
                continue
            try:
                size = _content_size(value)
            except ValueError as exc:  # pydantic_core's serialisation error is a ValueError
                raise InvalidSessionOperation(
                    "record", f"{key} is not JSON-serialisable: {exc}", session_id=self.id
                ) from None
            if size > self.max_event_bytes:
                raise InvalidSessionOperation(
                    "record",
                    f"{key} of {size} bytes exceeds max_event_bytes={self.max_event_bytes}",
                    session_id=self.id,
                )

    def record(self, type: EventType, source: EventSource, **fields: Any) -> SessionEvent:
        """Append one event; see ``record_many`` (this is its one-event fast path)."""
        self._check(fields)
        if self._deferred or self._settling is not None or self.store._unresolved:
            self.settle()
        with self.lock:
            info = self._info
            seq = info.last_seq + 1
            now = utcnow()
            event = trusted_event(fields, new_event_id(), info.id, seq, now, type, source)
            self.store.submit([AppendEvents(info.id, (event,))])
            self._recorded((event,), now)
            return event

    def record_many(self, drafts: list[tuple[EventType, EventSource, dict[str, Any]]]) -> list[SessionEvent]:
        """Append events atomically: numbered together, stored in one write.

        ``fields`` are ``SessionEvent`` fields. They come from typed internal callers,
        so events are constructed without re-validation; public entry points validate
        their own arguments before calling this.
        """
        for _, _, fields in drafts:
            self._check(fields)
        if self._deferred or self._settling is not None or self.store._unresolved:
            self.settle()
        with self.lock:
            info = self._info
            seq = info.last_seq
            now = utcnow()
            events = []
            for type_, source, fields in drafts:
                seq += 1
                events.append(trusted_event(fields, new_event_id(), info.id, seq, now, type_, source))
            self.store.submit([AppendEvents(info.id, tuple(events))])
            self._recorded(events, now)
            return events

    def _recorded(self, events: Sequence[SessionEvent], now: datetime) -> None:
        """Bring the live state up to date with events just handed to the store."""
        info = self._info
        totals = info.totals
        for event in events:
            self._events.append(event)
            totals.fold(event)
            for listener in self._listeners:
                listener(event)
        # Header fields set in place, as pydantic would (this runs once per event).
        header = info.__dict__
        header["last_seq"] = events[-1].seq
        header["updated_at"] = now

    def save_header(self, **changes: Any) -> None:
        """Change header fields (``metadata``, ``system_prompt``, ``runs``...) and store them."""
        self.settle()
        with self.lock:
            info = self._info
            for key, value in changes.items():
                setattr(info, key, value)
            info.updated_at = utcnow()
            self.store.submit([SaveHeader(info.model_copy(deep=True))])
