"""Procedural memory: logged automatically from executed calls, fixes detected with their argument
delta, per-tool patterns, the exact hint format, and rebuilt identically after a reload from SQLite."""

from __future__ import annotations

import re
from pathlib import Path

from tool_support import Calls, openai_reply

from sessionware import SessionManager
from sessionware.core.session.models import ErrorInfo
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend
from sessionware.core.tools import (
    BudgetGuard,
    CachePolicy,
    ProceduralMemory,
    ToolOutcome,
    ToolRecord,
    ToolRegistry,
    ToolRunner,
    ToolStatus,
)
from sessionware.core.tools.text import args_key


def record(
    seq: int,
    tool: str,
    arguments: dict[str, object],
    *,
    result: object = None,
    error: str | None = None,
    latency_ms: float = 10.0,
) -> ToolRecord:
    kind, _, message = (error or "").partition(": ")
    return ToolRecord(
        seq=seq,
        turn=1,
        call_id=f"call_{seq}",
        tool=tool,
        arguments=arguments,
        args_key=args_key(arguments),
        status=ToolStatus.ERROR if error else ToolStatus.SUCCESS,
        result=result,
        error=ErrorInfo(type=kind, message=message) if error else None,
        latency_ms=latency_ms,
    )


async def test_executed_calls_are_logged_and_a_fix_is_detected_with_its_delta(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    runner = ToolRunner(registry)
    await sm.user_says("Weather in Paris?")
    await runner.run(sm, openai_reply(("call_1", "weather", {"city": "Pariss"})))
    await runner.run(sm, openai_reply(("call_2", "weather", {"city": "Paris", "unit": "F"})))

    memory = await runner.memory(sm)
    failed, fixed = memory.recent("weather")
    assert (failed.outcome, failed.error_type, failed.fixed_by) == (
        ToolOutcome.FAILURE,
        "CityNotFound",
        "call_2",
    )
    assert failed.summary == "CityNotFound: unknown city 'Pariss'"
    assert (fixed.outcome, fixed.fix_for, fixed.summary) == (
        ToolOutcome.SUCCESS,
        "call_1",
        '{"city": "Paris", "temp": 70.7, "unit": "F"}',
    )
    assert fixed.delta is not None
    assert fixed.delta.describe() == 'add unit="F"; change city "Pariss" -> "Paris"'
    assert memory.fix_for("weather", "CityNotFound") == fixed.delta
    [fix] = memory.fixes("weather")
    assert (fix.failed_call_id, fix.fixed_call_id, fix.error_type) == ("call_1", "call_2", "CityNotFound")
    pattern = memory.pattern("weather")
    assert pattern is not None
    assert (pattern.calls, pattern.successes, pattern.failures, pattern.success_rate) == (2, 1, 1, 0.5)
    assert pattern.errors["CityNotFound"].count == 1 and pattern.errors["CityNotFound"].fixes == 1
    assert pattern.last_success_arguments == {"city": "Paris", "unit": "F"}
    assert pattern.avg_latency_ms is not None and pattern.avg_latency_ms > 0


def test_the_hint_block_has_the_documented_format() -> None:
    memory = ProceduralMemory()
    memory.observe(
        record(
            1,
            "convert",
            {"value": 3, "unit": "kelvin"},
            error="ValueError: unknown unit 'kelvin'",
            latency_ms=2,
        )
    )
    memory.observe(record(2, "convert", {"value": 3, "unit": "K"}, result=276.15, latency_ms=4))
    memory.observe(record(3, "convert", {"value": 5, "unit": "K"}, result=278.15, latency_ms=6.4))
    memory.observe(record(4, "search", {"query": "a very long query that goes on and on"}, result=["a", "b"]))
    assert memory.format_hints(["convert", "search", "never_called"]) == (
        "<procedural_memory>\n"
        '<tool name="convert" calls="3" success_rate="67%" avg_ms="4">\n'
        "  [✗] convert(value=3, unit=\"kelvin\") -> ValueError: unknown unit 'kelvin'  (fixed later)\n"
        '  [✓] convert(value=3, unit="K") -> 276.15  (fixed: change unit "kelvin" -> "K")\n'
        '  [✓] convert(value=5, unit="K") -> 278.15\n'
        '  error ValueError x1: unknown unit \'kelvin\' -> fix: change unit "kelvin" -> "K"\n'
        "</tool>\n"
        '<tool name="search" calls="1" success_rate="100%" avg_ms="10">\n'
        '  [✓] search(query="a very long query that …") -> ["a", "b"]\n'
        "</tool>\n"
        "</procedural_memory>"
    )
    assert memory.format_hints(["search"], max_recent=0).splitlines() == [
        "<procedural_memory>",
        '<tool name="search" calls="1" success_rate="100%" avg_ms="10">',
        "</tool>",
        "</procedural_memory>",
    ]


def test_without_history_there_is_no_block() -> None:
    memory = ProceduralMemory()
    assert memory.format_hints() == "" and memory.format_hints(["add"]) == ""
    memory.observe(record(1, "add", {"a": 1, "b": 2}, result=3))
    assert memory.format_hints(["divide"]) == ""
    assert memory.format_hints().startswith('<procedural_memory>\n<tool name="add"')


def test_a_success_with_the_same_arguments_is_not_a_fix() -> None:
    memory = ProceduralMemory()
    memory.observe(record(1, "fetch", {"url": "u"}, error="ConnectionError: reset"))
    entry = memory.observe(record(2, "fetch", {"url": "u"}, result="page"))
    assert entry is not None and entry.fix_for is None
    assert memory.fixes() == [] and memory.fix_for("fetch", "ConnectionError") is None
    assert "no fix known" in memory.format_hints()


def test_only_the_latest_unfixed_failure_of_the_same_tool_is_linked() -> None:
    memory = ProceduralMemory(fix_window=3)
    memory.observe(record(1, "a", {"x": 1}, error="E: one"))
    memory.observe(record(2, "b", {"x": 1}, error="E: other tool"))
    memory.observe(record(3, "a", {"x": 2}, result=1))  # fixes call 1, not b's failure
    memory.observe(record(4, "a", {"x": 3}, result=2))  # a success after a success fixes nothing
    assert [(f.tool, f.failed_call_id, f.fixed_call_id) for f in memory.fixes()] == [
        ("a", "call_1", "call_3")
    ]
    for seq in range(5, 9):
        memory.observe(record(seq, "c", {"n": seq}, result=seq))
    memory.observe(record(9, "b", {"x": 2}, result=0))  # b's failure fell out of the 3-call window
    assert len(memory.fixes()) == 1
    stats = memory.stats()
    assert (stats.total_calls, stats.successes, stats.failures, stats.fixes, stats.tools) == (9, 7, 2, 1, 3)
    assert memory.tools()[:2] == ["b", "c"]


async def test_blocked_and_cached_calls_are_not_executions(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, guards=[BudgetGuard(max_calls=2)], cache=CachePolicy())
    sm = SessionManager(store="memory://")
    await sm.user_says("weather")
    await runner.run(
        sm,
        openai_reply(("c1", "weather", {"city": "Oslo"})),
    )
    await runner.run(
        sm, openai_reply(("c2", "weather", {"city": "Oslo"}), ("c3", "weather", {"city": "Paris"}))
    )
    memory = await runner.memory(sm)
    assert calls["weather"] == 1
    pattern = memory.pattern("weather")
    assert pattern is not None and pattern.calls == 1


async def test_calls_logged_with_tool_used_teach_the_memory_too() -> None:
    registry = ToolRegistry()
    runner = ToolRunner(registry)
    sm = SessionManager(store="memory://")
    await sm.user_says("book a table")
    memory = await runner.memory(sm)  # attached before, fed by every later event
    await sm.tool_used("book", {"time": "25:00"}, None, error=ValueError("invalid time"), call_id="x1")
    await sm.tool_used("book", '{"time": "20:00"}', {"ok": True}, call_id="x2")
    [fix] = memory.fixes("book")
    assert fix.delta.describe() == 'change time "25:00" -> "20:00"'
    assert fix.error_type == "ValueError"


async def test_the_memory_is_rebuilt_identically_after_a_reload_from_sqlite(
    registry: ToolRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "memory.db"
    store = Store(SQLiteBackend(path))
    sm = SessionManager("procedural", store=store)
    runner = ToolRunner(registry)
    await sm.user_says("Convert and compute: weather in Pariss, then 37 x 41 and its root")
    await runner.run(
        sm, openai_reply(("c1", "weather", {"city": "Pariss"}), ("c2", "multiply", {"a": 37, "b": 41}))
    )
    await runner.run(sm, openai_reply(("c3", "weather", {"city": "Paris"}), ("c4", "sqrt", {"x": "$v1"})))
    hints = await runner.hints(sm)
    await sm.flush()
    store.close()

    fresh = Store(SQLiteBackend(path))
    try:
        again = await SessionManager.load("procedural", store=fresh)
        other_runner = ToolRunner(registry)  # nothing carried over in the runner
        assert await other_runner.hints(again) == hints
        memory = await other_runner.memory(again)
        assert memory.fix_for("weather", "CityNotFound") is not None
        # The bindings came back too: $v1 still means 1517 for the next call.
        done = await other_runner.run(again, openai_reply(("c5", "add", {"a": "$v1", "b": "$v2"})))
        assert done.results[0].result == 1517 + 1517**0.5
    finally:
        fresh.close()
    assert "$v1 = 1517  # multiply(a=37, b=41)" in hints
    assert re.search(r'<tool name="weather" calls="2" success_rate="50%" avg_ms="\d+">', hints)


async def test_runner_hints_join_procedural_memory_and_bound_values(registry: ToolRegistry) -> None:
    runner = ToolRunner(registry)
    assert await runner.hints(None) == ""
    await runner.run(None, openai_reply(("c1", "add", {"a": 2, "b": 2})))
    hints = await runner.hints(None, ["add"])
    procedural, values = hints.split("\n\n")
    assert procedural.startswith("<procedural_memory>") and procedural.endswith("</procedural_memory>")
    assert values == (
        "<tool_values>\n"
        'Reference these results in tool arguments as "$vN".\n'
        "$v1 = 4.0  # add(a=2, b=2)\n"
        "</tool_values>"
    )
