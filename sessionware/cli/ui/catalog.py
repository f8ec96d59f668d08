"""The session list of ``sessionware ui``: every session's header as a compact row,
searched, sorted and cut into pages on the server.

The rows are the sessions' headers and totals (no events), read once and then kept up to
date from what changed (``Store.session_versions``), so typing in the search box or paging
through 10,000 sessions reads no header again, while a page opened later shows sessions
recorded since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sessionware.core.accounting.caching import cache_saving, read_share
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.errors import SessionNotFound, SessionwareError
from sessionware.core.session.enums import Role
from sessionware.core.session.models import SessionInfo
from sessionware.core.store.base import SessionVersion
from sessionware.core.store.store import Store

__all__ = ["SessionCatalog", "SessionSort"]

logger = logging.getLogger(__name__)

_PROMPT_CHARS = 160


class SessionSort(StrEnum):
    """What the session list is ordered by."""

    UPDATED = "updated"
    CREATED = "created"
    ID = "id"
    TURNS = "turns"
    CALLS = "calls"
    EVENTS = "events"
    TOKENS = "tokens"
    COST = "cost"
    CACHE = "cache"
    SAVED = "saved"


@dataclass(slots=True)
class _Row:
    fields: dict[str, Any]
    haystack: str
    keys: dict[SessionSort, Any]


def _row(info: SessionInfo, prices: PriceBook) -> _Row:
    t = info.totals
    usage = t.usage
    models = [m for m, _ in sorted(t.models.items(), key=lambda kv: (-kv[1], kv[0]))]
    saved: Decimal | None = Decimal(0)
    if usage.cache_read_tokens or usage.cache_write_tokens:
        # Priced from the totals when one model made every call; a mix needs the events
        # (the session view prices those call by call).
        one_model = len(models) == 1 and not t.unpriced_calls
        saved = cache_saving(prices, models[0], usage, t.cost) if one_model else None
    prompt = (info.system_prompt or "")[:_PROMPT_CHARS]
    fields = {
        "id": info.id,
        "parent_id": info.parent_id,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
        "turns": t.messages_by_role.get(Role.USER, 0),
        "events": t.events,
        "calls": t.llm_calls,
        "errors": t.errors,
        "page_faults": t.page_faults,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_read_share": read_share(usage),
        "cache_saved_cost": None if saved is None else str(saved),
        "cost": str(t.cost),
        "unpriced_calls": t.unpriced_calls,
        "models": models,
        "managed": t.app_input_tokens > 0,
        "system_prompt": prompt,
    }
    metadata = " ".join(f"{k}={v}" for k, v in info.metadata.items())
    haystack = " ".join([info.id, info.parent_id or "", *models, prompt, metadata]).casefold()
    keys: dict[SessionSort, Any] = {
        SessionSort.UPDATED: info.updated_at,
        SessionSort.CREATED: info.created_at,
        SessionSort.ID: info.id,
        SessionSort.TURNS: fields["turns"],
        SessionSort.CALLS: t.llm_calls,
        SessionSort.EVENTS: t.events,
        SessionSort.TOKENS: usage.total_tokens,
        SessionSort.COST: t.cost,
        SessionSort.CACHE: fields["cache_read_share"],
        SessionSort.SAVED: saved if saved is not None else Decimal(0),
    }
    return _Row(fields, haystack, keys)


def _infos_of(store: Store, session_ids: Sequence[str]) -> list[SessionInfo]:
    """On the store's reader: the headers of ``session_ids`` (those deleted since, left out)."""
    backend = store.backend
    found: list[SessionInfo] = []
    for session_id in session_ids:
        try:
            found.append(backend.load_info(session_id))
        except SessionNotFound:
            continue
    return found


@dataclass(slots=True)
class _Entry:
    version: SessionVersion
    info: SessionInfo
    row: _Row


class SessionCatalog:
    """Searchable, sortable pages of a store's sessions.

    The list is read whole once (``list_sessions``), off the requests, then kept up to
    date from what changed: a later read asks the store for every session's
    ``SessionVersion`` (a few columns per session: about 50 ms of CPU for 10,000 on
    SQLite) and reads again only the headers whose version moved, ``chunk`` at a time, so
    other reads (a session page, the totals count) take turns with it. The list is served
    as it is while a newer copy is read, at most every ``max_age`` seconds (stale while it
    refreshes); the first request of the default order (newest first, no search) is
    answered from ``list_sessions(limit=...)`` before the whole list is read.
    """

    def __init__(self, store: Store, prices: PriceBook, *, max_age: float = 2.0, chunk: int = 500) -> None:
        self._store = store
        self._prices = prices
        self._max_age = max_age
        self._chunk = chunk
        self._lock = threading.Condition()
        self._reads = (0, 0)  # reads (started, ended)
        self._loaded = threading.Event()
        self._entries: dict[str, _Entry] = {}  # changed only by the reading thread
        self._rows: list[_Row] = []
        self._infos: list[SessionInfo] = []
        self._read_at = float("-inf")
        self._reading = False
        self._closing = False
        self._reader: threading.Thread | None = None
        self._sorted: dict[tuple[SessionSort, bool], list[_Row]] = {}
        self._head: tuple[int, list[SessionInfo]] | None = None  # (asked for, newest sessions)

    def _newest(self, count: int) -> list[SessionInfo]:
        """The ``count`` newest sessions, for pages served before the whole list is read:
        asked of the store once, then served from that copy. The store serves reads one
        at a time, so a second read could wait behind a chunk of the whole list's; and the
        browser would get this page and a searched one (which waits for the whole list)
        at the same moment, in either order (the list test's flake)."""
        with self._lock:
            head = self._head
        if head is not None and (head[0] >= count or len(head[1]) < head[0]):
            return head[1][:count]
        infos = self._store.list_sessions(limit=count)
        with self._lock:
            self._head = (count, infos)
        return infos

    def _read(self) -> None:
        try:
            self._catch_up()
        except SessionwareError as exc:  # the store went away (a stopping server closed it)
            logger.warning("sessionware ui: the session list could not be read: %s", exc)
        finally:
            with self._lock:
                self._reading = False
                self._reads = (self._reads[0], self._reads[0])
                self._lock.notify_all()
            self._loaded.set()

    def _catch_up(self) -> None:
        """Bring the list up to date with the store, reading only the headers that changed."""
        known = self._entries
        if not known:  # the first read: every header, in one read (the fastest way to all)
            entries = {}
            for info in self._store.list_sessions():
                entries[info.id] = _Entry(SessionVersion.of(info), info, _row(info, self._prices))
            self._publish(entries)
            return
        versions = self._store.session_versions()
        stale = [sid for sid, v in versions.items() if (e := known.get(sid)) is None or e.version != v]
        gone = [sid for sid in known if sid not in versions]
        if stale or gone:
            entries = {sid: e for sid, e in known.items() if sid in versions}
            for at in range(0, len(stale), self._chunk):
                if self._closing:
                    return
                chunk = stale[at : at + self._chunk]
                infos = self._store.call(_infos_of, self._store, chunk)
                for sid in chunk:
                    entries.pop(sid, None)  # deleted since the versions were read, unless found
                for info in infos:
                    entries[info.id] = _Entry(SessionVersion.of(info), info, _row(info, self._prices))
            self._publish(entries)
        else:
            with self._lock:
                self._read_at = time.monotonic()

    def _publish(self, entries: dict[str, _Entry]) -> None:
        ordered = sorted(entries.values(), key=lambda e: (e.info.created_at, e.info.id), reverse=True)
        with self._lock:
            self._entries = entries
            self._infos = [e.info for e in ordered]
            self._rows = [e.row for e in ordered]
            self._sorted = {}
            self._read_at = time.monotonic()

    def _refresh_soon(self) -> None:
        """Start a background read of the list unless one runs or the copy is fresh."""
        with self._lock:
            if time.monotonic() - self._read_at > self._max_age:
                self._start_read()

    def _start_read(self) -> None:
        """Under the lock: start a background read of the list unless one runs."""
        if self._reading or self._closing:
            return
        self._reading = True
        self._reads = (self._reads[0] + 1, self._reads[1])
        self._reader = threading.Thread(target=self._read, name="sessionware-ui-list", daemon=True)
        self._reader.start()

    def refreshed(self, timeout: float | None = None) -> list[SessionInfo]:
        """Every session's header as read by a read that starts after this call (one under
        way is waited for, then another is made), whatever ``max_age`` says."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._reads[0] + 1
            while self._reads[1] < target:
                self._start_read()
                left = None if deadline is None else deadline - time.monotonic()
                if self._closing or (left is not None and left <= 0):
                    raise SessionwareError("the session list was not read again in time")
                self._lock.wait(left)
            return self._infos

    def close(self, timeout: float | None = 3.0) -> None:
        """Stop a read of the list under way (between two chunks) and wait a little for
        it (the server is stopping); one still running after ``timeout`` is left to finish
        or fail on its own thread (the store serves it before it closes)."""
        with self._lock:
            self._closing = True
            reader = self._reader
        if reader is not None:
            reader.join(timeout)

    def _current(self) -> list[_Row]:
        self._refresh_soon()
        self._loaded.wait()
        with self._lock:
            return self._rows

    def latest(self) -> list[SessionInfo] | None:
        """The list as last read (None before the first read ends), without waiting; a
        copy older than ``max_age`` is read again in the background. The same object until
        a read replaces it."""
        self._refresh_soon()
        with self._lock:
            return self._infos if self._loaded.is_set() else None

    def infos(self) -> list[SessionInfo]:
        """Every session's header, as of the last read."""
        self._current()
        with self._lock:
            return self._infos

    def _ordered(self, sort: SessionSort, descending: bool) -> list[_Row]:
        rows = self._current()
        with self._lock:
            found = self._sorted.get((sort, descending))
            if found is None:
                found = sorted(rows, key=lambda r: (r.keys[sort], r.fields["id"]), reverse=descending)
                self._sorted[(sort, descending)] = found
            return found

    def page(
        self,
        *,
        query: str = "",
        sort: SessionSort = SessionSort.CREATED,
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """One page of sessions matching ``query`` (words, all present, case-insensitive).

        ``total`` and ``matched`` are None on a first page served before the whole list
        was read (``partial``)."""
        words = query.casefold().split()
        if not self._loaded.is_set() and not words and sort is SessionSort.CREATED and descending:
            # Read before the whole list is asked for: the store serves reads in order.
            infos = self._newest(offset + limit)
            self._refresh_soon()
            return {
                "total": None,
                "matched": None,
                "partial": True,
                "offset": offset,
                "limit": limit,
                "sort": sort.value,
                "descending": descending,
                "rows": [_row(info, self._prices).fields for info in infos[offset:]],
            }
        rows = self._ordered(sort, descending)
        matched = [r for r in rows if all(w in r.haystack for w in words)] if words else rows
        return {
            "total": len(rows),
            "matched": len(matched),
            "partial": False,
            "offset": offset,
            "limit": limit,
            "sort": sort.value,
            "descending": descending,
            "rows": [r.fields for r in matched[offset : offset + limit]],
        }

    def children(self, session_id: str) -> list[str]:
        """Ids of the sessions forked from ``session_id``, asked of the store (an indexed
        query), so a session page never waits for, or starts, a read of the whole list."""
        return [info.id for info in self._store.list_sessions(parent_id=session_id)]
