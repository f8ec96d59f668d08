"""Managed mode's memory block carries the session's procedural hints: on once the session
has tool history, inside the budget, and in the cache-stable prefix."""

from __future__ import annotations

import json
from typing import Any

from sessionware import ContextPolicy, SessionManager


def block_of(messages: list[dict[str, Any]]) -> str:
    """The memory block's text (the message with the VM rules)."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and "<VM:RULES>" in content:
            return content
    raise AssertionError("no memory block in the built context")


async def weather_lesson(sm: SessionManager) -> None:
    """A failed call, then the fix, the way a wrapped app's own tool run is recorded."""
    await sm.user_says("What is the weather in Paris?")
    for call_id, city, outcome in (("c1", "Pariss", "unknown city"), ("c2", "Paris", None)):
        calls = [
            {"id": call_id, "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
        ]
        await sm.ai_responds(None, model="gpt-4o-mini", tool_calls=calls)
        if outcome is None:
            await sm.tool_used("get_weather", {"city": city}, {"temp_c": 21}, call_id=call_id)
        else:
            await sm.tool_used(
                "get_weather", {"city": city}, None, error=LookupError(outcome), call_id=call_id
            )
    await sm.ai_responds("21 °C in Paris.", model="gpt-4o-mini")


async def test_the_hints_are_in_the_memory_block_within_the_budget() -> None:
    sm = SessionManager(store="memory://", enable_vm=True, vm_config=ContextPolicy(budget=4000))
    await weather_lesson(sm)
    built = await sm.build_context(incoming_messages=[{"role": "user", "content": "And in Oslo?"}])
    block = block_of(built.messages)
    assert "<procedural_memory>" in block and '<tool name="get_weather" calls="2" success_rate="50%"' in block
    assert 'error LookupError x1: unknown city -> fix: change city "Pariss" -> "Paris"' in block
    assert built.report is not None and built.report.tokens <= 4000


async def test_no_tool_history_or_procedural_off_means_no_hints() -> None:
    plain = SessionManager(store="memory://", enable_vm=True, vm_config=ContextPolicy(budget=4000))
    await plain.user_says("Hello")
    await plain.ai_responds("Hi!", model="gpt-4o-mini")
    assert "<procedural_memory>" not in block_of((await plain.build_context()).messages)
    off = SessionManager(
        store="memory://", enable_vm=True, vm_config=ContextPolicy(budget=4000, procedural=False)
    )
    await weather_lesson(off)
    assert "<procedural_memory>" not in block_of((await off.build_context()).messages)


async def test_the_hints_stay_put_between_compactions_so_the_prefix_stays_cacheable() -> None:
    sm = SessionManager(store="memory://", enable_vm=True, vm_config=ContextPolicy(budget=4000))
    await weather_lesson(sm)
    first = block_of((await sm.build_context()).messages)
    await sm.user_says("And Oslo?")
    calls = [{"id": "c3", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}}]
    await sm.ai_responds(None, model="gpt-4o-mini", tool_calls=calls)
    await sm.tool_used("get_weather", {"city": "Oslo"}, {"temp_c": 9}, call_id="c3")
    # The new run is in the verbatim turns; the block is the same bytes until a compaction.
    assert block_of((await sm.build_context()).messages) == first
