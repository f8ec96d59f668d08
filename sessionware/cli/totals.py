"""``sessionware stats``: a store's usage and cost, by model and by day.

Figures are folded from events with the same rules as a session's own totals
(``SessionTotals.fold``), so the overall row equals the sum of the sessions' totals:
a call is an event with usage, or an LLM event naming a model; cost sums priced calls
and ``unpriced_calls`` counts the others. Days are UTC days of the event timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from sessionware.cli.cache import format_saved, format_share
from sessionware.cli.render import Column, format_cost, format_count, plain_cost, plain_decimal
from sessionware.core.accounting.caching import CacheFigures, CacheTally
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.defaults import default_price_book
from sessionware.core.session.models import SessionEvent, SessionTotals
from sessionware.core.session.stats import known_cost

__all__ = [
    "PLAIN_COLUMNS",
    "RowSums",
    "SessionPart",
    "StatsGroup",
    "UsageReport",
    "UsageRow",
    "build_report",
    "plain_rows",
    "report_of_parts",
    "session_part",
    "table_rows",
]

NO_MODEL = "(no model)"


class StatsGroup(StrEnum):
    """What a row of the report adds up."""

    MODEL = "model"
    DAY = "day"
    TOTAL = "total"


class UsageRow(BaseModel):
    """Totals of one model, one day, or the whole store."""

    model_config = ConfigDict(frozen=True)

    group: StatsGroup
    key: str
    sessions: int
    calls: int
    input_tokens: int
    """Whole prompts, cached parts included."""
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost: Decimal | None
    """None when calls were made and none had a known price (see ``known_cost``)."""
    unpriced_calls: int
    errors: int
    cache_read_share: float = 0.0
    """Share of ``input_tokens`` read from the providers' prompt caches."""
    cache_saved_cost: Decimal | None = Decimal(0)
    """Net dollars the prompt cache saved (None when no call using it had a price)."""


class UsageReport(BaseModel):
    """What ``sessionware stats --format json`` prints."""

    model_config = ConfigDict(frozen=True)

    store: str
    since: str | None = None
    until: str | None = None
    by_model: list[UsageRow]
    by_day: list[UsageRow]
    total: UsageRow


@dataclass(slots=True)
class _Fold:
    """One session's events of one row, folded by the session's own rules."""

    cache: CacheTally
    totals: SessionTotals = field(default_factory=SessionTotals)

    def add(self, event: SessionEvent) -> None:
        self.totals.fold(event)
        if event.usage is not None:
            self.cache.add(event.model, event.usage, event.cost, event.provider)


class RowSums:
    """What one row adds up, over one session or many: sums that add (``merge``), so a
    report is the sum of its sessions' parts and a changed session is folded again alone."""

    __slots__ = ("cache", "calls", "cost", "errors", "sessions", "unpriced_calls", "usage")

    def __init__(self, prices: PriceBook) -> None:
        self.sessions = 0
        self.calls = 0
        self.usage = TokenUsage()
        self.cost = Decimal(0)
        self.unpriced_calls = 0
        self.errors = 0
        self.cache = CacheTally(prices)

    @classmethod
    def of_session(cls, fold: _Fold, prices: PriceBook) -> RowSums:
        sums = cls(prices)
        t = fold.totals
        sums.sessions = 1
        sums.calls = t.llm_calls
        sums.usage = t.usage
        sums.cost = t.cost
        sums.unpriced_calls = t.unpriced_calls
        sums.errors = t.errors
        sums.cache = fold.cache
        return sums

    def merge(self, other: RowSums, *, same_sessions: bool = False) -> None:
        """Add ``other``'s figures, and its sessions unless they are counted here already
        (``same_sessions``: the rows of one session's days, added to its total)."""
        if not same_sessions:
            self.sessions += other.sessions
        self.calls += other.calls
        self.usage = self.usage + other.usage
        self.cost += other.cost
        self.unpriced_calls += other.unpriced_calls
        self.errors += other.errors
        self.cache.merge(other.cache)

    def row(self, group: StatsGroup, key: str) -> UsageRow:
        usage = self.usage
        cache = self.cache.figures()
        return UsageRow(
            group=group,
            key=key,
            sessions=self.sessions,
            calls=self.calls,
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            cost=known_cost(self.cost, self.unpriced_calls),
            unpriced_calls=self.unpriced_calls,
            errors=self.errors,
            cache_read_share=cache.read_share,
            cache_saved_cost=cache.saved_cost,
        )


@dataclass(frozen=True, slots=True)
class SessionPart:
    """One session's share of the report: its sums by model and by day (empty when none
    of its events falls in the report's days)."""

    by_model: dict[str, RowSums]
    by_day: dict[str, RowSums]


def session_part(
    events: Iterable[SessionEvent],
    prices: PriceBook,
    *,
    since: str | None = None,
    until: str | None = None,
) -> SessionPart:
    """Fold one session's events into its share of the report (days are ``YYYY-MM-DD``).

    Each event is folded once, into its (day, model) cell; a day's row and a model's row
    are sums of cells (a session has few)."""
    cells: dict[tuple[str, str | None], _Fold] = {}
    days: dict[datetime, str] = {}
    for event in events:
        stamp = event.timestamp
        day = days.get(stamp)
        if day is None:
            day = days[stamp] = _utc_day(stamp)
        if (since is not None and day < since) or (until is not None and day > until):
            continue
        model = event.model or (NO_MODEL if event.usage is not None else None)
        fold = cells.get((day, model))
        if fold is None:
            fold = cells[(day, model)] = _Fold(CacheTally(prices))
        fold.add(event)
    by_model: dict[str, RowSums] = {}
    by_day: dict[str, RowSums] = {}
    for (day, model), fold in cells.items():
        sums = RowSums.of_session(fold, prices)
        for groups, key in ((by_day, day), (by_model, model)):
            if key is None:
                continue
            into = groups.get(key)
            if into is None:
                groups[key] = sums if len(cells) == 1 else _copy(sums, prices)
            else:
                into.merge(sums, same_sessions=True)
    return SessionPart(by_model=by_model, by_day=by_day)


def _copy(sums: RowSums, prices: PriceBook) -> RowSums:
    copy = RowSums(prices)
    copy.merge(sums)
    return copy


def report_of_parts(
    parts: Iterable[SessionPart],
    *,
    store: str,
    prices: PriceBook,
    since: str | None = None,
    until: str | None = None,
) -> UsageReport:
    """The report of the sessions whose parts are given (each session once)."""
    by_model: dict[str, RowSums] = {}
    by_day: dict[str, RowSums] = {}
    total = RowSums(prices)
    for part in parts:
        for groups, sums in ((by_model, part.by_model), (by_day, part.by_day)):
            for key, row in sums.items():
                into = groups.get(key)
                if into is None:
                    into = groups[key] = RowSums(prices)
                into.merge(row)
        if part.by_day:  # every event in range is in exactly one day: the days sum to the session
            total.sessions += 1
            for row in part.by_day.values():
                total.merge(row, same_sessions=True)
    models = sorted(
        (b.row(StatsGroup.MODEL, k) for k, b in by_model.items()),
        key=lambda r: (-(r.cost or 0), -r.calls, r.key),
    )
    return UsageReport(
        store=store,
        since=since,
        until=until,
        by_model=models,
        by_day=[by_day[d].row(StatsGroup.DAY, d) for d in sorted(by_day)],
        total=total.row(StatsGroup.TOTAL, "all"),
    )


def build_report(
    sessions: Iterable[tuple[str, Iterable[SessionEvent]]],
    *,
    store: str,
    since: str | None = None,
    until: str | None = None,
    prices: PriceBook | None = None,
) -> UsageReport:
    """Fold every ``(session_id, events)`` pair into the report; days are ``YYYY-MM-DD``.
    ``prices`` prices the cache savings (default: the process's price book)."""
    book = prices if prices is not None else default_price_book()
    parts = (session_part(events, book, since=since, until=until) for _, events in sessions)
    return report_of_parts(parts, store=store, prices=book, since=since, until=until)


def _utc_day(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.date().isoformat()


PLAIN_COLUMNS = [
    Column("group"),
    Column("key"),
    Column("sessions", numeric=True),
    Column("calls", numeric=True),
    Column("tokens_in", numeric=True),
    Column("cached", numeric=True),
    Column("cache_write", numeric=True),
    Column("tokens_out", numeric=True),
    Column("cost", numeric=True),
    Column("unpriced_calls", numeric=True),
    Column("errors", numeric=True),
    Column("cache_read_share", numeric=True),
    Column("cache_saved", numeric=True),
]


def plain_rows(report: UsageReport) -> list[list[str]]:
    rows = [*report.by_model, *report.by_day, report.total]
    return [
        [
            r.group.value,
            r.key,
            str(r.sessions),
            str(r.calls),
            str(r.input_tokens),
            str(r.cache_read_tokens),
            str(r.cache_write_tokens),
            str(r.output_tokens),
            plain_cost(r.cost),
            str(r.unpriced_calls),
            str(r.errors),
            f"{r.cache_read_share:.4f}",
            "" if r.cache_saved_cost is None else plain_decimal(r.cache_saved_cost),
        ]
        for r in rows
    ]


def table_columns(first: str) -> list[Column]:
    return [
        Column(first),
        Column("sessions", numeric=True),
        Column("calls", numeric=True),
        Column("tokens in", numeric=True),
        Column("cached", numeric=True),
        Column("cache %", numeric=True),
        Column("tokens out", numeric=True),
        Column("cost", numeric=True),
        Column("saved", numeric=True),
        Column("errors", numeric=True),
    ]


def table_rows(rows: Iterable[UsageRow]) -> list[list[str]]:
    return [
        [
            r.key,
            format_count(r.sessions),
            format_count(r.calls),
            format_count(r.input_tokens),
            format_count(r.cache_read_tokens),
            format_share(_figures(r)),
            format_count(r.output_tokens),
            format_cost(r.cost, unpriced_calls=r.unpriced_calls),
            format_saved(_figures(r)),
            format_count(r.errors),
        ]
        for r in rows
    ]


def _figures(row: UsageRow) -> CacheFigures:
    return CacheFigures(
        input_tokens=row.input_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
        read_share=row.cache_read_share,
        saved_cost=row.cache_saved_cost,
    )
