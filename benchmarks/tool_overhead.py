"""What sessionware adds to a tool execution: ``sessionware.wrap`` over a bare ``ToolProcessor``.

The same ``ToolProcessor.process()`` call (an assistant message with one OpenAI tool
call, an async ``add`` tool, the engine's default settings: in-process strategy,
retries, cache layer) is timed on two processors built alike, one of them wrapped
(memory store, inside ``sessionware.session``), call by call in random order so drift on
a shared machine hits both alike:

* **added latency**, what the app waits: the median of the per-call differences,
  against the median bare call (judged; bar <= 5 %);
* **CPU**, everything the wrapped processor costs the process, the recorder thread's
  writing of the events included (``time.process_time()`` around each round, with
  ``settle()``); informative.

Shown beside them, informative: ``ToolRunner.run`` on the same message (sessionware's
own loop: parsing, guards, the engine, bindings, recording) against the bare call.

    python benchmarks/tool_overhead.py
    python benchmarks/tool_overhead.py --rounds 5   # quicker, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import time
from typing import Any

import sessionware
from sessionware.adapters.api import settle
from sessionware.core.store import MemoryBackend, Store
from sessionware.core.tools import ToolRegistry, ToolRunner
from sessionware.core.tools.engine import load_engine

load_engine()

from chuk_tool_processor import ToolProcessor, create_registry  # noqa: E402

BAR = 0.05
CALLS_PER_ROUND = 400


class Add:
    """Add two numbers."""

    async def execute(self, a: int, b: int) -> int:
        return a + b


def message(i: int) -> dict[str, Any]:
    arguments = json.dumps({"a": i, "b": 1})
    call = {"id": f"call_{i}", "type": "function", "function": {"name": "add", "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


async def processor() -> ToolProcessor:
    registry = create_registry()
    await registry.register_tool(Add(), name="add")
    made = ToolProcessor(registry=registry)
    await made.initialize()
    return made


async def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def timed(fn: Any, arg: Any) -> float:
    started = time.perf_counter()
    await fn(arg)
    return time.perf_counter() - started


async def run(rounds: int) -> None:
    store = Store(MemoryBackend())
    bare = await processor()
    wrapped = sessionware.wrap(await processor(), store=store)
    registry = ToolRegistry()
    registry.register(add)
    runner = ToolRunner(registry, guards=())

    async def bare_call(i: int) -> None:
        await bare.process(message(i))

    async def wrapped_call(i: int) -> None:
        await wrapped.process(message(i))

    async def runner_call(i: int) -> None:
        await runner.run(None, message(i))

    variants = {"bare": bare_call, "wrapped": wrapped_call, "runner": runner_call}
    with sessionware.session("tool-overhead"):
        for fn in variants.values():  # warm-up: imports, pools, first session
            for i in range(100):
                await fn(i)
        settle()
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
        diffs: list[float] = []
        runner_diffs: list[float] = []
        n = 0
        for _ in range(rounds):
            gc.collect()
            for name, fn in variants.items():
                # CPU of a whole stretch of calls per variant, the recorder thread's work included.
                started = time.process_time()
                for i in range(CALLS_PER_ROUND // 4):
                    await fn(n + i)
                settle()
                cpu[name] += time.process_time() - started
            for _ in range(CALLS_PER_ROUND):
                n += 1
                order = list(variants.items())
                random.shuffle(order)
                got = {name: await timed(fn, n) for name, fn in order}
                for name, value in got.items():
                    times[name].append(value)
                diffs.append(got["wrapped"] - got["bare"])
                runner_diffs.append(got["runner"] - got["bare"])
            settle()
    calls = rounds * CALLS_PER_ROUND
    stretch = rounds * (CALLS_PER_ROUND // 4)
    base = statistics.median(times["bare"])
    added = statistics.median(diffs)
    ratio = added / base
    print(f"tool executions per variant: {calls} ({rounds} rounds, interleaved, random order)")
    print(f"bare ToolProcessor.process()        median {base * 1e6:8.1f} us")
    print(f"wrapped (sessionware.wrap)          median {statistics.median(times['wrapped']) * 1e6:8.1f} us")
    print(f"ToolRunner.run (no session)         median {statistics.median(times['runner']) * 1e6:8.1f} us")
    print(
        f"added by sessionware.wrap: {added * 1e6:.1f} us per execution = {ratio:.1%} of the bare call"
        f"  [bar <= {BAR:.0%}: {'met' if ratio <= BAR else 'MISSED'}]"
    )
    cpu_bare = cpu["bare"] / stretch
    cpu_added = cpu["wrapped"] / stretch - cpu_bare
    print(
        f"CPU per execution, recorder thread included: bare {cpu_bare * 1e6:.1f} us, "
        f"wrapped +{cpu_added * 1e6:.1f} us ({cpu_added / cpu_bare:.1%}; informative)"
    )
    runner_added = statistics.median(runner_diffs)
    print(
        f"ToolRunner.run over the bare call: {runner_added * 1e6:+.1f} us ({runner_added / base:+.1%}; "
        "informative: it parses, guards, binds and validates, and hands calls to the engine one by one)"
    )
    await runner.aclose()
    await bare.close()
    await wrapped.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
