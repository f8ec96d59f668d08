"""Totals by model and by day over a whole store, for the UI's totals page.

The same report as ``sessionware stats`` (``cli.totals.build_report``, folded from every
event), computed once and kept until the store's sessions change: the list of session
ids with their ``last_seq`` (from the session list's copy) is the fingerprint checked on
every request.
"""

from __future__ import annotations

import threading
from typing import Any

from sessionware.cli.totals import build_report
from sessionware.cli.ui.catalog import SessionCatalog
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.session.models import SessionEvent
from sessionware.core.store.store import Store

__all__ = ["StoreTotals"]


class StoreTotals:
    """The store's usage report, recomputed only when a session changed."""

    def __init__(self, store: Store, prices: PriceBook, catalog: SessionCatalog) -> None:
        self._store = store
        self._catalog = catalog
        self._prices = prices
        self._lock = threading.Lock()
        self._fingerprint: tuple[tuple[str, int], ...] | None = None
        self._report: dict[str, Any] | None = None

    def report(self) -> dict[str, Any]:
        with self._lock:
            infos = self._catalog.infos()
            fingerprint = tuple(sorted((i.id, i.last_seq) for i in infos))
            if self._report is None or fingerprint != self._fingerprint:
                store = self._store

                def events(session_id: str) -> list[SessionEvent]:
                    return store.load_events(session_id)

                report = build_report(
                    ((i.id, events(i.id)) for i in infos), store=store.location, prices=self._prices
                )
                self._report = report.model_dump(mode="json")
                self._fingerprint = fingerprint
            return self._report
