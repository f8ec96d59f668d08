"""In-process storage: the library default, fast, gone when the process exits.

Writes are applied on the caller's thread, under one lock, so several ``Store`` objects
over one ``MemoryBackend`` are several writers of one store, as processes are for SQLite.
Events are kept as objects, never serialised: any text is storable here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from sessionware.core.errors import SessionAlreadyExists, SessionNotFound
from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    SessionVersion,
    WriteOp,
    WriteReceipt,
)

__all__ = ["MemoryBackend"]


class _Entry:
    __slots__ = ("appended_at", "events", "folded", "ids", "info", "pages")

    def __init__(self, info: SessionInfo) -> None:
        self.info = info
        self.events: list[SessionEvent] = []
        self.ids: set[str] = set()
        self.pages: dict[str, str] = {}
        self.folded = 0
        """How many events ``info.totals`` includes; the rest are folded when read."""
        self.appended_at: datetime | None = None
        """Timestamp of the latest append not yet reflected in ``info.updated_at``."""

    def current_info(self) -> SessionInfo:
        # Appends are the hot path and reads are rare: bring the header up to date on read.
        if self.folded < len(self.events):
            for event in self.events[self.folded :]:
                self.info.totals.fold(event)
            self.folded = len(self.events)
            self.info.last_seq = len(self.events)
        if self.appended_at is not None:
            self.info.updated_at, self.appended_at = self.appended_at, None
        return self.info


class MemoryBackend:
    """Sessions kept in a dict. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Entry] = {}

    @property
    def kind(self) -> str:
        return "memory"

    @property
    def location(self) -> str:
        return "memory://"

    @property
    def blocking(self) -> bool:
        return False

    def write(self, ops: Sequence[WriteOp]) -> WriteReceipt:
        receipt = WriteReceipt()
        with self._lock:
            if (
                len(ops) == 1
            ):  # the hot path: one recorded event, or one op failing before it changes anything
                op = ops[0]
                if type(op) is AppendEvents:
                    self._append(op.session_id, op.events, receipt)
                else:
                    self._apply(op)
                return receipt
            self._validate(ops)  # all or nothing
            for op in ops:
                if type(op) is AppendEvents:
                    self._append(op.session_id, op.events, receipt)
                else:
                    self._apply(op)
        return receipt

    def _validate(self, ops: Sequence[WriteOp]) -> None:
        """Raise what applying ``ops`` in order would raise, changing nothing."""
        changed: dict[str, bool] = {}

        def exists(session_id: str) -> bool:
            return changed.get(session_id, session_id in self._sessions)

        for op in ops:
            if isinstance(op, CreateSession):
                if exists(op.info.id) and op.exclusive:
                    raise SessionAlreadyExists(op.info.id, store=self.location)
                changed[op.info.id] = True
            elif isinstance(op, DeleteSession):
                if not exists(op.session_id) and op.must_exist:
                    raise SessionNotFound(op.session_id, store=self.location)
                changed[op.session_id] = False
            else:
                session_id = op.info.id if isinstance(op, SaveHeader) else op.session_id
                if not exists(session_id):
                    raise SessionNotFound(session_id, store=self.location)

    def _apply(self, op: WriteOp) -> None:
        if isinstance(op, CreateSession):
            if op.info.id in self._sessions:
                if op.exclusive:
                    raise SessionAlreadyExists(op.info.id, store=self.location)
                return
            self._sessions[op.info.id] = _Entry(
                op.info.model_copy(update={"totals": SessionTotals(), "last_seq": 0})
            )
        elif isinstance(op, SaveHeader):
            entry = self._entry(op.info.id)
            current = entry.current_info()
            entry.info = op.info.model_copy(update={"totals": current.totals, "last_seq": current.last_seq})
        elif isinstance(op, PutPages):
            self._entry(op.session_id).pages.update(op.pages)
        elif (
            isinstance(op, DeleteSession)
            and self._sessions.pop(op.session_id, None) is None
            and op.must_exist
        ):
            raise SessionNotFound(op.session_id, store=self.location)

    def _append(self, session_id: str, events: Sequence[SessionEvent], receipt: WriteReceipt) -> None:
        entry = self._entry(session_id)
        log = entry.events
        ids = entry.ids
        if len(events) == 1:  # the hot path: one recorded event
            event = events[0]
            event_id = event.id
            if event_id in ids:
                receipt.duplicates = 1
            else:
                seq = len(log) + 1
                if event.seq != seq:  # another writer appended since it was numbered
                    event = event.model_copy(update={"seq": seq})
                ids.add(event_id)
                log.append(event)
                receipt.appended += 1
                entry.appended_at = event.timestamp
            receipt.last_seqs[session_id] = len(log)
            return
        before = len(log)
        for given in events:
            if given.id in ids:
                receipt.duplicates += 1
                continue
            seq = len(log) + 1
            # Another writer may have appended since this one numbered its event.
            event = given if given.seq == seq else given.model_copy(update={"seq": seq})
            ids.add(event.id)
            log.append(event)
        if len(log) > before:
            receipt.appended += len(log) - before
            entry.appended_at = log[-1].timestamp
        receipt.last_seqs[session_id] = len(log)

    def _entry(self, session_id: str) -> _Entry:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise SessionNotFound(session_id, store=self.location) from None

    def load(self, session_id: str) -> Session:
        with self._lock:
            entry = self._entry(session_id)
            children = [s.info.id for s in self._sessions.values() if s.info.parent_id == session_id]
            return Session(
                **entry.current_info().model_copy(deep=True).__dict__,
                children=children,
                events=list(entry.events),
            )

    def load_info(self, session_id: str) -> SessionInfo:
        with self._lock:
            return self._entry(session_id).current_info().model_copy(deep=True)

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        with self._lock:
            return list(self._entry(session_id).events[after_seq:])

    def last_seq(self, session_id: str) -> int:
        return len(self._entry(session_id).events)

    def read_since(self, session_id: str, after_seq: int) -> tuple[SessionInfo, list[SessionEvent]]:
        with self._lock:
            entry = self._entry(session_id)
            return entry.current_info().model_copy(deep=True), list(entry.events[after_seq:])

    def exists(self, session_id: str) -> bool:
        return session_id in self._sessions

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        with self._lock:
            infos = [
                e.current_info().model_copy(deep=True)
                for e in self._sessions.values()
                if parent_id is None or e.info.parent_id == parent_id
            ]
        infos.sort(key=lambda i: i.created_at, reverse=True)
        return infos[:limit] if limit is not None else infos

    def session_versions(self) -> dict[str, SessionVersion]:
        with self._lock:
            return {sid: SessionVersion.of(e.current_info()) for sid, e in self._sessions.items()}

    def load_pages(self, session_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._entry(session_id).pages)

    def close(self) -> None:
        return None
