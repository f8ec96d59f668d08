"""Cost from genai-prices: resolution, cached tokens, unknown models, exact decimals, and the
fast path agreeing with the library on every model in its snapshot."""

from __future__ import annotations

import logging
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot

from sessionware import PriceBook, TokenUsage
from sessionware.core.defaults import default_price_book

MILLION = 1_000_000


def test_dated_model_names_resolve_to_their_base_model() -> None:
    book = PriceBook()
    for dated, base in [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ]:
        info = book.model_info(dated)
        assert info is not None and info.model_id == base and info.requested == dated
        usage = TokenUsage(input_tokens=1234, output_tokens=56)
        assert book.cost(dated, usage) == book.cost(base, usage)
    assert book.cost("gpt-4o-2024-08-06", TokenUsage(input_tokens=MILLION)) == Decimal("2.5")


def test_context_windows_come_from_the_price_data() -> None:
    book = PriceBook()
    assert book.context_window("gpt-4o") == 128_000
    assert book.context_window("claude-3-5-sonnet-20241022") == 200_000
    assert book.context_window("no-such-model-abc") is None


def test_cached_input_is_priced_at_the_cache_rates() -> None:
    book = PriceBook()
    fresh = book.cost("gpt-4o", TokenUsage(input_tokens=MILLION))
    cached = book.cost("gpt-4o", TokenUsage(input_tokens=MILLION, cache_read_tokens=MILLION))
    assert (fresh, cached) == (Decimal("2.5"), Decimal("1.25"))
    # Anthropic: 1M prompt of which 600k read from cache and 100k written to it.
    usage = TokenUsage(
        input_tokens=MILLION, cache_read_tokens=600_000, cache_write_tokens=100_000, output_tokens=0
    )
    expected = (300_000 * Decimal(3) + 600_000 * Decimal("0.3") + 100_000 * Decimal("3.75")) / MILLION
    assert book.cost("claude-3-5-sonnet-20241022", usage, "anthropic") == expected


def test_costs_are_exact_decimals_never_rounded_to_zero() -> None:
    book = PriceBook()
    one_token = book.cost("gpt-4o-mini", TokenUsage(input_tokens=1))
    assert one_token == Decimal("0.00000015")
    assert sum([one_token] * 1000, Decimal(0)) == Decimal("0.00015")
    assert isinstance(book.cost("gpt-4o", TokenUsage(output_tokens=3)), Decimal)


def test_an_unknown_model_costs_none_and_is_logged_once_per_name(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook()
    usage = TokenUsage(input_tokens=10, output_tokens=10)
    with caplog.at_level(logging.WARNING, logger="sessionware.core.accounting.pricing"):
        for _ in range(5):
            assert book.cost("my-finetune-xyz", usage) is None
            assert book.cost("other-unknown-model", usage) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "my-finetune-xyz" in lines[0] and "other-unknown-model" in lines[1]
    assert book.model_info("my-finetune-xyz") is None


def test_no_model_means_no_cost_and_no_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert PriceBook().cost(None, TokenUsage(input_tokens=5)) is None
        assert PriceBook().cost("", TokenUsage(input_tokens=5)) is None
    assert caplog.records == []


def test_a_provider_narrows_the_match_and_an_unknown_provider_falls_back() -> None:
    book = PriceBook()
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    assert book.cost("gpt-4o", usage, "openai") == book.cost("gpt-4o", usage)
    assert book.cost("gpt-4o", usage, "no-such-provider") == book.cost("gpt-4o", usage)
    info = book.model_info("claude-3-5-sonnet", "anthropic")
    assert info is not None and info.provider_id == "anthropic"


def test_the_default_price_book_is_one_shared_instance() -> None:
    assert default_price_book() is default_price_book()


USAGES = [
    TokenUsage(input_tokens=1000, output_tokens=10),
    TokenUsage(
        input_tokens=300_000, output_tokens=1234, cache_read_tokens=100_000, cache_write_tokens=20_000
    ),
]


@pytest.mark.slow
def test_every_model_in_the_snapshot_costs_what_genai_prices_computes() -> None:
    """The fast per-token path must give the library's answer, tiers and cache rates included."""
    book = PriceBook()
    compared = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            for usage in USAGES:
                try:
                    expected = genai_prices.calc_price(
                        genai_prices.Usage(
                            input_tokens=usage.input_tokens,
                            output_tokens=usage.output_tokens,
                            cache_read_tokens=usage.cache_read_tokens,
                            cache_write_tokens=usage.cache_write_tokens,
                        ),
                        model_ref=model.id,
                        provider_id=provider.id,
                    ).total_price
                except LookupError:
                    continue  # a few ids the library's own matcher does not resolve
                assert book.cost(model.id, usage, provider.id) == expected, (provider.id, model.id, usage)
                compared += 1
    assert compared > 4000  # the whole snapshot, not a handful
