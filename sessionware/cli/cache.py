"""Prompt-cache figures of recorded sessions, for ``sessions``, ``show``, ``stats`` and the UI.

A session's cache-read share comes from its totals. Its saving is priced from its totals
when every call ran on one model, and from its events otherwise (totals keep no usage
per model), so a listing loads events only for the rare sessions that mixed models and
used the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from sessionware.cli.render import format_cost
from sessionware.core.accounting.caching import CacheFigures, CacheTally, cache_saving, read_share
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.session.models import SessionEvent, SessionInfo

__all__ = ["events_cache", "format_saved", "format_share", "session_cache"]


def events_cache(events: Iterable[SessionEvent], prices: PriceBook) -> CacheFigures:
    """The cache figures of ``events``' calls, priced call by call."""
    tally = CacheTally(prices)
    for event in events:
        if event.usage is not None:
            tally.add(event.model, event.usage, event.cost, event.provider)
    return tally.figures()


def session_cache(
    info: SessionInfo, prices: PriceBook, load_events: Callable[[str], list[SessionEvent]]
) -> CacheFigures:
    """The cache figures of one session, from its header when that suffices."""
    totals = info.totals
    usage = totals.usage
    if not (usage.cache_read_tokens or usage.cache_write_tokens):
        return CacheFigures(input_tokens=usage.input_tokens, saved_cost=Decimal(0))
    if len(totals.models) == 1 and not totals.unpriced_calls:
        saved = cache_saving(prices, next(iter(totals.models)), usage, totals.cost)
        return CacheFigures(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            read_share=read_share(usage),
            saved_cost=saved,
            unpriced_calls=0 if saved is not None else totals.llm_calls,
        )
    return events_cache(load_events(info.id), prices)


def format_share(figures: CacheFigures) -> str:
    """``83%`` of the input read from cache, ``0%``, or empty when there was no input."""
    if not figures.input_tokens:
        return ""
    share = figures.read_share * 100
    return f"{share:.0f}%" if share >= 1 or share == 0 else f"{share:.1f}%"


def format_saved(figures: CacheFigures) -> str:
    """The saving as a table cell: ``$0.0123``, ``-$0.0010``, ``?`` when unpriced, empty when unused."""
    if not (figures.cache_read_tokens or figures.cache_write_tokens):
        return ""
    if figures.saved_cost is None:
        return "?"
    text = format_cost(abs(figures.saved_cost), unpriced_calls=figures.unpriced_calls)
    return f"-{text}" if figures.saved_cost < 0 else text
