"""Prompt-cache figures in ``sessions``, ``show`` and ``stats``: the share of input read
from cache and the net cost saved, priced call by call."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sessionware import SessionManager, TokenUsage
from sessionware.core.accounting.caching import CacheTally, cache_saving
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.store import open_store

# gpt-4o: input $2.50/M, cache read $1.25/M. claude-3-5-sonnet: input $3/M, cache write $3.75/M.
GPT4O_SAVED = (Decimal(1000) + Decimal(1200)) * Decimal("1.25") / Decimal(1_000_000)
CLAUDE_SAVED = Decimal(400) * (Decimal(3) - Decimal("3.75")) / Decimal(1_000_000)


def test_a_saving_is_the_uncached_price_minus_the_cost_and_a_cache_write_costs_extra() -> None:
    book = PriceBook()
    read = TokenUsage(input_tokens=2000, output_tokens=10, cache_read_tokens=1000)
    write = TokenUsage(input_tokens=500, output_tokens=8, cache_write_tokens=400)

    assert cache_saving(book, "gpt-4o", read, book.cost("gpt-4o", read)) == Decimal(1000) * Decimal(
        "1.25"
    ) / Decimal(1_000_000)
    assert (
        cache_saving(book, "claude-3-5-sonnet", write, book.cost("claude-3-5-sonnet", write)) == CLAUDE_SAVED
    )
    assert cache_saving(book, "gpt-4o", TokenUsage(input_tokens=10), None) == 0
    assert cache_saving(book, "no-such-model", read, None) is None


def test_a_tally_counts_unpriced_calls_and_has_no_saving_when_none_was_priced() -> None:
    tally = CacheTally(PriceBook())
    tally.add("no-such-model", TokenUsage(input_tokens=100, cache_read_tokens=50), None)
    figures = tally.figures()

    assert figures.read_share == 0.5
    assert figures.saved_cost is None
    assert figures.unpriced_calls == 1
    assert CacheTally(PriceBook()).figures().saved_cost == 0  # no cache used: nothing saved


def test_sessions_give_each_session_its_cache_share_and_saving(recorded, cli) -> None:
    result = cli("sessions", "--store", recorded.url, "--format", "json")

    parent = next(s for s in json.loads(result.out) if s["id"] == recorded.parent)
    # Three models, so the saving is priced event by event.
    assert parent["cache"]["cache_read_tokens"] == 2200
    assert parent["cache"]["read_share"] == pytest.approx(2200 / 3300)
    assert Decimal(parent["cache"]["saved_cost"]) == GPT4O_SAVED + CLAUDE_SAVED

    plain = cli("sessions", "--store", recorded.url, "--no-header").out.splitlines()
    cells = next(r.split("\t") for r in plain if r.startswith(recorded.parent + "\t"))
    assert cells[10:] == ["2200", f"{2200 / 3300:.4f}", str(GPT4O_SAVED + CLAUDE_SAVED)]

    table = cli("sessions", "--store", recorded.url, "--format", "table").out
    assert " 67% " in next(line for line in table.splitlines() if line.startswith(recorded.parent + " "))


def test_show_prints_the_cache_line_under_the_totals(recorded, cli) -> None:
    out = cli("show", recorded.parent, "--store", recorded.url, "--format", "table").out

    line = next(line for line in out.splitlines() if line.startswith("cache "))
    assert "67% of input read from cache (2,200 of 3,300 tokens)" in line
    assert "400 written" in line
    assert f"saved ${GPT4O_SAVED + CLAUDE_SAVED:.6f}" in line


def test_stats_rows_carry_the_share_and_the_saving_by_model(recorded, cli) -> None:
    report = json.loads(cli("stats", "--store", recorded.url, "--format", "json").out)

    by_model = {row["key"]: row for row in report["by_model"]}
    assert by_model["gpt-4o"]["cache_read_share"] == pytest.approx(2200 / 2500)
    assert Decimal(by_model["gpt-4o"]["cache_saved_cost"]) == GPT4O_SAVED
    assert Decimal(by_model["claude-3-5-sonnet-20241022"]["cache_saved_cost"]) == CLAUDE_SAVED
    assert Decimal(report["total"]["cache_saved_cost"]) == GPT4O_SAVED + CLAUDE_SAVED


async def test_session_stats_price_the_saving_of_a_one_model_session(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/c.db")
    sm = SessionManager("one-model", store=store)
    await sm.user_says("hi")
    for read in (0, 900, 950):
        await sm.ai_responds(
            "ok", model="gpt-4o", usage=TokenUsage(input_tokens=1000, output_tokens=5, cache_read_tokens=read)
        )
    stats = await sm.get_stats()

    assert stats.cache_read_share == pytest.approx(1850 / 3000)
    assert stats.cache_saved_cost == Decimal(1850) * Decimal("1.25") / Decimal(1_000_000)
    await sm.ai_responds(
        "ok", model="claude-3-5-sonnet", usage=TokenUsage(input_tokens=10, cache_read_tokens=5)
    )
    assert (await sm.get_stats()).cache_saved_cost is None  # two models: totals cannot tell them apart
    store.close()


def test_the_caching_module_example_holds() -> None:
    import doctest

    from sessionware.core.accounting import caching

    result = doctest.testmod(caching)
    assert result.attempted > 0
    assert result.failed == 0
