"""The result cache: off by default, scoped to a turn or the session, with a TTL, per session,
and never serving an error."""

from __future__ import annotations

from tool_support import Calls, build_registry, openai_reply

from sessionware import EventType, SessionManager
from sessionware.core.tools import CachePolicy, ToolRegistry, ToolRunner, ToolScope, ToolStatus


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def weather(call_id: str, city: str = "Paris") -> dict[str, object]:
    return openai_reply((call_id, "weather", {"city": city}))


async def test_without_a_policy_nothing_is_cached(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry)
    sm = SessionManager(store="memory://")
    await sm.user_says("weather")
    for i in range(2):
        assert not (await runner.run(sm, weather(f"c{i}"))).results[0].cached
    assert calls["weather"] == 2


async def test_an_identical_call_is_answered_from_the_cache_under_its_own_call_id(
    registry: ToolRegistry, calls: Calls
) -> None:
    runner = ToolRunner(registry, cache=CachePolicy())
    sm = SessionManager(store="memory://")
    await sm.user_says("weather")
    first = (await runner.run(sm, weather("c1"))).results[0]
    second = (await runner.run(sm, weather("c2"))).results[0]
    assert calls["weather"] == 1
    assert (second.call_id, second.cached, second.attempts, second.result) == ("c2", True, 0, first.result)
    events = [e for e in await sm.get_events() if e.type is EventType.TOOL_CALL]
    assert [(e.tool_call_id, e.metadata["cached"]) for e in events] == [("c1", False), ("c2", True)]
    assert (await sm.get_stats()).tool_calls == 2


async def test_errors_are_never_cached(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, cache=CachePolicy(scope=ToolScope.SESSION, ttl_s=None))
    sm = SessionManager(store="memory://")
    await sm.user_says("weather in Atlantis")
    for i in range(3):
        result = (await runner.run(sm, weather(f"c{i}", "Atlantis"))).results[0]
        assert (result.status, result.cached) == (ToolStatus.ERROR, False)
    assert calls["weather"] == 3


async def test_entries_expire_after_their_ttl() -> None:
    calls = Calls()
    clock = Clock()
    runner = ToolRunner(build_registry(calls), cache=CachePolicy(ttl_s=60), clock=clock)
    sm = SessionManager(store="memory://")
    await sm.user_says("weather")
    await runner.run(sm, weather("c1"))
    clock.now += 59
    assert (await runner.run(sm, weather("c2"))).results[0].cached
    clock.now += 1
    assert not (await runner.run(sm, weather("c3"))).results[0].cached
    assert calls["weather"] == 2


async def test_a_turn_scoped_entry_ends_with_the_turn_and_a_session_scoped_one_does_not(
    registry: ToolRegistry, calls: Calls
) -> None:
    for scope, executions in ((ToolScope.TURN, 2), (ToolScope.SESSION, 1)):
        calls.counts.clear()
        runner = ToolRunner(registry, cache=CachePolicy(scope=scope))
        sm = SessionManager(store="memory://")
        await sm.user_says("weather?")
        await runner.run(sm, weather("c1"))
        await sm.user_says("and now?")
        await runner.run(sm, weather("c2"))
        assert calls["weather"] == executions, scope


async def test_each_session_has_its_own_cache(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, cache=CachePolicy(scope=ToolScope.SESSION))
    for name in ("a", "b"):
        sm = SessionManager(store="memory://")
        await sm.user_says(f"weather for {name}")
        await runner.run(sm, weather(f"{name}1"))
        await runner.run(sm, weather(f"{name}2"))
    assert calls["weather"] == 2


async def test_tools_marked_not_cacheable_always_run() -> None:
    registry = ToolRegistry()
    ticks: list[int] = []

    @registry.tool(cacheable=False)
    def now() -> int:
        ticks.append(1)
        return len(ticks)

    runner = ToolRunner(registry, cache=CachePolicy(scope=ToolScope.SESSION))
    results = [(await runner.run(None, openai_reply((f"c{i}", "now", {})))).results[0] for i in range(3)]
    assert [r.result for r in results] == [1, 2, 3]
    assert not any(r.cached for r in results)


async def test_the_cache_keeps_at_most_max_entries(registry: ToolRegistry, calls: Calls) -> None:
    runner = ToolRunner(registry, cache=CachePolicy(max_entries=2), guards=())
    for city in ("Paris", "Oslo", "Paris", "Oslo"):
        await runner.run(None, weather(city, city))
    assert calls["weather"] == 2  # both fit
    for i, city in enumerate(("Paris", "Oslo")):
        await runner.run(None, openai_reply((f"n{i}", "note", {"text": city})))
    await runner.run(None, weather("again", "Paris"))  # evicted by the two notes
    assert calls["weather"] == 3
