"""In-process storage: the library default, fast, gone when the process exits."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from sessionware.core.errors import SessionAlreadyExists, SessionNotFound, StorageError
from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    WriteOp,
)

__all__ = ["MemoryBackend"]


class _Entry:
    __slots__ = ("appended_at", "events", "folded", "info", "pages")

    def __init__(self, info: SessionInfo) -> None:
        self.info = info
        self.events: list[SessionEvent] = []
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

    def write(self, ops: Sequence[WriteOp]) -> None:
        with self._lock:
            for op in ops:
                if type(op) is AppendEvents:  # the hot path: one recorded event
                    self._append(self._entry(op.session_id), op.events)
                else:
                    self._apply(op)

    def _apply(self, op: WriteOp) -> None:
        if isinstance(op, AppendEvents):
            self._append(self._entry(op.session_id), op.events)
        elif isinstance(op, CreateSession):
            if op.info.id in self._sessions:
                raise SessionAlreadyExists(op.info.id, store=self.location)
            self._sessions[op.info.id] = _Entry(
                op.info.model_copy(update={"totals": SessionTotals(), "last_seq": 0})
            )
        elif isinstance(op, SaveHeader):
            entry = self._entry(op.info.id)
            current = entry.current_info()
            entry.info = op.info.model_copy(update={"totals": current.totals, "last_seq": current.last_seq})
        elif isinstance(op, PutPages):
            self._entry(op.session_id).pages.update(op.pages)
        elif isinstance(op, DeleteSession) and self._sessions.pop(op.session_id, None) is None:
            raise SessionNotFound(op.session_id, store=self.location)

    def _append(self, entry: _Entry, events: Sequence[SessionEvent]) -> None:
        if not events:
            return
        # Seqs start at 1 without gaps, so the next one is always the log's length + 1.
        expected = len(entry.events) + 1
        if events[0].seq != expected:
            raise StorageError(
                "append",
                self.kind,
                self.location,
                f"session {entry.info.id!r} expects seq {expected}, got {events[0].seq}",
            )
        entry.events.extend(events)
        entry.appended_at = events[-1].timestamp

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

    def load_pages(self, session_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._entry(session_id).pages)

    def close(self) -> None:
        return None
