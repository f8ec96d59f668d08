"""Totals by model and by day over a whole store, for the UI's totals page.

The same report as ``sessionware stats`` (``cli.totals``, folded from every event by the
sessions' own rules), kept as one part per session (``SessionPart``) with the ``last_seq``
it was read at. A pass reads, off the request, the sessions whose ``last_seq`` in the
session list (the catalog's copy) moved since, in chunks of ``chunk`` sessions per store
read, so other pages' reads take turns with it; the report is the sum of the parts. The
first pass over 10,000 sessions takes seconds: meanwhile a request gets the sum of the
sessions read so far, marked ``partial`` with ``counted`` of ``of`` sessions, and the
page shows it and asks again. Later passes read only what changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sessionware.cli.totals import SessionPart, report_of_parts, session_part
from sessionware.cli.ui.catalog import SessionCatalog
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.errors import SessionNotFound, SessionwareError
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store.store import Store

__all__ = ["StoreTotals"]

logger = logging.getLogger(__name__)


def _events_of(store: Store, session_ids: Sequence[str]) -> list[list[SessionEvent] | None]:
    """On the store's writer thread: the events of each session (None: deleted since)."""
    backend = store.backend
    found: list[list[SessionEvent] | None] = []
    for session_id in session_ids:
        try:
            found.append(backend.load_events(session_id))
        except SessionNotFound:
            found.append(None)
    return found


class StoreTotals:
    """The store's usage report, summed from per-session parts kept up to date."""

    def __init__(self, store: Store, prices: PriceBook, catalog: SessionCatalog, *, chunk: int = 100) -> None:
        self._store = store
        self._catalog = catalog
        self._prices = prices
        self._chunk = chunk
        self._cond = threading.Condition()
        self._parts: dict[str, tuple[int, SessionPart]] = {}
        self._version = 0  # bumped whenever the parts change
        self._summed: tuple[int, dict[str, Any]] | None = None  # (version, report) of the last sum
        self._counted_of: tuple[int, int | None] = (0, None)  # the running pass's progress
        self._seen: list[SessionInfo] | None = None  # the list the last pass started from
        self._worker: threading.Thread | None = None
        self._error: str | None = None
        self._closing = False

    def report(self, wait: float | None = None) -> dict[str, Any]:
        """The report as JSON, after waiting up to ``wait`` seconds (None: as long as it
        takes) for a pass under way; ``partial`` while it still runs."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            self._start_if_stale()
            while self._worker is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            if self._worker is None and self._error is not None:
                raise SessionwareError(self._error)
            partial = self._worker is not None
            counted, of = self._counted_of if partial else (len(self._parts), len(self._parts))
            version, parts = self._version, [part for _, part in self._parts.values()]
            summed = self._summed
        if summed is None or summed[0] != version:
            report = report_of_parts(parts, store=self._store.location, prices=self._prices)
            summed = (version, report.model_dump(mode="json"))
            with self._cond:
                if self._version == version:
                    self._summed = summed
        return {**summed[1], "partial": partial, "counted": counted, "of": of}

    def close(self, timeout: float = 2.0) -> None:
        """Stop a pass under way (between two reads) and wait for it."""
        with self._cond:
            self._closing = True
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # -- passes ---------------------------------------------------------------------------

    def _start_if_stale(self) -> None:
        """Under the lock: start a pass unless one runs or the list is the one last read."""
        if self._worker is not None or self._closing:
            return
        if self._seen is not None and self._catalog.latest() is self._seen:
            return  # the catalog's copy of the list has not changed since the last pass
        self._error = None
        self._counted_of = (0, None)
        self._worker = threading.Thread(target=self._pass, name="sessionware-ui-totals", daemon=True)
        self._worker.start()

    def _pass(self) -> None:
        try:
            infos = self._catalog.infos()
            with self._cond:
                self._seen = infos
                known = self._parts
                listed = {info.id for info in infos}
                gone = [sid for sid in known if sid not in listed]
                for sid in gone:
                    del known[sid]
                todo = [info for info in infos if info.id not in known or known[info.id][0] < info.last_seq]
                counted = len(infos) - len(todo)
                self._counted_of = (counted, len(infos))
                if gone:
                    self._version += 1
            for at in range(0, len(todo), self._chunk):
                if self._closing:
                    return
                chunk = todo[at : at + self._chunk]
                loaded = self._store.call(_events_of, self._store, [info.id for info in chunk])
                parts: dict[str, tuple[int, SessionPart]] = {}
                for info, events in zip(chunk, loaded, strict=True):
                    if events is not None:
                        last = events[-1].seq if events else 0
                        parts[info.id] = (max(last, info.last_seq), session_part(events, self._prices))
                with self._cond:
                    self._parts.update(parts)
                    for info, events in zip(chunk, loaded, strict=True):
                        if events is None:
                            self._parts.pop(info.id, None)
                    self._version += 1
                    counted += len(chunk)
                    self._counted_of = (counted, len(infos))
                    self._cond.notify_all()
        except Exception as exc:  # the next request tries again; this one says why
            logger.warning("sessionware ui: totals: %s", exc, exc_info=not isinstance(exc, SessionwareError))
            with self._cond:
                self._error = str(exc)
                self._seen = None
        finally:
            with self._cond:
                self._worker = None
                self._cond.notify_all()
