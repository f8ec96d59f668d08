"""``SessionStats``: the typed figures ``SessionManager.get_stats`` returns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from sessionware.core.accounting.caching import cache_saving, read_share
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.session.enums import Role
from sessionware.core.session.models import SessionInfo

__all__ = ["SessionStats", "known_cost"]


def known_cost(cost: Decimal, unpriced_calls: int) -> Decimal | None:
    """A cost total as reports show it: None (unknown) when calls were made and none of
    them could be priced, else the sum of the priced ones (a lower bound while
    ``unpriced_calls`` is not 0).

    >>> known_cost(Decimal(0), 1) is None, known_cost(Decimal("0.5"), 1), known_cost(Decimal(0), 0)
    (True, Decimal('0.5'), Decimal('0'))
    """
    if unpriced_calls and not cost:
        return None
    return cost


class SessionStats(BaseModel):
    """Figures of a session, or of a chain of segments taken together.

    Tokens and cost are what providers reported (``token_source`` says ``estimate``
    when any part was counted locally). ``cost`` sums the calls whose model has a known
    price; ``unpriced_calls`` counts the others, and ``cost`` is None (unknown, not free)
    when no call could be priced. ``hidden_*`` are calls the app never
    saw (page-fault rounds, model-written summaries), already included in the totals;
    ``app_input_tokens`` is what the app asked to send on managed calls, so
    ``tokens_saved`` is how much less went on the wire for those calls (hidden rounds and
    calls sent as the app built them, in observe mode, do not count towards it).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    session_id: str
    session_chain: list[str]
    segments: int
    infinite_context: bool = False
    total_events: int
    total_messages: int
    messages_by_role: dict[Role, int]
    user_messages: int
    assistant_messages: int
    tool_calls: int
    llm_calls: int
    errors: int
    page_faults: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    token_source: TokenSource
    cost: Decimal | None
    unpriced_calls: int
    hidden_input_tokens: int
    hidden_output_tokens: int
    hidden_cost: Decimal
    app_input_tokens: int
    tokens_saved: int
    managed_input_tokens: int = 0
    """Input tokens the provider reported for the managed calls (``app_input_tokens``'s twin)."""
    cache_read_share: float = 0.0
    """Share of the input tokens the providers served from their prompt cache."""
    cache_saved_cost: Decimal | None = None
    """Net dollars the prompt cache saved (see ``core.accounting.caching``); None when the
    session used the cache on more than one model or on one without a known price."""
    models: dict[str, int]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_infos(
        cls,
        infos: Sequence[SessionInfo],
        *,
        infinite_context: bool = False,
        prices: PriceBook | None = None,
    ) -> SessionStats:
        """Combine the headers of a segment chain, oldest first, into one figure set."""
        by_role: dict[Role, int] = {}
        models: dict[str, int] = {}
        usage = hidden = TokenUsage()
        cost = hidden_cost = Decimal(0)
        counts = dict.fromkeys(
            ("events", "tool_calls", "llm_calls", "errors", "page_faults", "unpriced", "app", "sent"), 0
        )
        for info in infos:
            t = info.totals
            for role, n in t.messages_by_role.items():
                by_role[role] = by_role.get(role, 0) + n
            for model, n in t.models.items():
                models[model] = models.get(model, 0) + n
            usage = usage + t.usage
            hidden = hidden + t.hidden_usage
            cost += t.cost
            hidden_cost += t.hidden_cost
            counts["events"] += t.events
            counts["tool_calls"] += t.tool_calls
            counts["llm_calls"] += t.llm_calls
            counts["errors"] += t.errors
            counts["page_faults"] += t.page_faults
            counts["unpriced"] += t.unpriced_calls
            counts["app"] += t.app_input_tokens
            counts["sent"] += t.managed_input_tokens
        last = infos[-1]
        # What went on the wire for the managed calls: their own input, when the wrapper
        # recorded both on one event; else (recorded apart) every call the app saw.
        sent = counts["sent"] or usage.input_tokens - hidden.input_tokens
        source = usage.source if counts["llm_calls"] else TokenSource.PROVIDER
        return cls(
            session_id=last.id,
            session_chain=[i.id for i in infos],
            segments=len(infos),
            infinite_context=infinite_context,
            total_events=counts["events"],
            total_messages=sum(by_role.values()),
            messages_by_role=by_role,
            user_messages=by_role.get(Role.USER, 0),
            assistant_messages=by_role.get(Role.ASSISTANT, 0),
            tool_calls=counts["tool_calls"],
            llm_calls=counts["llm_calls"],
            errors=counts["errors"],
            page_faults=counts["page_faults"],
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_tokens=usage.total_tokens,
            token_source=source,
            cost=known_cost(cost, counts["unpriced"]),
            unpriced_calls=counts["unpriced"],
            hidden_input_tokens=hidden.input_tokens,
            hidden_output_tokens=hidden.output_tokens,
            hidden_cost=hidden_cost,
            app_input_tokens=counts["app"],
            tokens_saved=max(counts["app"] - sent, 0) if counts["app"] else 0,
            managed_input_tokens=counts["sent"],
            cache_read_share=read_share(usage),
            cache_saved_cost=_saved(usage, cost, counts["unpriced"], models, prices),
            models=models,
            created_at=infos[0].created_at,
            updated_at=last.updated_at,
        )


def _saved(
    usage: TokenUsage, cost: Decimal, unpriced: int, models: dict[str, int], prices: PriceBook | None
) -> Decimal | None:
    """The cache saving of a chain's totals: exact when all its calls ran on one priced
    model (totals keep no per-model usage, so a mix of models has no figure here)."""
    if not (usage.cache_read_tokens or usage.cache_write_tokens):
        return Decimal(0)
    if len(models) != 1 or unpriced:
        return None
    if prices is None:
        from sessionware.core.defaults import default_price_book

        prices = default_price_book()
    return cache_saving(prices, next(iter(models)), usage, cost)
