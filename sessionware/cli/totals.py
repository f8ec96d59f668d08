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
from sessionware.core.defaults import default_price_book
from sessionware.core.session.models import SessionEvent, SessionTotals
from sessionware.core.session.stats import known_cost

__all__ = [
    "PLAIN_COLUMNS",
    "StatsGroup",
    "UsageReport",
    "UsageRow",
    "build_report",
    "plain_rows",
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


@dataclass
class _Bucket:
    cache: CacheTally
    totals: SessionTotals = field(default_factory=SessionTotals)
    sessions: set[str] = field(default_factory=set)

    def add(self, session_id: str, event: SessionEvent) -> None:
        self.totals.fold(event)
        self.sessions.add(session_id)
        if event.usage is not None:
            self.cache.add(event.model, event.usage, event.cost, event.provider)

    def row(self, group: StatsGroup, key: str) -> UsageRow:
        t = self.totals
        cache = self.cache.figures()
        return UsageRow(
            group=group,
            key=key,
            sessions=len(self.sessions),
            calls=t.llm_calls,
            input_tokens=t.usage.input_tokens,
            cache_read_tokens=t.usage.cache_read_tokens,
            cache_write_tokens=t.usage.cache_write_tokens,
            output_tokens=t.usage.output_tokens,
            cost=known_cost(t.cost, t.unpriced_calls),
            unpriced_calls=t.unpriced_calls,
            errors=t.errors,
            cache_read_share=cache.read_share,
            cache_saved_cost=cache.saved_cost,
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
    by_model: dict[str, _Bucket] = {}
    by_day: dict[str, _Bucket] = {}
    total = _Bucket(CacheTally(book))
    for session_id, events in sessions:
        for event in events:
            day = _utc_day(event.timestamp)
            if (since is not None and day < since) or (until is not None and day > until):
                continue
            total.add(session_id, event)
            bucket = by_day.get(day)
            if bucket is None:
                bucket = by_day[day] = _Bucket(CacheTally(book))
            bucket.add(session_id, event)
            model = event.model or (NO_MODEL if event.usage is not None else None)
            if model is not None:
                bucket = by_model.get(model)
                if bucket is None:
                    bucket = by_model[model] = _Bucket(CacheTally(book))
                bucket.add(session_id, event)
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
