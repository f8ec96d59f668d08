"""Build cost of the VM context builder at 100, 1,000 and 10,000 turns.

Each session is filled with N turns (every 10th with a tool call and its result), built
once cold (replaying the whole log), then measured in steady state: a new turn arrives,
``build`` runs, 300 times. The baseline, measured in the same run, is what the seed
sends: the whole transcript rendered as a message list and counted.

Bars: p95 <= 2 ms at 1,000 turns, <= 20 ms at 10,000, 10k/1k p95 ratio <= 3. Times are
wall and CPU time of the building thread (on a shared machine the wall time's tail holds
other processes' time slices). The same sizes are measured with ``recall=False`` in the
same run: what the recall region (on by default) costs.

Then two claims are checked at 10,000 turns: the cost grows with the budget, not with
history (p95 at budgets 2k/4k/8k/16k, at 1,000 and at 10,000 turns), and the output is
deterministic (a session built at every turn and a copy of it built once, cold, from the
same log give byte-identical requests).

    python benchmarks/context_build.py [--budget 8000] [--iterations 300]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.memory import ContextPolicy, build
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.messages import events_to_messages
from sessionware.core.session.models import ToolCall
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store import MemoryBackend, Store

MODEL = "gpt-4o-mini"


def add_turn(state: SessionState, i: int) -> None:
    state.record(
        EventType.MESSAGE,
        EventSource.USER,
        role=Role.USER,
        content=f"Turn {i}: can you look into item {i} and tell me how it relates to project P-{i % 97}?",
    )
    if i % 10 == 0:
        call = ToolCall(id=f"call_{i}", name="search", arguments=json.dumps({"q": f"item {i}"}))
        state.record(
            EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=None, tool_calls=(call,)
        )
        state.record(
            EventType.MESSAGE,
            EventSource.TOOL,
            role=Role.TOOL,
            tool_call_id=f"call_{i}",
            content=f"search results for item {i}: " + ", ".join(f"doc-{i}-{k}" for k in range(20)),
        )
    state.record(
        EventType.MESSAGE,
        EventSource.LLM,
        role=Role.ASSISTANT,
        content=f"Item {i} is in project P-{i % 97}; it was last changed on day {i % 365} by team {i % 7}.",
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def request_bytes(state: SessionState, budget: int) -> str:
    ctx = build(state, model=MODEL, budget=budget)
    return json.dumps(ctx.request_kwargs(), ensure_ascii=False, sort_keys=True)


def deterministic(turns: int, budget: int, stepwise_from: int) -> bool:
    """A session built at every turn from ``stepwise_from`` on, against a copy of its log
    (same session id, another store) built once at the end."""
    stores = [Store(MemoryBackend()), Store(MemoryBackend())]
    states = [registry_for(store).open("determinism") for store in stores]
    for state in states:
        state.save_header(system_prompt="You are a precise project assistant.")
    for i in range(turns):
        for state in states:
            add_turn(state, i)
        if i >= stepwise_from:
            build(states[0], model=MODEL, budget=budget)
    same = request_bytes(states[0], budget) == request_bytes(states[1], budget)
    for store in stores:
        store.close()
    return same


def measure(turns: int, budget: int, iterations: int, recall: bool = True) -> dict[str, float]:
    store = Store(MemoryBackend())
    state = registry_for(store).open(f"bench-{turns}")
    state.save_header(system_prompt="You are a precise project assistant.")
    for i in range(turns):
        add_turn(state, i)
    policy = ContextPolicy(budget=budget, recall=recall)
    t0 = time.perf_counter()
    build(state, model=MODEL, policy=policy)
    cold = time.perf_counter() - t0
    times: list[float] = []
    cpu: list[float] = []
    tokens: list[int] = []
    # Garbage of the previous (possibly 10,000-turn) run is collected first, so a full
    # collection of it does not land inside this series.
    gc.collect()
    for i in range(turns, turns + iterations):
        add_turn(state, i)
        t0, c0 = time.perf_counter(), time.thread_time()
        ctx = build(state, model=MODEL)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        assert ctx.report is not None and ctx.report.tokens <= budget
        tokens.append(ctx.report.tokens)
    counter = counter_for_model(MODEL)
    seed_times: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        messages = events_to_messages(state.events, system_prompt=state.info.system_prompt)
        seed_tokens = counter.count_messages(messages)
        seed_times.append(time.perf_counter() - t0)
    store.close()
    return {
        "turns": turns,
        "cold_ms": cold * 1000,
        "p50_ms": pct(times, 0.5) * 1000,
        "p95_ms": pct(times, 0.95) * 1000,
        "mean_ms": statistics.mean(times) * 1000,
        "cpu_p50_ms": pct(cpu, 0.5) * 1000,
        "cpu_p95_ms": pct(cpu, 0.95) * 1000,
        "mean_tokens": statistics.mean(tokens),
        "seed_ms": statistics.median(seed_times) * 1000,
        "seed_tokens": seed_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=8000)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    build(registry_for(Store(MemoryBackend())).open("warm"), model=MODEL, budget=1000)  # load tokenizer
    rows = [measure(n, args.budget, args.iterations) for n in (100, 1_000, 10_000)]
    off = [measure(n, args.budget, args.iterations, recall=False) for n in (1_000, 10_000)]
    print(f"context build, budget {args.budget} tokens, {args.iterations} steady-state builds per size")
    print(
        f"{'turns':>7} {'recall':>6} {'cold ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} {'cpu p95':>8}"
        f" {'tokens':>8} {'seed ms':>9} {'seed tokens':>12} {'seed/p50':>9}"
    )
    for r, recall in [*((r, "on") for r in rows), *((r, "off") for r in off)]:
        print(
            f"{r['turns']:>7} {recall:>6} {r['cold_ms']:>9.1f} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f}"
            f" {r['cpu_p50_ms']:>8.3f} {r['cpu_p95_ms']:>8.3f} {r['mean_tokens']:>8.0f}"
            f" {r['seed_ms']:>9.2f} {r['seed_tokens']:>12} {r['seed_ms'] / r['p50_ms']:>8.0f}x"
        )
    for r, base in zip(rows[1:], off, strict=True):
        print(
            f"recall on / off at {r['turns']:,} turns: p50 {r['p50_ms'] / base['p50_ms']:.2f}x,"
            f" p95 {r['p95_ms'] / base['p95_ms']:.2f}x, cpu p50 {r['cpu_p50_ms'] / base['cpu_p50_ms']:.2f}x"
            f" (+{r['cpu_p50_ms'] - base['cpu_p50_ms']:.3f} ms)"
        )
    by = {r["turns"]: r for r in rows}
    ratio = by[10_000]["p95_ms"] / by[1_000]["p95_ms"]
    print(f"p95 10k/1k ratio: {ratio:.2f} (bar <= 3)")
    print(
        f"p95 at 1k: {by[1_000]['p95_ms']:.3f} ms (bar <= 2);"
        f" p95 at 10k: {by[10_000]['p95_ms']:.3f} ms (bar <= 20)"
    )
    ok = by[1_000]["p95_ms"] <= 2 and by[10_000]["p95_ms"] <= 20 and ratio <= 3
    print("bars met" if ok else "BARS NOT MET")
    budgets = (2_000, 4_000, 8_000, 16_000)
    sweep = {(n, b): measure(n, b, args.iterations) for n in (1_000, 10_000) for b in budgets}
    print("\nby budget (ms; the mean includes compactions, rarer but larger as the budget grows):")
    print(
        f"{'budget':>7}{'p50 1k':>9}{'p50 10k':>9}{'mean 1k':>9}{'mean 10k':>9}"
        f"{'p95 1k':>9}{'p95 10k':>9}{'10k/1k':>8}"
    )
    for b in budgets:
        small, large = sweep[(1_000, b)], sweep[(10_000, b)]
        print(
            f"{b:>7}{small['p50_ms']:>9.3f}{large['p50_ms']:>9.3f}{small['mean_ms']:>9.3f}{large['mean_ms']:>9.3f}"
            f"{small['p95_ms']:>9.3f}{large['p95_ms']:>9.3f}{large['mean_ms'] / small['mean_ms']:>7.2f}x"
        )
    growth = sweep[(10_000, budgets[-1])]["p50_ms"] / sweep[(10_000, budgets[0])]["p50_ms"]
    print(f"p50 at 10,000 turns, 16k/2k budget: {growth:.2f}x")
    same = deterministic(10_000, 4_000, stepwise_from=9_000)
    print(f"determinism at 10,000 turns, budget 4,000: {'byte-identical' if same else 'OUTPUT DIFFERS'}")


if __name__ == "__main__":
    main()
