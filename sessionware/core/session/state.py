"""The live view of one session in this process, kept in step with the store.

Everything that records (the ``SessionManager`` facade, the SDK adapters) goes through
a ``SessionState``: it builds events, folds totals, notifies listeners (the virtual
memory, segmentation, the tool ledger) and hands the append to the store. Recording is
synchronous pure computation plus a queue hand-off, so sync clients need no event loop
and async clients never block on I/O.

Numbering
---------
The store is the truth: it numbers events at commit (see ``core.store.base``). A state
numbers its own new events provisionally, after the last one it knows; with one writer
that is the number the store gives them. Events ``[:cursor]`` of the live log are
exactly the store's first ``cursor`` events; after them come this process's events the
state has not seen committed yet.

Following other writers
-----------------------
``follow`` (``afollow`` in async code) brings the log up to date with what other
processes appended. Readers call it before they read, build a context or diff a request
(``SessionManager`` reads, the adapters' recording, managed mode); recording itself
never looks. A look first probes: the store's acknowledgements of this process's own
appends (``Store.acked``) against the backend's ``last_seq`` (one indexed read on SQLite,
one ``HGET`` on Redis, a dict lookup in memory). Only if another writer appended does it
read the events after ``cursor`` and merge them: when they come after everything this
state holds, they are appended and listeners see them; otherwise the log from ``cursor``
is rewritten in the store's order (this process's uncommitted events keep their order
after it, renumbered) and extensions with a ``rewound()`` method rebuild. A store that is
unreachable leaves the view as it is.

A state opened while the store was unreachable is ``confirmed=False``: it starts empty,
records as usual (its create and appends queue with every other write), and its first
successful ``follow`` reads the whole stored log.

Deferred records
----------------
A recorder may hand its work to a background thread instead of doing it on the caller's
path (the SDK adapters do). It queues that work on the session with ``defer``; ``settle``
runs whatever is queued, in order, on the calling thread. Every read (``events``,
``info``) and every write (``record``, ``record_many``, ``save_header``) of the session
settles first, so deferred records keep their place in the event order; the store's
``barrier`` settles the sessions that still hold deferred work before its flushes and
reads.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Unpack

from pydantic_core import to_json

from sessionware.core.errors import InvalidSessionOperation, SessionNotFound, StorageError
from sessionware.core.session.enums import EventSource, EventType
from sessionware.core.session.ids import new_event_id
from sessionware.core.session.models import (
    EventDraft,
    EventFields,
    SessionEvent,
    SessionInfo,
    trusted_event,
    utcnow,
)
from sessionware.core.store.base import AppendEvents, SaveHeader
from sessionware.core.store.store import Store

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventListener", "SessionState"]

logger = logging.getLogger(__name__)

_running_work = threading.local()
"""``depth``: how many sessions' deferred work this thread is running (nested settles)."""

#: Largest content one event may carry; bigger input is refused before anything is stored.
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

EventListener = Callable[[SessionEvent], None]

# Fields whose size is checked before recording.
_CHECKED_FIELDS = ("content", "tool_result", "tool_arguments", "metadata")

Read = tuple[int, SessionInfo, list[SessionEvent]]


def _content_size(value: Any) -> int:
    """About the serialised size of ``value`` (text the store will repair counts as is)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    try:
        return len(to_json(value))
    except ValueError:  # unencodable text or an object JSON cannot hold: sized by its repr
        return len(repr(value))


class SessionState:
    """In-process state of one session. Thread-safe; recording never blocks."""

    def __init__(
        self,
        info: SessionInfo,
        events: list[SessionEvent],
        store: Store,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        confirmed: bool = True,
        acked: int | None = None,
    ) -> None:
        self._info = info
        self._events = events
        self.store = store
        self._barrier = store.barrier
        self.max_event_bytes = max_event_bytes
        self.lock = threading.RLock()
        self._listeners: list[EventListener] = []
        self.extensions: dict[str, Any] = {}
        """Per-session state owned by other parts (VM, adapters), keyed by their name.
        One with a ``rewound()`` method is told when the log was rewritten in place."""
        self._deferred: deque[Callable[[], None]] = deque()
        self._settling: int | None = None
        """``threading.get_ident()`` of the thread running deferred work, while it does."""
        self.confirmed = confirmed
        """False while the store has not been read since this state was opened (outage)."""
        self._cursor = len(events) if confirmed else 0
        self._acked_at_cursor = store.acked(info.id)[0] if acked is None else acked
        self.log_epoch = 0
        """Counts rewrites of the log in place (see ``follow``)."""
        self._exclusive_depth = 0
        self._exclusive_held = False

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def info(self) -> SessionInfo:
        """The header and totals, with every deferred record applied."""
        if self._deferred or self._settling is not None or self._barrier.unresolved:
            self.settle()
        return self._info

    @property
    def events(self) -> list[SessionEvent]:
        """The event log (the live list), with every deferred record applied."""
        if self._deferred or self._settling is not None or self._barrier.unresolved:
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
            self._barrier.add_unsettled(self)
            return True
        return False

    @property
    def unsettled(self) -> bool:
        """True while deferred work is queued or running (or calls of this store whose
        session is not worked out yet are queued: they may belong here)."""
        return bool(self._deferred) or self._settling is not None or bool(self._barrier.unresolved)

    def settle(self) -> None:
        """Run the deferred work now, in order, on this thread (a no-op when there is none).

        Waits while another thread runs it; called from inside that work (a listener
        reading the session), returns at once. Called from inside the deferred work of
        another session, it does not wait for a thread that holds this session's lock:
        that thread may be waiting for the session this one is settling (the work of one
        session reading another, or flushing the store), and the other thread will have
        run it.
        """
        me = threading.get_ident()
        barrier = self._barrier
        if barrier.unresolved and self._settling != me:
            # Calls whose session is not known yet may belong here (no lock held yet).
            barrier.resolve()
        if not self._deferred and self._settling is None:
            if self in barrier.unsettled:  # left there by a race of a defer with a settle
                self._leave_barrier()
            return
        if self._settling == me:
            return
        if not self.lock.acquire(blocking=not getattr(_running_work, "depth", 0)):
            return
        try:
            if not self._deferred:
                self._leave_barrier()
                return
            self._settling = me
            _running_work.depth = getattr(_running_work, "depth", 0) + 1
            try:
                while self._deferred:
                    self._deferred.popleft()()
            finally:
                _running_work.depth -= 1
                self._settling = None
                self._leave_barrier()
        finally:
            self.lock.release()

    def _leave_barrier(self) -> None:
        # In this order: a ``defer`` that appended before the check below is seen by it,
        # and one that appends after it adds this state back itself (its queue was empty).
        self._barrier.discard_unsettled(self)
        if self._deferred:  # what a failed work left behind, or queued meanwhile
            self._barrier.add_unsettled(self)

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for each event recorded here, and for each event of
        another writer when ``follow`` finds it (under the session lock)."""
        with self.lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- recording ------------------------------------------------------------------

    def _check(self, fields: EventFields) -> None:
        content = fields.get("content")
        if (
            type(content) is str
            and len(content) <= self.max_event_bytes
            and "tool_result" not in fields
            and "tool_arguments" not in fields
        ):  # a message: only its metadata is left to check
            metadata = fields.get("metadata")
            if not metadata or _content_size(metadata) <= self.max_event_bytes:
                return
        for key in _CHECKED_FIELDS:
            value = fields.get(key)
            if not value:
                continue
            size = _content_size(value)
            if size > self.max_event_bytes:
                raise InvalidSessionOperation(
                    "record",
                    f"{key} of {size} bytes exceeds max_event_bytes={self.max_event_bytes}",
                    session_id=self.id,
                )

    def record(self, type: EventType, source: EventSource, **fields: Unpack[EventFields]) -> SessionEvent:
        """Append one event; see ``record_many`` (this is its one-event fast path)."""
        self._check(fields)
        if self._deferred or self._settling is not None or self._barrier.unresolved:
            self.settle()
        with self.lock:
            info = self._info
            seq = info.last_seq + 1
            now = utcnow()
            event = trusted_event(fields, new_event_id(), info.id, seq, now, type, source)
            self.store.submit([AppendEvents(info.id, (event,))])
            self._recorded((event,), now)
            return event

    def record_many(self, drafts: Sequence[EventDraft]) -> list[SessionEvent]:
        """Append events atomically: numbered together, stored in one write.

        ``fields`` come from typed internal callers, so events are constructed without
        re-validation; public entry points validate their own arguments first. The
        ``seq`` of a returned event is provisional until the store commits it (the
        same number unless another process appended meanwhile); its ``id`` is final.
        """
        for _, _, fields in drafts:
            self._check(fields)
        if self._deferred or self._settling is not None or self._barrier.unresolved:
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

    # -- following other writers ---------------------------------------------------------

    def follow(self) -> bool:
        """Merge what other writers appended since the last look; True if the log changed.

        Blocking (a store read when another writer appended); see the module docstring.
        """
        if self._deferred or self._settling is not None or self._barrier.unresolved:
            self.settle()
        for _ in range(2):  # a second look when the store lost its data meanwhile (see _merge)
            cursor = self._quiet()
            if cursor is None:
                return False
            try:
                read = self.store.read_since(self.id, cursor)
            except (StorageError, SessionNotFound) as exc:
                logger.debug("session %r could not follow %s: %s", self.id, self.store.location, exc)
                return False
            changed = self._merge(cursor, read)
            if changed is not None:
                return changed
        return False

    async def afollow(self) -> bool:
        """``follow`` for async code: the store read is awaited, never blocking the loop."""
        if self._deferred or self._settling is not None or self._barrier.unresolved:
            self.settle()
        for _ in range(2):
            cursor = self._quiet()
            if cursor is None:
                return False
            try:
                read = await self.store.aread_since(self.id, cursor)
            except (StorageError, SessionNotFound) as exc:
                logger.debug("session %r could not follow %s: %s", self.id, self.store.location, exc)
                return False
            changed = self._merge(cursor, read)
            if changed is not None:
                return changed
        return False

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Hold the session against this process' other threads and every other process
        until what the block records is committed (``Store.exclusive``); yields whether the
        other processes are kept out. Re-entrant: a record that settles deferred records
        of the same session inside it holds it once.

        A recorder that reads the log to decide what to append (the adapters' diff of a
        re-sent history) does both inside this, ``follow`` first, so two processes
        recording consecutive turns of one conversation cannot both append the same turn.
        """
        with self.lock:
            if self._exclusive_depth:
                self._exclusive_depth += 1
                try:
                    yield self._exclusive_held
                finally:
                    self._exclusive_depth -= 1
                return
            with self.store.exclusive(self._info.id) as held:
                self._exclusive_depth, self._exclusive_held = 1, held
                try:
                    yield held
                finally:
                    self._exclusive_depth, self._exclusive_held = 0, False

    def _quiet(self) -> int | None:
        """None when the store holds nothing this state lacks (moving the cursor over its
        own committed events); else the cursor to read from."""
        with self.lock:
            cursor = self._cursor
            if not self.confirmed:
                return cursor
            store = self.store
            sid = self._info.id
            if store.has_dropped(sid):
                return cursor
            try:
                if store.inline:  # every event of this state is committed as it is recorded
                    if store.last_seq(sid) != len(self._events):
                        return cursor
                    self._cursor = len(self._events)
                    return None
                acked, last_acked = store.acked(sid)
                own = acked - self._acked_at_cursor
                if own and last_acked != cursor + own:
                    return cursor  # another writer committed between this state's appends
                if store.last_seq(sid) != cursor + own:
                    return cursor
            except StorageError as exc:
                if exc.data_lost:  # the read, on the store's writer thread, writes it all again first
                    return cursor
                logger.debug("session %r could not look at %s: %s", sid, store.location, exc)
                return None
            except SessionNotFound as exc:
                logger.debug("session %r could not look at %s: %s", sid, store.location, exc)
                return None
            self._cursor = cursor + own
            self._acked_at_cursor = acked
            return None

    def _merge(self, cursor: int, read: Read) -> bool | None:
        """Take ``read`` (the store's events after ``cursor``) in; whether the log changed,
        None if the cursor moved meanwhile: another thread followed, or the store lost
        its data and this state must read it all (``unconfirm``)."""
        acked, stored, loaded = read
        with self.lock:
            if cursor != self._cursor:
                return None
            log = self._events
            tail = log[cursor:]
            dropped = self.store.take_dropped(stored.id)
            known = {e.id for e in tail}
            loaded_ids = {e.id for e in loaded}
            pending = [e for e in tail if e.id not in loaded_ids and e.id not in dropped]
            foreign = [e for e in loaded if e.id not in known]
            in_order = (
                not pending
                and len(loaded) >= len(tail)
                and all(a.id == b.id for a, b in zip(tail, loaded, strict=False))
            )
            seq = stored.last_seq
            renumbered = []
            for event in pending:
                seq += 1
                renumbered.append(event if event.seq == seq else event.model_copy(update={"seq": seq}))
            log[cursor:] = [*loaded, *renumbered]
            totals = stored.totals
            for event in renumbered:
                totals.fold(event)
            header = self._info.__dict__
            header.update(
                {k: v for k, v in stored.__dict__.items() if k not in ("last_seq", "updated_at", "totals")}
            )
            header["totals"] = totals
            header["last_seq"] = len(log)
            header["updated_at"] = max(self._info.updated_at, stored.updated_at)
            self._cursor = stored.last_seq
            self._acked_at_cursor = acked
            self.confirmed = True
            for event in foreign:
                for listener in self._listeners:
                    listener(event)
            if not in_order:
                self.log_epoch += 1
                for extension in list(self.extensions.values()):
                    rewound = getattr(extension, "rewound", None)
                    if callable(rewound):
                        rewound()
            return bool(foreign) or not in_order

    def unconfirm(self) -> None:
        """The store lost what this state had seen (a reset): read it all at the next look."""
        self.confirmed = False
        self._cursor = 0
        self._acked_at_cursor = 0

    def recovery_snapshot(self) -> tuple[SessionInfo, tuple[SessionEvent, ...]]:
        """The header and every event this state holds, without taking its lock (called
        by the store's writer thread, which must never wait for a session)."""
        return self._info.model_copy(deep=True), tuple(self._events)
