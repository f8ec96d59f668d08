"""Procedural memory learns from every tool run a session sees: tools the app runs itself
(the assistant's tool call, then the app's tool message) count like the runner's own."""

from __future__ import annotations

import json

from sessionware import EventSource, EventType, Role, SessionManager
from sessionware.core.session.state import SessionState
from sessionware.core.tools import ToolStatus, ledger_for


async def asked(sm: SessionManager, call_id: str, name: str, arguments: dict[str, object]) -> None:
    calls = [{"id": call_id, "function": {"name": name, "arguments": json.dumps(arguments)}}]
    await sm.ai_responds(None, model="gpt-4o-mini", tool_calls=calls)


def app_answered(state: SessionState, call_id: str, content: object) -> None:
    """The tool message as a wrapped client records it from the app's next request."""
    state.record(EventType.MESSAGE, EventSource.USER, role=Role.TOOL, content=content, tool_call_id=call_id)


async def test_a_fix_of_an_app_run_tool_is_learned_with_its_argument_delta() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Weather in Paris?")
    await asked(sm, "call_1", "get_weather", {"city": "Pariss"})
    app_answered(sm.state, "call_1", "Error: unknown city 'Pariss'")
    await asked(sm, "call_2", "get_weather", {"city": "Paris"})
    app_answered(sm.state, "call_2", json.dumps({"temp_c": 21}))

    memory = ledger_for(sm.state).memory
    failed, fixed = memory.recent("get_weather")
    assert (failed.outcome.value, fixed.outcome.value) == ("failure", "success")
    assert memory.fix_for("get_weather", "ToolError").describe() == 'change city "Pariss" -> "Paris"'
    hints = memory.format_hints()
    assert "[✗] get_weather(city=\"Pariss\") -> ToolError: unknown city 'Pariss'  (fixed later)" in hints
    assert '-> fix: change city "Pariss" -> "Paris"' in hints


async def test_app_run_tools_count_once_and_feed_the_guards_counts() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Add things")
    await asked(sm, "call_1", "add", {"a": 1, "b": 2})
    app_answered(sm.state, "call_1", "3")
    app_answered(sm.state, "call_1", "3")  # a duplicate answer is not a second run
    app_answered(sm.state, "call_9", "orphan")  # no call asked for it: not a run
    await sm.tool_used("add", {"a": 3, "b": 4}, 7, call_id="call_2")

    ledger = ledger_for(sm.state)
    assert [(r.call_id, r.status) for r in ledger.records] == [
        ("call_1", ToolStatus.SUCCESS),
        ("call_2", ToolStatus.SUCCESS),
    ]
    assert ledger.turn_counts["add"] == 2 and ledger.is_grounded(3)


async def test_typed_and_json_errors_of_app_tools_read_as_failures() -> None:
    sm = SessionManager(store="memory://")
    await sm.user_says("Try")
    for i, content in enumerate(
        ["ZeroDivisionError: division by zero", json.dumps({"error": "quota exceeded"}), "all fine"]
    ):
        await asked(sm, f"c{i}", "calc", {"i": i})
        app_answered(sm.state, f"c{i}", content)
    records = list(ledger_for(sm.state).records)
    assert [(r.status, r.error.type if r.error else None) for r in records] == [
        (ToolStatus.ERROR, "ZeroDivisionError"),
        (ToolStatus.ERROR, "ToolError"),
        (ToolStatus.SUCCESS, None),
    ]
    assert records[1].error is not None and records[1].error.message == "quota exceeded"


async def test_session_hints_fit_their_budget_and_are_empty_without_tool_history() -> None:
    from sessionware.core.tools.procedural.context import has_tool_history, session_hints

    def count(text: str) -> int:
        return len(text) // 4

    sm = SessionManager(store="memory://")
    await sm.user_says("Hello")
    assert not has_tool_history(sm.state) and session_hints(sm.state, 500, count) == ""
    for i, tool in enumerate(("get_weather", "convert", "search")):
        await asked(sm, f"f{i}", tool, {"q": "x" * 40})
        app_answered(sm.state, f"f{i}", "Error: bad query " + "y" * 60)
        await asked(sm, f"s{i}", tool, {"q": "ok"})
        app_answered(sm.state, f"s{i}", json.dumps({"answer": i}))
    full = session_hints(sm.state, 10_000, count)
    assert has_tool_history(sm.state) and full.count("<tool name=") == 3
    small = session_hints(sm.state, count(full) // 3, count)
    assert 0 < count(small) <= count(full) // 3
    assert '<tool name="search"' in small  # the most recently used tool is kept first
    assert session_hints(sm.state, 5, count) == ""
