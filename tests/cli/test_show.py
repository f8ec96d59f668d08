"""``sessionware show ID``: one session as a readable timeline."""

from __future__ import annotations

import asyncio
import json

from sessionware import SessionManager
from sessionware.core.store import open_store


def _timeline(cli, recorded, *extra: str) -> list[str]:
    result = cli("show", recorded.parent, "--store", recorded.url, "--format", "table", *extra)
    assert result.code == 0, result.err
    return result.out.splitlines()


def _event_line(lines: list[str], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if line.lstrip().startswith(f"#{seq} "))


def test_header_names_the_session_its_family_and_totals(recorded, cli) -> None:
    lines = _timeline(cli, recorded)

    header = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines[:8] if line.strip()}
    assert header["session"] == recorded.parent
    assert header["children"] == recorded.child
    assert header["prompt"] == "You plan trips in Europe."
    assert header["metadata"] == '{"app": "demo"}'
    assert str(recorded.path) in header["store"]
    assert "5 calls" in header["totals"] and "2,200 cached" in header["totals"]
    assert "2 errors" in header["totals"] and "1 page fault" in header["totals"]


def test_timeline_shows_tool_calls_usage_and_cost_per_call(recorded, cli) -> None:
    lines = _timeline(cli, recorded, "--max-chars", "0")
    at = _event_line(lines, 2)

    assert "assistant" in lines[at]
    assert '-> weather({"city": "Paris"}) [call_1]' in lines[at]
    call = " ".join(lines[at + 1 : at + 3])
    assert "gpt-4o" in call and "in 1,200 (1,000 cached)" in call and "out 20" in call
    assert "$0.00" in call and "850 ms" in call
    tool = lines[_event_line(lines, 3)]
    assert 'weather({"city": "Paris"}) [call_1] -> {"temp_c": 18}' in " ".join(
        lines[_event_line(lines, 3) : _event_line(lines, 3) + 2]
    )
    assert "tool call" in tool


def test_errors_branches_faults_and_compactions_are_visible(recorded, cli) -> None:
    lines = _timeline(cli, recorded)
    text = "\n".join(lines)

    error = lines[_event_line(lines, 5)]
    assert "error" in error and "RateLimitError (429): slow down" in error
    assert "continues after #2" in lines[_event_line(lines, 6)]
    # The events the edit replaced are still shown, marked with the branch that replaced them.
    assert "(superseded by the branch at #6)" in lines[_event_line(lines, 3)]
    assert "(superseded by the branch at #6)" in lines[_event_line(lines, 4)]
    assert "superseded" not in lines[_event_line(lines, 7)]
    assert "ERROR ValueError: no data for Lisbon" in lines[_event_line(lines, 8)]
    fault = _event_line(lines, 9)
    assert "page fault" in lines[fault] and 'page_fault({"page_id": "p1"}) -> Paris was 18 °C' in lines[fault]
    fault_call = " ".join(lines[fault + 1 : fault + 3])
    assert "hidden from the app" in fault_call
    assert "ttft 40 ms" in fault_call and "app asked 9,000 in" in fault_call
    compaction = _event_line(lines, 10)
    assert "compaction  Summary of turns 1-3" in lines[compaction]
    assert 'metadata {"evicted": 3}' in lines[compaction + 1]
    assert "anthropic/claude-3-5-sonnet-20241022" in text and "400 cache write" in text


def test_prompt_changes_and_content_parts_are_readable(recorded, cli) -> None:
    lines = _timeline(cli, recorded)

    assert lines[_event_line(lines, 12)].split(None, 3)[2:] == ["system", "You plan trips in Europe."]
    assert lines[_event_line(lines, 13)].endswith("user        And this photo? [image_url]")


def test_multiline_text_stays_under_its_event(recorded, cli) -> None:
    lines = _timeline(cli, recorded)
    at = _event_line(lines, 4)

    assert lines[at + 1].strip() == "It is 18 °C in Paris."
    assert lines[at + 2].strip() == "Pack a jacket."
    assert lines[at + 1].index("It") == lines[at + 2].index("Pack")


def test_max_chars_cuts_long_text_in_a_table(recorded, cli) -> None:
    lines = _timeline(cli, recorded, "--max-chars", "5")

    assert any("What'... (+23 chars)" in line for line in lines)


def test_plain_output_is_one_row_per_event_with_raw_figures(recorded, cli) -> None:
    result = cli("show", recorded.parent, "--store", recorded.url)

    header, *rows = result.out.splitlines()
    columns = header.split("\t")
    events = [dict(zip(columns, row.split("\t"), strict=True)) for row in rows]
    assert [int(e["seq"]) for e in events] == list(range(1, 14))
    first_call = events[1]
    assert (first_call["model"], first_call["tokens_in"], first_call["cached"], first_call["tokens_out"]) == (
        "gpt-4o",
        "1200",
        "1000",
        "20",
    )
    assert first_call["tool"] == 'weather({"city": "Paris"})'
    assert events[3]["text"] == "It is 18 °C in Paris.\\nPack a jacket."
    assert events[3]["superseded_by"] == "6"
    assert events[4]["error"] == "RateLimitError (429): slow down"
    assert events[7]["error"] == "ValueError: no data for Lisbon"


def test_plain_output_starts_with_the_system_prompt_a_session_was_created_with(tmp_path, cli) -> None:
    url = f"sqlite:///{tmp_path / 'prompt.db'}"

    async def record() -> str:
        sm = SessionManager(store=url, system_prompt="You are terse.")
        await sm.user_says("hi")
        await sm.ai_responds("yo", model="gpt-4o-mini")
        await sm.flush()
        return sm.session_id

    session_id = asyncio.run(record())
    header, *rows = cli("show", session_id, "--store", url).out.splitlines()
    events = [dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows]
    assert [(e["seq"], e["type"], e["role"], e["text"]) for e in events] == [
        ("0", "system_prompt", "system", "You are terse."),
        ("1", "message", "user", "hi"),
        ("2", "message", "assistant", "yo"),
    ]


def test_json_is_the_stored_session(recorded, cli) -> None:
    result = cli("show", recorded.parent, "--store", recorded.url, "--format", "json")

    shown = json.loads(result.out)
    store = open_store(recorded.url)
    stored = store.load(recorded.parent)
    store.close()
    cache = shown.pop("cache")
    assert shown == json.loads(stored.model_dump_json())
    assert cache["cache_read_tokens"] == stored.totals.usage.cache_read_tokens
    assert shown["children"] == [recorded.child]
