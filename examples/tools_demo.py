"""Tool execution with session logging, guards and procedural memory, end to end.

Runs offline: the "model" is a script that asks for tools the way an OpenAI model does
(``tool_calls`` with ``call_...`` ids). In its first round one call fails (a misspelt
city) and the next round fixes it; a ``$v1`` reference passes a result on with its
type; a per-tool cap and the ungrounded-number check show guard verdicts. The session
is kept in SQLite and reloaded at the end, procedural memory included.

    python examples/tools_demo.py [path/to/tools.db]
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from sessionware import SessionManager, TokenUsage
from sessionware.core.store.sqlite import SQLiteBackend
from sessionware.core.store.store import Store
from sessionware.core.tools import (
    BindingGuard,
    BudgetGuard,
    GuardChain,
    RunawayGuard,
    ToolRegistry,
    ToolRound,
    ToolRunner,
    UngroundedGuard,
)

MODEL = "gpt-4o-mini"
QUESTION = "What's the weather in Paris in Fahrenheit? Also, what is 37 x 41 and its square root?"

registry = ToolRegistry()


class CityNotFound(LookupError):
    """The weather service does not know the city."""


@registry.tool
def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
    """Current weather of a city.

    Args:
        city: the city's English name, correctly spelt
        unit: "C" or "F"
    """
    known = {"Paris": 21.5, "Oslo": 9.0}
    if city not in known:
        raise CityNotFound(f"unknown city {city!r}; known: {', '.join(known)}")
    celsius = known[city]
    return {"city": city, "temp": celsius if unit == "C" else round(celsius * 9 / 5 + 32, 1), "unit": unit}


@registry.tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@registry.tool
async def sqrt(x: float) -> float:
    """Square root of a non-negative number."""
    await asyncio.sleep(0)  # an async tool, run on the event loop
    return math.sqrt(x)


@registry.tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


# What the scripted model answers, round by round (it ignores its input).
SCRIPT: list[dict[str, Any]] = [
    {
        "tool_calls": [
            call("call_w1", "get_weather", city="Pariss", unit="F"),
            call("call_m1", "multiply", a=37, b=41),
        ]
    },
    {
        "tool_calls": [
            call("call_w2", "get_weather", city="Paris", unit="F"),
            call("call_s1", "sqrt", x="$v1"),
        ]
    },
    {"tool_calls": [call("call_w3", "get_weather", city="Oslo"), call("call_d1", "divide", a="$v2", b=2.5)]},
    {"content": "Paris: 70.7 °F. 37 x 41 = 1517, whose square root is about 38.95."},
]


def scripted_model(turn: int) -> tuple[dict[str, Any], TokenUsage]:
    reply = {"role": "assistant", "content": None, **SCRIPT[turn]}
    return reply, TokenUsage(input_tokens=300 + 60 * turn, output_tokens=25)


def show_round(done: ToolRound) -> None:
    for r in done.results:
        extra = f" guard={r.guard}" if r.guard else ""
        extra += f" binding=${r.binding}" if r.binding else ""
        print(f"  {r.call_id} {r.tool}({r.arguments}) -> {r.status.value}{extra}: {r.content[:70]}")
        for warning in r.warnings:
            print(f"      warning: {warning}")


async def converse(store: Store) -> str:
    sm = SessionManager(store=store, system_prompt="You are a precise assistant. Use the tools.")
    runner = ToolRunner(
        registry,
        # The defaults, with a per-tool cap of 2 weather calls per user turn to show a block.
        guards=GuardChain(
            [BindingGuard(), BudgetGuard(per_tool={"get_weather": 2}), RunawayGuard(), UngroundedGuard()]
        ),
    )
    await sm.user_says(QUESTION)
    for turn in range(len(SCRIPT)):
        if turn == 1:  # what the app adds to the model's context after the failed round
            print(f"context given to the model before round 2:\n{await runner.hints(sm, registry.names)}\n")
        reply, usage = scripted_model(turn)
        # What a wrapped client records by itself; the runner then does not record it twice.
        await sm.ai_responds(
            reply.get("content"), model=MODEL, usage=usage, tool_calls=reply.get("tool_calls")
        )
        if not reply.get("tool_calls"):
            print(f"model: {reply['content']}\n")
            break
        done = await runner.run(sm, reply)
        print(f"round {turn + 1}:")
        show_round(done)
        print()
    await sm.flush()
    return sm.session_id


async def reload(store: Store, session_id: str) -> None:
    sm = await SessionManager.load(session_id, store=store)
    print(f"session log ({session_id}, reloaded from {store.location}):")
    for event in await sm.get_events():
        if event.tool_name:
            meta = event.metadata
            outcome = f"{meta.get('tool_status')} attempts={meta.get('attempts')} cached={meta.get('cached')}"
            error = f" error={event.error.type}" if event.error else ""
            latency = f"{event.latency_ms or 0:.1f} ms"
            print(
                f"  #{event.seq:<2} tool      {event.tool_call_id} {event.tool_name}",
                outcome + error,
                latency,
            )
        else:
            calls = ", ".join(f"{c.id}:{c.name}" for c in event.tool_calls)
            print(f"  #{event.seq:<2} {event.type.value:<9} {event.role or ''} {calls or event.text[:60]}")
    stats = await sm.get_stats()
    print(f"tool_calls={stats.tool_calls} llm_calls={stats.llm_calls} tokens={stats.total_tokens}", end=" ")
    print(f"cost=${stats.cost:.6f}")
    messages = await sm.get_messages_for_llm()
    print(f"messages for the next call: {len(messages)} ({', '.join(m['role'] for m in messages)})\n")
    # A new runner on the reloaded session: the memory is rebuilt from the log.
    print("procedural memory after reload:")
    print(await ToolRunner(registry).hints(sm, ["get_weather"]))


async def main(db_path: Path) -> None:
    store = Store(SQLiteBackend(db_path))
    try:
        session_id = await converse(store)
    finally:
        store.close()
    fresh = Store(SQLiteBackend(db_path))  # as another process would open it
    try:
        await reload(fresh, session_id)
    finally:
        fresh.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp) / "tools.db"))
