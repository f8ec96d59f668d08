"""Cost and context windows from ``genai-prices``, the maintained price library.

``genai-prices`` is imported on first use (it takes ~0.15 s). Model names resolve the
way the library resolves them (dated names to their base model), and the resolution is
cached per name. An unknown model has no cost: ``None`` and one log line per name,
never a made-up default. Costs are exact ``Decimal`` dollars.

Pricing one call through ``genai_prices.calc_price`` takes ~60 µs, too much for a
wrapped SDK call, so models whose prices are plain per-token rates (the vast majority)
are priced with the same rates directly; anything else goes through the library. A test
checks the two agree on every model in the snapshot.

>>> book = PriceBook()
>>> book.cost("gpt-4o-2024-08-06", TokenUsage(input_tokens=1_000_000))
Decimal('2.5')
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sessionware.core.accounting.usage import TokenUsage

if TYPE_CHECKING:
    from typing import TypeAlias

    from genai_prices.types import ModelPrice, TieredPrices

    _Rate: TypeAlias = Decimal | TieredPrices | None

__all__ = ["ModelInfo", "PriceBook"]

logger = logging.getLogger(__name__)

_MILLION = Decimal(1_000_000)
_RATE_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")
# Price keys that do not depend on counts we ever report as non-zero, or that are the
# four token rates we apply ourselves. A model with any other key (audio, images,
# per-request fees...) is priced by the library.
_LINEAR_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
    }
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the price library knows about a model name."""

    requested: str
    model_id: str
    provider_id: str
    context_window: int | None


@dataclass(frozen=True, slots=True)
class _Resolved:
    info: ModelInfo
    price: ModelPrice
    rates: tuple[_Rate, _Rate, _Rate, _Rate] | None
    """Input, cache-read, cache-write and output rates when the price is per-token only."""
    flat: _FlatRates | None = None
    """The same rates as integers, when none of them is tiered."""


@dataclass(frozen=True, slots=True)
class _FlatRates:
    """Per-token rates without tiers, as integers over a common ``divisor``: a cost is
    then integer arithmetic and one exact decimal division (five decimal operations
    fewer per priced call than multiplying the decimal rates)."""

    input: int
    cache_read: int | None
    cache_write: int | None
    output: int
    divisor: Decimal
    """Dollars per token = rate / divisor."""

    @classmethod
    def of(cls, rates: tuple[_Rate, _Rate, _Rate, _Rate] | None) -> _FlatRates | None:
        if rates is None or not all(r is None or isinstance(r, Decimal) for r in rates):
            return None
        places = max([0, *(-int(r.as_tuple().exponent) for r in rates if isinstance(r, Decimal))])

        def scaled(rate: _Rate) -> int | None:
            return None if rate is None else int(cast(Decimal, rate).scaleb(places))

        input_rate, read_rate, write_rate, output_rate = (scaled(r) for r in rates)
        return cls(
            input=input_rate or 0,
            cache_read=read_rate,
            cache_write=write_rate,
            output=output_rate or 0,
            divisor=_MILLION.scaleb(places),
        )

    def cost(self, usage: TokenUsage) -> Decimal:
        values = usage.__dict__  # once per priced call: dict reads, not model attributes
        total_input = values["input_tokens"]
        # Cached tokens without a cache rate of their own are billed as plain input.
        read = values["cache_read_tokens"] if self.cache_read is not None else 0
        write = values["cache_write_tokens"] if self.cache_write is not None else 0
        units = self.input * max(total_input - read - write, 0) + self.output * values["output_tokens"]
        if read:
            units += cast(int, self.cache_read) * read
        if write:
            units += cast(int, self.cache_write) * write
        return Decimal(units) / self.divisor


def _rate(price: _Rate, total_input: int) -> Decimal:
    if price is None:
        return Decimal(0)
    if isinstance(price, Decimal):
        return price
    rate = price.base
    for tier in reversed(price.tiers):
        if total_input > tier.start:
            return tier.price
    return rate


class PriceBook:
    """Resolves model names and prices token usage. Thread-safe; cheap after first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resolved: dict[tuple[str, str | None], _Resolved | None] = {}

    def _resolve(self, model: str, provider: str | None) -> _Resolved | None:
        key = (model, provider)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._resolved:
                self._resolved[key] = self._lookup(model, provider)
            return self._resolved[key]

    def _lookup(self, model: str, provider: str | None) -> _Resolved | None:
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        found: Any = None
        for candidate in (provider, None) if provider else (None,):
            try:
                found = snapshot.find_provider_model(model, None, candidate, None)
                break
            except LookupError:
                continue
        if found is None:
            logger.warning("no price known for model %r; its cost is recorded as unknown", model)
            return None
        prov, info = found
        price = info.get_prices(datetime.now(tz=UTC))
        # Read the rates once here: attribute misses on ModelPrice cost a registry lookup.
        given = {k: v for k, v in vars(price).items() if v is not None and not k.startswith("_")}
        rates = tuple(
            given.get(k) for k in ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")
        )
        linear: tuple[_Rate, _Rate, _Rate, _Rate] | None = (
            rates if given.keys() <= _LINEAR_KEYS else None  # type: ignore[assignment]
        )
        return _Resolved(
            info=ModelInfo(
                requested=model,
                model_id=info.id,
                provider_id=prov.id,
                context_window=info.context_window,
            ),
            price=price,
            rates=linear,
            flat=_FlatRates.of(linear),
        )

    def model_info(self, model: str, provider: str | None = None) -> ModelInfo | None:
        """The matched model (id, provider, context window), or None when unknown."""
        resolved = self._resolve(model, provider)
        return resolved.info if resolved else None

    def context_window(self, model: str, provider: str | None = None) -> int | None:
        info = self.model_info(model, provider)
        return info.context_window if info else None

    def cost(self, model: str | None, usage: TokenUsage, provider: str | None = None) -> Decimal | None:
        """Dollar cost of ``usage`` on ``model``; None when the model is unknown."""
        if not model:
            return None
        resolved = self._resolve(model, provider)
        if resolved is None:
            return None
        if resolved.flat is not None:
            return resolved.flat.cost(usage)
        if resolved.rates is not None:
            return self._linear_cost(resolved.rates, usage)
        return self._library_cost(resolved.price, usage)

    @staticmethod
    def _linear_cost(rates: tuple[_Rate, _Rate, _Rate, _Rate], usage: TokenUsage) -> Decimal:
        input_rate, read_rate, write_rate, output_rate = rates
        total_input = usage.input_tokens
        # Cached tokens without a cache rate of their own are billed as plain input.
        read = usage.cache_read_tokens if read_rate is not None else 0
        write = usage.cache_write_tokens if write_rate is not None else 0
        dollars = _rate(input_rate, total_input) * max(total_input - read - write, 0)
        if read:
            dollars += _rate(read_rate, total_input) * read
        if write:
            dollars += _rate(write_rate, total_input) * write
        if usage.output_tokens:
            dollars += _rate(output_rate, total_input) * usage.output_tokens
        return dollars / _MILLION

    @staticmethod
    def _library_cost(price: ModelPrice, usage: TokenUsage) -> Decimal:
        from genai_prices.types import Usage

        result = price.calc_price(
            Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
        )
        total: Decimal = result["total_price"]
        return total
