"""The totals page's report over a real SQLite store: the sum of per-session parts equals
folding every event at once, it follows sessions appended, added and deleted by reading
only those, and a first count that is still running is served as it stands (partial)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from conftest import fetch

from sessionware.cli.totals import NO_MODEL, build_report
from sessionware.cli.ui.catalog import SessionCatalog
from sessionware.cli.ui.totals import StoreTotals
from sessionware.core.accounting.caching import CacheTally
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.defaults import default_price_book
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ErrorInfo, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.store import AppendEvents, CreateSession, DeleteSession, open_store
from sessionware.core.store.sqlite import SQLiteBackend
from sessionware.core.store.store import Store

START = datetime(2026, 11, 30, 22, tzinfo=UTC)
MODELS = ("gpt-4o-mini", "claude-sonnet-4-5", "no-such-model-x", None)


def _events(sid: str, i: int, first_seq: int = 1, n: int = 6) -> list[SessionEvent]:
    """Calls of mixed models (one unpriced, one without a model), across UTC midnight,
    with cache reads and writes, an error and plain messages."""
    out: list[SessionEvent] = []
    for k in range(n):
        seq = first_seq + k
        when = START + timedelta(minutes=37 * (i + seq))
        base: dict[str, Any] = {"id": f"{sid}-{seq}", "session_id": sid, "seq": seq, "timestamp": when}
        if k % 3 == 0:
            out.append(
                SessionEvent(
                    **base, type=EventType.MESSAGE, source=EventSource.USER, role=Role.USER, content=f"q{k}"
                )
            )
            continue
        model = MODELS[(i + k) % len(MODELS)]
        usage = TokenUsage(
            input_tokens=1_000 + 10 * i + k,
            output_tokens=20 + k,
            cache_read_tokens=(300 + i) if k % 2 else 0,
            cache_write_tokens=50 if model == "claude-sonnet-4-5" else 0,
        )
        priced = model not in ("no-such-model-x", None)
        cost = Decimal("0.0001") * (k + 1) + Decimal(i) / 10**6 if priced else None
        error = ErrorInfo(type="RateLimitError", message="slow down") if (i + k) % 7 == 0 else None
        out.append(
            SessionEvent(
                **base,
                type=EventType.MESSAGE,
                source=EventSource.LLM,
                role=Role.ASSISTANT,
                content="a",
                model=model,
                provider="anthropic" if model == "claude-sonnet-4-5" else "openai",
                usage=usage,
                cost=cost,
                error=error,
                hidden=k == 4,
            )
        )
    return out


def _fill(store: Store, n: int) -> dict[str, list[SessionEvent]]:
    sessions: dict[str, list[SessionEvent]] = {}
    ops: list[Any] = []
    for i in range(n):
        sid = f"s-{i:03}"
        sessions[sid] = _events(sid, i)
        ops += [CreateSession(SessionInfo(id=sid, created_at=START)), AppendEvents(sid, tuple(sessions[sid]))]
    store.submit(ops)
    store.flush()
    return sessions


@dataclass
class _Group:
    totals: SessionTotals = field(default_factory=SessionTotals)
    cache: CacheTally = field(default_factory=lambda: CacheTally(default_price_book()))
    sessions: set[str] = field(default_factory=set)


def _oracle(sessions: dict[str, list[SessionEvent]]) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Every event folded once into its model's, its day's and the overall group."""
    groups: dict[str, dict[str, _Group]] = {"model": {}, "day": {}, "total": {}}
    for sid, events in sessions.items():
        for e in events:
            model = e.model or (NO_MODEL if e.usage is not None else None)
            keys = [("day", e.timestamp.astimezone(UTC).date().isoformat()), ("total", "all")]
            if model is not None:
                keys.append(("model", model))
            for group, key in keys:
                g = groups[group].setdefault(key, _Group())
                g.totals.fold(e)
                g.sessions.add(sid)
                if e.usage is not None:
                    g.cache.add(e.model, e.usage, e.cost, e.provider)
    return {
        name: {
            key: (
                len(g.sessions),
                g.totals.llm_calls,
                g.totals.usage.input_tokens,
                g.totals.usage.cache_read_tokens,
                g.totals.usage.cache_write_tokens,
                g.totals.usage.output_tokens,
                None if g.totals.unpriced_calls and not g.totals.cost else g.totals.cost,
                g.totals.unpriced_calls,
                g.totals.errors,
                g.cache.figures().saved_cost,
            )
            for key, g in by_key.items()
        }
        for name, by_key in groups.items()
    }


def _figures(report: dict[str, Any]) -> dict[str, dict[str, tuple[Any, ...]]]:
    def row(r: dict[str, Any]) -> tuple[Any, ...]:
        dec = lambda v: None if v is None else Decimal(v)  # noqa: E731
        return (
            r["sessions"],
            r["calls"],
            r["input_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
            r["output_tokens"],
            dec(r["cost"]),
            r["unpriced_calls"],
            r["errors"],
            dec(r["cache_saved_cost"]),
        )

    return {
        "model": {r["key"]: row(r) for r in report["by_model"]},
        "day": {r["key"]: row(r) for r in report["by_day"]},
        "total": {"all": row(report["total"])},
    }


class _CountingBackend(SQLiteBackend):
    """A real SQLite backend that counts event reads and can hold them until released."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.reads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        self.gate.wait(30)
        self.reads.append(session_id)
        return super().load_events(session_id, after_seq)


def test_the_report_is_every_event_folded_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'totals.db'}"
    store = open_store(url)
    sessions = _fill(store, 40)
    prices = default_price_book()
    totals = StoreTotals(store, prices, SessionCatalog(store, prices), chunk=7)

    report = totals.report()

    assert not report["partial"] and report["counted"] == report["of"] == 40
    expected = _oracle(sessions)
    assert _figures(report) == expected
    assert len(expected["day"]) >= 2 and len(expected["model"]) == 4  # midnight crossed, every kind of model
    # ``sessionware stats`` builds the same report from the same parts.
    cli = build_report(sessions.items(), store=store.location, prices=prices).model_dump(mode="json")
    assert _figures(cli) == expected
    totals.close()
    store.close()


def test_changes_are_followed_by_reading_only_the_changed_sessions(tmp_path) -> None:
    backend = _CountingBackend(tmp_path / "totals.db")
    store = Store(backend)
    sessions = _fill(store, 30)
    prices = default_price_book()
    totals = StoreTotals(store, prices, SessionCatalog(store, prices, max_age=0.0), chunk=4)
    assert _figures(totals.report()) == _oracle(sessions)
    assert sorted(backend.reads) == sorted(sessions)

    backend.reads.clear()
    more = _events("s-005", 5, first_seq=7, n=4)
    sessions["s-005"] += more
    sessions["s-new"] = _events("s-new", 99)
    del sessions["s-011"]
    store.submit(
        [
            AppendEvents("s-005", tuple(more)),
            CreateSession(SessionInfo(id="s-new", created_at=START)),
            AppendEvents("s-new", tuple(sessions["s-new"])),
            DeleteSession("s-011"),
        ]
    )
    store.flush()

    deadline = datetime.now(UTC) + timedelta(seconds=30)
    report = totals.report()
    while _figures(report) != _oracle(sessions) and datetime.now(UTC) < deadline:
        report = totals.report()  # the catalog's re-read of the list runs in the background
    assert _figures(report) == _oracle(sessions)
    assert report["of"] == 30
    assert sorted(backend.reads) == ["s-005", "s-new"]
    totals.close()
    store.close()


def test_a_first_count_still_running_is_served_as_it_stands(tmp_path) -> None:
    backend = _CountingBackend(tmp_path / "totals.db")
    store = Store(backend)
    sessions = _fill(store, 12)
    prices = default_price_book()
    catalog = SessionCatalog(store, prices)
    catalog.infos()  # the list is read; the events are what waits below
    totals = StoreTotals(store, prices, catalog, chunk=5)
    backend.gate.clear()
    try:
        early = totals.report(wait=0.2)
        assert early["partial"] and early["counted"] == 0 and early["of"] == 12
        assert early["total"]["sessions"] == 0 and early["by_model"] == []
    finally:
        backend.gate.set()
    done = totals.report()
    assert not done["partial"] and done["counted"] == 12
    assert _figures(done) == _oracle(sessions)
    totals.close()
    store.close()


def test_a_stopping_server_stops_the_count(tmp_path) -> None:
    backend = _CountingBackend(tmp_path / "totals.db")
    store = Store(backend)
    _fill(store, 20)
    prices = default_price_book()
    catalog = SessionCatalog(store, prices)
    catalog.infos()
    totals = StoreTotals(store, prices, catalog, chunk=2)
    backend.gate.clear()
    assert totals.report(wait=0)["partial"]
    closing = threading.Thread(target=totals.close)
    closing.start()
    backend.gate.set()
    closing.join(10)
    assert not closing.is_alive()
    assert len(backend.reads) < 20  # it stopped between two reads, not after all of them
    store.close()


def test_the_api_waits_as_asked(tmp_path, serve) -> None:
    url = f"sqlite:///{tmp_path / 'totals.db'}"
    sessions = _fill(open_store(url), 10)
    server = serve(url)

    assert fetch(server.url + "api/totals?wait=soon").status == 400
    assert fetch(server.url + "api/totals?wait=61").status == 400
    quick = fetch(server.url + "api/totals?wait=0").json()
    assert {"partial", "counted", "of", "by_model", "by_day", "total"} <= quick.keys()
    full = fetch(server.url + "api/totals").json()
    assert not full["partial"] and _figures(full) == _oracle(sessions)


class _StuckListBackend(SQLiteBackend):
    """A real SQLite backend whose full session list hangs until released."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.gate = threading.Event()

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        if parent_id is None and limit is None:
            self.gate.wait(60)
        return super().list_sessions(parent_id=parent_id, limit=limit)


def test_a_server_stops_soon_while_a_read_of_the_store_hangs(tmp_path) -> None:
    """Ctrl-C of ``sessionware ui`` must not wait on a read that does not end (a store
    that stopped answering): the list read and the totals count are waited for briefly."""
    from sessionware.cli.ui import UIServer

    backend = _StuckListBackend(tmp_path / "stuck.db")
    store = Store(backend)
    _fill(store, 3)
    server = UIServer(store, port=0).start()
    waiting = threading.Thread(target=fetch, args=(server.url + "api/sessions?sort=id",), daemon=True)
    waiting.start()
    assert fetch(server.url + "api/totals?wait=0").json()["partial"]
    start = time.monotonic()
    server.stop()
    stopped_in = time.monotonic() - start
    backend.gate.set()
    waiting.join(30)
    store.close()
    assert stopped_in < 10, f"stop() took {stopped_in:.1f} s"
