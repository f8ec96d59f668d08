"""``sessionware stats``: usage and cost by model and by day."""

from __future__ import annotations

import json
from decimal import Decimal

from sessionware.core.store import open_store


def _plain(cli, store_url: str, *extra: str) -> dict[tuple[str, str], dict[str, str]]:
    result = cli("stats", "--store", store_url, *extra)
    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    columns = header.split("\t")
    parsed = [dict(zip(columns, row.split("\t"), strict=True)) for row in rows]
    return {(r["group"], r["key"]): r for r in parsed}


def test_total_row_equals_the_sum_of_the_sessions_own_totals(recorded, cli) -> None:
    store = open_store(recorded.url)
    infos = store.list_sessions()
    store.close()

    total = _plain(cli, recorded.url)[("total", "all")]

    assert int(total["sessions"]) == len(infos)
    assert int(total["calls"]) == sum(i.totals.llm_calls for i in infos)
    assert int(total["tokens_in"]) == sum(i.totals.usage.input_tokens for i in infos)
    assert int(total["cached"]) == sum(i.totals.usage.cache_read_tokens for i in infos)
    assert int(total["cache_write"]) == sum(i.totals.usage.cache_write_tokens for i in infos)
    assert int(total["tokens_out"]) == sum(i.totals.usage.output_tokens for i in infos)
    assert Decimal(total["cost"]) == sum((i.totals.cost for i in infos), Decimal(0))
    assert int(total["unpriced_calls"]) == sum(i.totals.unpriced_calls for i in infos)
    assert int(total["errors"]) == 2  # the failed call and the failed weather tool


def test_rows_by_model_split_calls_tokens_and_errors(recorded, cli) -> None:
    rows = _plain(cli, recorded.url)

    gpt4o = rows[("model", "gpt-4o")]
    # Two answered calls plus the failed one, all on gpt-4o.
    assert (gpt4o["calls"], gpt4o["tokens_in"], gpt4o["cached"], gpt4o["errors"]) == (
        "3",
        "2500",
        "2200",
        "1",
    )
    assert Decimal(gpt4o["cost"]) > 0
    assert rows[("model", "mystery-model")]["unpriced_calls"] == "1"
    assert rows[("model", "mystery-model")]["cost"] == ""  # unknown, not free
    assert rows[("model", "claude-3-5-sonnet-20241022")]["cache_write"] == "400"
    assert sum(int(r["calls"]) for (group, _), r in rows.items() if group == "model") == int(
        rows[("total", "all")]["calls"]
    )


def test_days_are_utc_days_of_the_events_and_can_be_filtered(two_days, cli) -> None:
    rows = _plain(cli, two_days.url)

    assert rows[("day", "2025-03-01")]["tokens_in"] == "100"
    assert rows[("day", "2025-03-02")]["tokens_in"] == "600"
    only_second = _plain(cli, two_days.url, "--since", "2025-03-02", "--until", "2025-03-02")
    assert {key for group, key in only_second if group == "day"} == {"2025-03-02"}
    assert only_second[("total", "all")]["tokens_in"] == "600"
    assert only_second[("model", "gpt-4o")]["calls"] == "1"
    only_first = _plain(cli, two_days.url, "--until", "2025-03-01")
    assert only_first[("total", "all")]["tokens_in"] == "100"


def test_table_has_a_model_and_a_day_section_each_with_a_total(two_days, cli) -> None:
    result = cli("stats", "--store", two_days.url, "--format", "table")

    lines = result.out.splitlines()
    assert lines[0].split()[:3] == ["model", "sessions", "calls"]
    day_header = next(i for i, line in enumerate(lines) if line.startswith("day (UTC)"))
    assert lines[day_header - 1] == ""
    assert [line.split()[0] for line in lines[2 : day_header - 1]] == ["gpt-4o", "gpt-4o-mini", "all"]
    assert [line.split()[0] for line in lines[day_header + 2 :]] == ["2025-03-01", "2025-03-02", "all"]


def test_json_report(two_days, cli) -> None:
    report = json.loads(cli("stats", "--store", two_days.url, "--format", "json").out)

    assert [r["key"] for r in report["by_day"]] == ["2025-03-01", "2025-03-02"]
    assert report["total"]["input_tokens"] == 700
    assert report["store"] == str(two_days.path)


def test_a_store_without_calls_says_so_in_a_table(tmp_path, cli) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = open_store(url)
    store.exists("nothing")
    store.close()

    result = cli("stats", "--store", url, "--format", "table")

    assert (result.code, result.out) == (0, "")
    assert "no recorded calls" in result.err
