"""Prompt-cache figures: how much of the input a provider served from its cache, and
what that saved.

``read_share`` is cache-read tokens over input tokens (``TokenUsage.input_tokens``
counts whole prompts, cached parts included). ``saved_cost`` is what the same calls
would have cost with every input token billed at the plain input rate, minus what they
cost: cache reads are cheaper (0.1x at Anthropic, 0.1x-0.5x at OpenAI), cache writes
dearer (1.25x or 2x at Anthropic), so the figure is the net gain and can be negative
when a session wrote its cache more than it read it. Calls of a model without a known
price add nothing to it and are counted in ``unpriced_calls``; with none priced it is
``None``, never a guess.

>>> tally = CacheTally(PriceBook())
>>> tally.add("gpt-4o", TokenUsage(input_tokens=2_000, cache_read_tokens=1_000), None)
>>> figures = tally.figures()
>>> figures.read_share, figures.saved_cost, figures.unpriced_calls
(0.5, None, 1)
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.accounting.usage import TokenUsage

__all__ = ["CacheFigures", "CacheTally", "cache_saving", "read_share"]


class CacheFigures(BaseModel):
    """Cache figures of a call, a session or any group of calls."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    read_share: float = 0.0
    """``cache_read_tokens / input_tokens`` (0 without input)."""
    saved_cost: Decimal | None = None
    """Net dollars saved by caching over the priced calls; None when no call with cache
    tokens had a known price (and 0 when no call used the cache)."""
    unpriced_calls: int = 0
    """Calls with cache tokens whose saving could not be priced."""


def read_share(usage: TokenUsage) -> float:
    """The share of ``usage``'s input tokens read from the provider's cache."""
    return usage.cache_read_tokens / usage.input_tokens if usage.input_tokens else 0.0


def cache_saving(
    prices: PriceBook,
    model: str | None,
    usage: TokenUsage,
    cost: Decimal | None,
    provider: str | None = None,
) -> Decimal | None:
    """Dollars one call saved by caching: its cost with no cache, minus ``cost``.

    0 for a call that used no cache; None when the call or its model has no price.
    """
    if not (usage.cache_read_tokens or usage.cache_write_tokens):
        return Decimal(0)
    if cost is None:
        return None
    full = prices.cost(model, usage.uncached(), provider)
    return None if full is None else full - cost


class CacheTally:
    """Adds calls up into ``CacheFigures``."""

    __slots__ = ("_input", "_priced", "_prices", "_read", "_saved", "_unpriced", "_write")

    def __init__(self, prices: PriceBook) -> None:
        self._prices = prices
        self._input = self._read = self._write = self._unpriced = 0
        self._saved = Decimal(0)
        self._priced = False

    def add(
        self, model: str | None, usage: TokenUsage, cost: Decimal | None, provider: str | None = None
    ) -> None:
        self._input += usage.input_tokens
        self._read += usage.cache_read_tokens
        self._write += usage.cache_write_tokens
        if not (usage.cache_read_tokens or usage.cache_write_tokens):
            return
        saving = cache_saving(self._prices, model, usage, cost, provider)
        if saving is None:
            self._unpriced += 1
        else:
            self._saved += saving
            self._priced = True

    def merge(self, other: CacheTally) -> None:
        """Add the calls ``other`` added up (a tally of other calls, same prices)."""
        self._input += other._input
        self._read += other._read
        self._write += other._write
        self._unpriced += other._unpriced
        self._saved += other._saved
        self._priced = self._priced or other._priced

    def figures(self) -> CacheFigures:
        used = bool(self._read or self._write)
        return CacheFigures(
            input_tokens=self._input,
            cache_read_tokens=self._read,
            cache_write_tokens=self._write,
            read_share=self._read / self._input if self._input else 0.0,
            saved_cost=self._saved if (self._priced or not used) else None,
            unpriced_calls=self._unpriced,
        )
