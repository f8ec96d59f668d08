"""Guards through the runner: sane defaults, budgets where 0 means unlimited, runaway detection,
typed ``$vN`` bindings, ungrounded numbers, and blocks that reach the model as results."""

from __future__ import annotations

import pytest
from tool_support import Calls, check_chat, openai_reply

from sessionware import InvalidSessionOperation, SessionManager
from sessionware.core.tools import (
    BudgetGuard,
    Enforcement,
    GuardChain,
    GuardContext,
    GuardDecision,
    RunawayGuard,
    ToolInvocation,
    ToolRegistry,
    ToolRunner,
    ToolScope,
    ToolStatus,
    UngroundedGuard,
    default_guards,
)
from sessionware.core.tools.guards import BindingGuard


async def turn(sm: SessionManager, text: str = "go") -> None:
    await sm.user_says(text)


async def test_default_guards_let_ordinary_use_through(registry: ToolRegistry, calls: Calls) -> None:
    # The seed's defaults blocked every ordinary tool ("called 0 times (limit: 0)").
    sm = SessionManager(store="memory://")
    runner = ToolRunner(registry)
    await turn(sm, "Weather in Paris and Oslo, a few notes, and 37 x 41")
    for i in range(12):
        city = "Paris" if i % 2 else "Oslo"
        done = await runner.run(
            sm,
            openai_reply(
                (f"w{i}", "weather", {"city": city, "unit": "C" if i < 6 else "F"}),
                (f"n{i}", "note", {"text": f"n{i}"}),
            ),
        )
        assert [r.status for r in done.results] == [ToolStatus.SUCCESS] * 2, done.results
    done = await runner.run(sm, openai_reply(("m", "multiply", {"a": 37, "b": 41})))
    assert done.results[0].ok and done.results[0].warnings == ()
    assert calls["weather"] == 12 and calls["note"] == 12


async def test_a_blocked_call_is_a_result_for_the_model_and_the_tool_does_not_run(
    registry: ToolRegistry, calls: Calls
) -> None:
    sm = SessionManager(store="memory://")
    runner = ToolRunner(registry, guards=[BudgetGuard(max_calls=2)])
    await turn(sm)
    done = await runner.run(
        sm,
        openai_reply(
            ("c1", "note", {"text": "a"}), ("c2", "note", {"text": "b"}), ("c3", "note", {"text": "c"})
        ),
    )
    blocked = done.results[2]
    assert (blocked.status, blocked.guard, blocked.attempts) == (ToolStatus.BLOCKED, "budget", 0)
    assert blocked.content == (
        "Error: Tool budget exhausted: 2 of 2 calls used this turn. Answer with the results you already have."
    )
    assert calls["note"] == 2
    assert done.results[1].warnings == ("budget: last tool call allowed this turn (2 max)",)
    event = (await sm.get_events())[-1]
    assert (event.tool_call_id, event.metadata["tool_status"], event.metadata["blocked_by"]) == (
        "c3",
        "blocked",
        "budget",
    )
    check_chat(await sm.get_messages_for_llm())


@pytest.mark.parametrize("cap", [0, None])
async def test_a_cap_of_zero_or_none_means_unlimited(registry: ToolRegistry, cap: int | None) -> None:
    runner = ToolRunner(registry, guards=[BudgetGuard(max_calls=cap, per_tool=cap)])
    sm = SessionManager(store="memory://")
    await turn(sm)
    done = await runner.run(sm, openai_reply(*[(f"c{i}", "note", {"text": str(i)}) for i in range(60)]))
    assert all(r.ok for r in done.results) and len(done.results) == 60


async def test_per_tool_caps_apply_to_their_tool_only(registry: ToolRegistry) -> None:
    runner = ToolRunner(registry, guards=[BudgetGuard(max_calls=None, per_tool={"note": 1, "add": 0})])
    sm = SessionManager(store="memory://")
    await turn(sm)
    done = await runner.run(
        sm,
        openai_reply(
            ("c1", "note", {"text": "a"}),
            ("c2", "note", {"text": "b"}),
            *[(f"a{i}", "add", {"a": i, "b": 1}) for i in range(5)],
        ),
    )
    assert [r.status.value for r in done.results] == ["success", "blocked"] + ["success"] * 5
    assert (
        done.results[1].content
        == "Error: `note` reached its limit of 1 calls this turn. Use its earlier results or another tool."
    )


async def test_a_turn_budget_resets_at_the_next_user_message_and_a_session_budget_does_not(
    registry: ToolRegistry,
) -> None:
    per_turn = ToolRunner(registry, guards=[BudgetGuard(max_calls=1)])
    per_session = ToolRunner(registry, guards=[BudgetGuard(max_calls=1, scope=ToolScope.SESSION)])
    for runner, second_turn in ((per_turn, ToolStatus.SUCCESS), (per_session, ToolStatus.BLOCKED)):
        sm = SessionManager(store="memory://")
        await turn(sm, "first")
        assert (await runner.run(sm, openai_reply(("c1", "note", {"text": "a"})))).results[0].ok
        assert (await runner.run(sm, openai_reply(("c2", "note", {"text": "b"})))).results[
            0
        ].status is ToolStatus.BLOCKED
        await turn(sm, "second")
        done = await runner.run(sm, openai_reply(("c3", "note", {"text": "c"})))
        assert done.results[0].status is second_turn


async def test_without_a_session_each_message_is_a_turn_and_the_budget_never_runs_out(
    registry: ToolRegistry, calls: Calls
) -> None:
    # A long-lived runner used without sessions blocked every call after its 50th.
    runner = ToolRunner(registry)
    for i in range(60):
        done = await runner.run(None, openai_reply((f"c{i}", "note", {"text": f"n{i}"})))
        assert done.results[0].status is ToolStatus.SUCCESS, (i, done.results[0].error)
    # Within one message the per-turn budget still holds.
    capped = ToolRunner(registry, guards=[BudgetGuard(max_calls=2)])
    many = openai_reply(*((f"m{i}", "note", {"text": f"m{i}"}) for i in range(3)))
    statuses = [r.status for r in (await capped.run(None, many)).results]
    assert statuses == [ToolStatus.SUCCESS, ToolStatus.SUCCESS, ToolStatus.BLOCKED]
    assert calls["note"] == 62


def test_negative_caps_are_refused() -> None:
    with pytest.raises(InvalidSessionOperation, match="max_calls must be >= 0"):
        BudgetGuard(max_calls=-1)
    with pytest.raises(InvalidSessionOperation, match=r"per_tool\['x'\]"):
        BudgetGuard(per_tool={"x": -2})


async def test_the_same_call_repeated_is_stopped_with_the_earlier_result(
    registry: ToolRegistry, calls: Calls
) -> None:
    runner = ToolRunner(registry, guards=[RunawayGuard(max_identical_calls=2)])
    sm = SessionManager(store="memory://")
    await turn(sm, "weather in Paris")
    statuses = []
    for i in range(3):
        done = await runner.run(sm, openai_reply((f"c{i}", "weather", {"city": "Paris"})))
        statuses.append(done.results[0].status)
    assert statuses == [ToolStatus.SUCCESS, ToolStatus.SUCCESS, ToolStatus.BLOCKED]
    assert done.results[0].content == (
        "Error: `weather` was already called 2 times with these arguments this turn. The last result was: "
        '{"city": "Paris", "temp": 21.5, "unit": "C"}. Use the earlier result instead of calling it again.'
    )
    assert calls["weather"] == 2
    # Different arguments, or a new turn, are not repeats.
    assert (await runner.run(sm, openai_reply(("d", "weather", {"city": "Oslo"})))).results[0].ok
    await turn(sm, "again")
    assert (await runner.run(sm, openai_reply(("e", "weather", {"city": "Paris"})))).results[0].ok


async def test_identical_calls_in_one_message_count_as_repeats(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, guards=[RunawayGuard(max_identical_calls=2)])
    done = await runner.run(None, openai_reply(*[(f"c{i}", "note", {"text": "same"}) for i in range(3)]))
    assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.SUCCESS, ToolStatus.BLOCKED]
    assert calls["note"] == 2


async def test_a_failure_loop_is_stopped(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, guards=[RunawayGuard(max_consecutive_failures=3)])
    sm = SessionManager(store="memory://")
    await turn(sm)
    cities = ["Atlantis", "Eldorado", "Avalon", "Lemuria"]
    results = [(await runner.run(sm, openai_reply((c, "weather", {"city": c})))).results[0] for c in cities]
    assert [r.status for r in results] == [ToolStatus.ERROR] * 3 + [ToolStatus.BLOCKED]
    assert "failed 3 times in a row this turn (last error: unknown city 'Avalon')" in results[3].content
    assert calls["weather"] == 3


async def test_no_progress_warns_by_default_and_can_block(registry: ToolRegistry) -> None:
    # New calls are progress even when they answer "saved"; repeats and failures are not.
    cities = ["Paris", "Oslo", "Paris", "Oslo", "Atlantis", "Paris"]
    for mode, last in ((Enforcement.WARN, ToolStatus.SUCCESS), (Enforcement.BLOCK, ToolStatus.BLOCKED)):
        runner = ToolRunner(registry, guards=[RunawayGuard(no_progress_window=3, no_progress=mode)])
        sm = SessionManager(store="memory://")
        await turn(sm)
        notes = [
            (await runner.run(sm, openai_reply((f"n{i}", "note", {"text": str(i)})))).results[0]
            for i in range(4)
        ]
        assert all(r.ok and not r.warnings for r in notes)
        results = [
            (await runner.run(sm, openai_reply((c + str(i), "weather", {"city": c})))).results[0]
            for i, c in enumerate(cities)
        ]
        assert [r.warnings for r in results[:5]] == [()] * 5
        assert results[-1].status is last
        if mode is Enforcement.WARN:
            assert results[-1].warnings == (
                "runaway: the last 3 tool calls brought no new result; consider answering now",
            )


async def test_a_bound_value_keeps_its_type_when_substituted(registry: ToolRegistry, calls: Calls) -> None:
    sm = SessionManager(store="memory://")
    runner = ToolRunner(registry)
    await turn(sm, "What is (2.5 + 1.5) x 41 and 37 x 41?")
    first = await runner.run(
        sm, openai_reply(("c1", "add", {"a": 2.5, "b": 1.5}), ("c2", "multiply", {"a": 37, "b": 41}))
    )
    assert [(r.binding, r.result) for r in first.results] == [("v1", 4.0), ("v2", 1517)]
    second = await runner.run(
        sm, openai_reply(("c3", "add", {"a": "$v1", "b": "${v2}"}), ("c4", "multiply", {"a": "$v2", "b": 2}))
    )
    assert [r.status for r in second.results] == [ToolStatus.SUCCESS, ToolStatus.SUCCESS]
    assert calls.seen[-2:] == [("add", {"a": 4.0, "b": 1517.0}), ("multiply", {"a": 1517, "b": 2})]
    assert isinstance(calls.seen[-1][1]["a"], int)
    add_event, multiply_event = (await sm.get_events())[-2:]
    assert add_event.tool_arguments == {"a": 4.0, "b": 1517}  # logged as executed, types kept
    assert type(add_event.tool_arguments["a"]) is float and type(add_event.tool_arguments["b"]) is int
    assert multiply_event.tool_arguments == {"a": 1517, "b": 2}
    assert second.results[1].result == 3034


def test_references_inside_text_and_nested_values_are_resolved() -> None:
    from sessionware.core.tools import Binding, ToolLedger

    ledger = ToolLedger()
    ledger.bindings.add(Binding(id="v1", value=0.5, tool="half", arguments={"x": 1}), "{}")
    call = ToolInvocation(
        id="c", name="plot", arguments={"label": "p=$v1", "points": [["$v1", 2]], "opts": {"k": "$v1"}}
    )
    decision = BindingGuard().check(call, GuardContext(ledger))
    assert decision.arguments == {"label": "p=0.5", "points": [[0.5, 2]], "opts": {"k": 0.5}}
    assert decision.reason == "resolved $v1"


async def test_an_unknown_reference_blocks_the_call(registry: ToolRegistry, calls: Calls) -> None:
    done = await ToolRunner(registry).run(None, openai_reply(("c1", "add", {"a": "$v7", "b": 1})))
    assert done.results[0].status is ToolStatus.BLOCKED
    assert done.results[0].content == (
        "Error: Unknown value reference $v7 in the arguments of `add`. Available values: none yet."
    )
    assert calls["add"] == 0


async def test_ungrounded_numbers_warn_by_default(registry: ToolRegistry) -> None:
    sm = SessionManager(store="memory://")
    runner = ToolRunner(registry)
    await turn(sm, "Divide 1517 by 41")
    grounded = await runner.run(sm, openai_reply(("c1", "divide", {"a": 1517, "b": 41})))
    assert grounded.results[0].warnings == ()
    invented = await runner.run(sm, openai_reply(("c2", "divide", {"a": 37.5, "b": 3})))
    assert invented.results[0].ok
    assert invented.results[0].warnings == (
        "ungrounded: `divide` got numbers that appear nowhere earlier in the conversation (a=37.5). "
        "Pass values from the user or from earlier tool results; a result can be referenced as $vN.",
    )
    event = (await sm.get_events())[-1]
    assert event.metadata["guard_warnings"] == list(invented.results[0].warnings)
    # A number from an earlier result is grounded (37.0 = 1517 / 41).
    from_result = await runner.run(sm, openai_reply(("c3", "multiply", {"a": 37, "b": 41})))
    assert from_result.results[0].warnings == ()


async def test_ungrounded_numbers_can_be_blocked(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, guards=[BindingGuard(), UngroundedGuard(mode=Enforcement.BLOCK)])
    sm = SessionManager(store="memory://", system_prompt="The tax rate is 0.19.")
    await turn(sm, "tax on 250?")
    done = await runner.run(
        sm,
        openai_reply(
            ("c1", "multiply", {"a": 250, "b": 3}),  # small integers are not checked
            ("c2", "add", {"a": 250, "b": 0.19}),  # from the user and the system prompt
            ("c3", "add", {"a": 250, "b": "47.5"}),  # a numeric string is still a number
        ),
    )
    assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.SUCCESS, ToolStatus.BLOCKED]
    assert calls["add"] == 1


class OnlyPositive:
    """A custom guard: repairs negative amounts, blocks zero."""

    name = "positive"

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        a = call.arguments.get("a")
        if a == 0:
            return GuardDecision.block(self.name, "a must not be zero")
        if isinstance(a, int | float) and a < 0:
            return GuardDecision.repair(self.name, "negated a", {**call.arguments, "a": -a})
        return GuardDecision.allow(self.name)


class Broken:
    name = "broken"

    def check(self, call: ToolInvocation, context: GuardContext) -> GuardDecision:
        raise RuntimeError("bug in a guard")


async def test_custom_guards_repair_and_block_and_a_broken_guard_only_warns(
    registry: ToolRegistry, calls: Calls
) -> None:
    runner = ToolRunner(registry, guards=GuardChain([Broken(), OnlyPositive()]))
    done = await runner.run(
        None, openai_reply(("c1", "add", {"a": -2, "b": 1}), ("c2", "add", {"a": 0, "b": 1}))
    )
    repaired, blocked = done.results
    assert (repaired.result, repaired.arguments) == (3.0, {"a": 2, "b": 1})
    assert repaired.warnings == ("broken: the guard failed (RuntimeError: bug in a guard)",)
    assert (blocked.status, blocked.guard, blocked.content) == (
        ToolStatus.BLOCKED,
        "positive",
        "Error: a must not be zero",
    )
    assert calls["add"] == 1


async def test_no_guards_at_all(registry: ToolRegistry) -> None:
    done = await ToolRunner(registry, guards=()).run(None, openai_reply(("c1", "add", {"a": "$v1", "b": 1})))
    assert done.results[0].status is ToolStatus.INVALID_ARGUMENTS  # "$v1" reached validation untouched


def test_each_call_gets_a_fresh_default_chain() -> None:
    first, second = default_guards(), default_guards()
    assert first is not second
    assert [type(g).__name__ for g in first] == [
        "BindingGuard",
        "BudgetGuard",
        "RunawayGuard",
        "UngroundedGuard",
    ]
