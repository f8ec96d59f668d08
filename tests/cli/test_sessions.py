"""``sessionware sessions``: the list of recorded sessions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from sessionware.core.store import open_store


def test_piped_output_is_one_tab_separated_line_per_session_newest_first(recorded, cli) -> None:
    result = cli("sessions", "--store", recorded.url)

    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split("\t") == [
        "id",
        "started",
        "turns",
        "tokens_in",
        "tokens_out",
        "cost",
        "model",
        "parent",
        "calls",
        "unpriced_calls",
        "cache_read_tokens",
        "cache_read_share",
        "cache_saved",
    ]
    by_id = {row.split("\t")[0]: row.split("\t") for row in rows}
    assert [row.split("\t")[0] for row in rows] == [recorded.child, recorded.parent]
    parent = by_id[recorded.parent]
    # Two user turns; every call's input and output as the providers reported them.
    assert parent[2:5] == ["3", str(1200 + 1300 + 300 + 500), str(20 + 12 + 5 + 8)]
    assert parent[6].split(",")[0] == "gpt-4o"
    assert set(parent[6].split(",")) == {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022"}
    assert parent[7] == ""
    assert by_id[recorded.child][7] == recorded.parent


def test_plain_cost_matches_the_store_totals(recorded, cli) -> None:
    store = open_store(recorded.url)
    expected = {i.id: i.totals for i in store.list_sessions()}
    store.close()

    rows = cli("sessions", "--store", recorded.url, "--no-header").out.splitlines()

    by_id = {}
    for row in rows:
        cells = row.split("\t")
        by_id[cells[0]] = cells
        totals = expected[cells[0]]
        assert (int(cells[8]), int(cells[9])) == (totals.llm_calls, totals.unpriced_calls)
    parent = by_id[recorded.parent]
    assert Decimal(parent[5]) == expected[recorded.parent].cost > 0
    # The child's only call has no known price: its cost is unknown, not free.
    assert by_id[recorded.child][5] == "" and by_id[recorded.child][9] == "1"


def test_forced_table_aligns_columns_and_marks_partly_priced_costs(recorded, cli) -> None:
    result = cli("sessions", "--store", recorded.url, "--format", "table")

    lines = result.out.splitlines()
    assert lines[0].split() == [
        "id",
        "started",
        "(UTC)",
        "turns",
        "tokens",
        "in",
        "tokens",
        "out",
        "cost",
        "cached",
        "saved",
        "model",
        "parent",
    ]
    assert set(lines[1]) == {"-", " "}
    parent_line = next(line for line in lines if line.startswith(recorded.parent + " "))
    child_line = next(line for line in lines if line.startswith(recorded.child + " "))
    assert "3,300" in parent_line  # thousands separators in a table
    assert "+" in parent_line.split("$")[1].split()[0]  # a lower bound: one call had no price
    assert "gpt-4o +2" in parent_line
    assert " ? " in child_line  # no call of the child had a known price
    # Right-aligned numbers end in the same column.
    assert parent_line.index("3,300") + 5 == child_line.index(" 10 ") + 3


def test_json_lists_each_session_header_with_totals(recorded, cli) -> None:
    result = cli("sessions", "--store", recorded.url, "--format", "json")

    sessions = json.loads(result.out)
    assert [s["id"] for s in sessions] == [recorded.child, recorded.parent]
    parent = sessions[1]
    assert parent["system_prompt"] == "You plan trips in Europe."
    assert parent["totals"]["usage"]["cache_read_tokens"] == 2200
    assert parent["totals"]["errors"] == 2  # the failed call and the failed weather tool


def test_limit_and_parent_filter_the_list(recorded, cli) -> None:
    newest = cli("sessions", "--store", recorded.url, "--limit", "1", "--no-header").out.splitlines()
    children = cli(
        "sessions", "--store", recorded.url, "--parent", recorded.parent, "--no-header"
    ).out.splitlines()

    assert [r.split("\t")[0] for r in newest] == [recorded.child]
    assert [r.split("\t")[0] for r in children] == [recorded.child]


def test_an_empty_store_prints_only_the_header_when_piped_and_a_note_in_a_table(tmp_path: Path, cli) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = open_store(url)
    assert not store.exists("anything")  # the file now exists, with no session in it
    store.close()
    plain = cli("sessions", "--store", url)
    table = cli("sessions", "--store", url, "--format", "table")

    assert (plain.code, plain.out.splitlines()) == (0, [plain.out.splitlines()[0]])
    assert (table.code, table.out) == (0, "")
    assert "no sessions in" in table.err


def test_tabs_and_newlines_in_fields_are_escaped_in_plain_output(recorded, cli) -> None:
    rows = cli("show", recorded.child, "--store", recorded.url, "--no-header").out.splitlines()

    assert len(rows) == 2  # one line per event even though the user text holds a tab
    assert rows[0].split("\t")[-1] == "Find a hotel\\tnear the station"
