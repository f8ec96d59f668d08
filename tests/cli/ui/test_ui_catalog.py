"""The session list of ``sessionware ui`` follows the store by reading again only the
headers that changed (``Store.session_versions`` tells which), on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sessionware.cli.ui.catalog import SessionCatalog
from sessionware.core.defaults import default_price_book
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store import AppendEvents, CreateSession, DeleteSession, SaveHeader, Store
from sessionware.core.store.sqlite import SQLiteBackend

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class _CountingBackend(SQLiteBackend):
    """A real SQLite backend that notes which headers are read."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.headers_read: list[str] = []

    def load_info(self, session_id: str) -> SessionInfo:
        self.headers_read.append(session_id)
        return super().load_info(session_id)


def _message(sid: str, seq: int) -> SessionEvent:
    return SessionEvent(
        id=f"{sid}-{seq}",
        session_id=sid,
        seq=seq,
        timestamp=T0 + timedelta(hours=1, seconds=seq),
        type=EventType.MESSAGE,
        source=EventSource.USER,
        role=Role.USER,
        content=f"question {seq} in {sid}",
    )


def _info(sid: str, minute: int, **fields: Any) -> SessionInfo:
    when = T0 + timedelta(minutes=minute)
    return SessionInfo(id=sid, created_at=when, updated_at=when, **fields)


def test_a_refresh_reads_only_the_headers_that_changed(tmp_path) -> None:
    backend = _CountingBackend(tmp_path / "list.db")
    store = Store(backend)
    ops: list[Any] = []
    for i in range(30):
        sid = f"s-{i:02}"
        ops += [CreateSession(_info(sid, i)), AppendEvents(sid, (_message(sid, 1),))]
    store.submit(ops)
    store.flush()
    catalog = SessionCatalog(store, default_price_book(), chunk=7)
    try:
        first = catalog.refreshed(timeout=60)
        assert [i.id for i in first] == [f"s-{i:02}" for i in reversed(range(30))]
        assert backend.headers_read == []  # the first read is of the whole list at once

        backend.headers_read.clear()
        assert catalog.refreshed(timeout=60) is first  # nothing changed: nothing read, same list
        assert backend.headers_read == []

        store.submit(
            [
                AppendEvents("s-03", (_message("s-03", 2),)),
                SaveHeader(
                    _info("s-07", 7, metadata={"team": "red"}).model_copy(
                        update={"updated_at": T0 + timedelta(days=1)}
                    )
                ),
                DeleteSession("s-11"),
                CreateSession(_info("s-new", 99)),
            ]
        )
        store.flush()
        after = catalog.refreshed(timeout=60)
        assert sorted(backend.headers_read) == ["s-03", "s-07", "s-new"]
        by_id = {i.id: i for i in after}
        assert after[0].id == "s-new" and "s-11" not in by_id and len(after) == 30
        assert by_id["s-03"].last_seq == 2 and by_id["s-07"].metadata == {"team": "red"}
        assert by_id["s-05"] is next(i for i in first if i.id == "s-05")  # kept, not read again
        page = catalog.page(query="team=red")
        assert [r["id"] for r in page["rows"]] == ["s-07"]
    finally:
        catalog.close()
        store.close()
