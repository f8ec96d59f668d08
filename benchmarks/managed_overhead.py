"""Time managed mode adds to a call, at sessions of 1,000 and 10,000 turns.

An app re-sends its whole history (N turns, every 10th with a tool call and result)
through ``sessionware.wrap(OpenAI(...), mode="managed")`` against the mocked API. The
session already holds those turns (recorded as an observe-mode run would have), so
each timed call is one more turn of a long conversation.

**Added time** is what the wrapper's request funnel spends outside the SDK's own
request method: resolving the session, diffing and recording the new messages,
counting what the app asked to send, building the context, serving memory calls and
recording the answer. It is measured per call as (time in the funnel) - (time in the
SDK's ``request`` it calls), so the SDK's own work on the app's large request (before
the funnel) and the mocked network are left out. Reported beside it, measured in the
same run: the bare call with the app's full history, the bare call with the body
managed mode sent, and the context build alone.

Bars: added time p95 <= 2 ms at 1,000 turns and <= 20 ms at 10,000.

    python benchmarks/managed_overhead.py [--calls 60] [--turns 1000 10000]

``adapter_overhead.py --managed`` runs it after the observe-mode figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

MODEL = "gpt-4o-mini"
SYSTEM = "You are a helpful assistant. Answer briefly and precisely."
BUDGET = 8000


def app_history(turns: int) -> list[dict[str, Any]]:
    """The app's message list after ``turns`` turns (the shape ``context_build.py`` uses)."""
    history: list[dict[str, Any]] = []
    for i in range(turns):
        history.append(
            {
                "role": "user",
                "content": f"Turn {i}: can you look into item {i} and tell me how it relates to "
                f"project P-{i % 97}?",
            }
        )
        if i % 10 == 0:
            call = {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "search", "arguments": json.dumps({"q": f"item {i}"})},
            }
            history.append({"role": "assistant", "content": None, "tool_calls": [call]})
            results = ", ".join(f"doc-{i}-{k}" for k in range(20))
            history.append(
                {
                    "role": "tool",
                    "tool_call_id": f"call_{i}",
                    "content": f"search results for item {i}: {results}",
                }
            )
        history.append(
            {"role": "assistant", "content": f"Item {i} relates to project P-{i % 97} through its owner."}
        )
    return history


def preload(store: Any, session_id: str, history: list[dict[str, Any]]) -> None:
    """Record ``history`` into the session, as an observe-mode run would have."""
    from sessionware.core.session.enums import EventSource, EventType, Role
    from sessionware.core.session.models import ToolCall
    from sessionware.core.session.registry import registry_for

    state = registry_for(store).open(session_id, system_prompt=SYSTEM)
    drafts: list[Any] = [
        (EventType.SYSTEM_PROMPT, EventSource.SYSTEM, {"role": Role.SYSTEM, "content": SYSTEM})
    ]
    for m in history:
        if m["role"] == "user":
            drafts.append((EventType.MESSAGE, EventSource.USER, {"role": Role.USER, "content": m["content"]}))
        elif m["role"] == "tool":
            fields = {"role": Role.TOOL, "content": m["content"], "tool_call_id": m["tool_call_id"]}
            drafts.append((EventType.MESSAGE, EventSource.TOOL, fields))
        else:
            calls = tuple(
                ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
                for c in m.get("tool_calls") or ()
            )
            fields = {"role": Role.ASSISTANT, "content": m["content"], "tool_calls": calls}
            drafts.append((EventType.MESSAGE, EventSource.LLM, fields))
    for start in range(0, len(drafts), 5000):
        state.record_many(drafts[start : start + 5000])


class Timed:
    """Seconds spent inside a callable, wall clock and this thread's CPU (summed until read)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.spent = 0.0
        self.cpu = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - start
            self.cpu += time.thread_time() - cpu

    def take(self) -> tuple[float, float]:
        taken, self.spent, self.cpu = (self.spent, self.cpu), 0.0, 0.0
        return taken


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(turns: int, calls: int) -> dict[str, Any]:
    import httpx
    import openai

    import sessionware
    from sessionware.adapters.fakes import FakeOpenAI
    from sessionware.core.memory import ContextPolicy, build
    from sessionware.core.session.registry import registry_for
    from sessionware.core.store import MemoryBackend, Store

    api = FakeOpenAI(_reply)
    store = Store(MemoryBackend())
    history = app_history(turns)
    preload(store, "bench", history)

    def client() -> Any:
        return openai.OpenAI(
            api_key="bench", max_retries=0, http_client=httpx.Client(transport=api.transport())
        )

    bare, wire_bare = client(), client()
    managed = client()
    sdk = Timed(managed.request)  # the SDK's own request method, which the funnel calls
    managed.__dict__["request"] = sdk
    sessionware.wrap(
        managed, store=store, session_id="bench", mode="managed", context=ContextPolicy(budget=BUDGET)
    )
    funnel = Timed(managed.__dict__["request"])
    managed.__dict__["request"] = funnel
    state = registry_for(store).open("bench")

    rows: dict[str, list[float]] = {
        "added": [],
        "added_cpu": [],
        "bare": [],
        "managed": [],
        "wire_bare": [],
        "build": [],
    }
    messages = [{"role": "system", "content": SYSTEM}, *history]
    for i in range(calls + 5):  # the first calls fold the log into memory (cold) and are dropped
        messages.append(
            {"role": "user", "content": f"Turn {turns + i}: and how does item {i} relate to P-{i % 97}?"}
        )
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            reply = managed.chat.completions.create(model=MODEL, messages=messages)
            total = time.perf_counter() - start
            (in_funnel, funnel_cpu), (in_sdk, sdk_cpu) = funnel.take(), sdk.take()
            sent = api.requests[-1]
            if i % 5 == 0:  # the baselines, on every fifth call (the bare call is slow itself)
                start = time.perf_counter()
                bare.chat.completions.create(model=MODEL, messages=messages)
                rows["bare"].append((time.perf_counter() - start) * 1000.0)
                start = time.perf_counter()
                wire_bare.chat.completions.create(
                    model=MODEL, messages=sent["messages"], tools=sent.get("tools")
                )
                rows["wire_bare"].append((time.perf_counter() - start) * 1000.0)
                start = time.perf_counter()
                build(state, model=MODEL, budget=BUDGET)  # the builder alone, on the same session
                rows["build"].append((time.perf_counter() - start) * 1000.0)
        finally:
            gc.enable()
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
        if i >= 5:
            rows["added"].append((in_funnel - in_sdk) * 1000.0)
            rows["added_cpu"].append((funnel_cpu - sdk_cpu) * 1000.0)
            rows["managed"].append(total * 1000.0)
    store.close()
    return {"turns": turns, "messages": len(messages), **rows}


def _reply(body: Any) -> Any:
    from sessionware.adapters.fakes import Reply

    return Reply(text="Noted.")


def report(results: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Print the figures; return the bars (judged on wall-clock added time)."""
    print("\nmanaged mode, chat.completions.create on a long session (ms per call)")
    print(
        f"  {'turns':>7} {'app msgs':>9} {'added p50':>10} {'added p95':>10} {'CPU p95':>8} "
        f"{'build p95':>10} {'managed':>9} {'bare':>9} {'bare(wire)':>11} {'added/bare':>11}"
    )
    verdicts = []
    for r in results:
        p95 = percentile(r["added"], 0.95)
        bare = statistics.median(r["bare"])
        print(
            f"  {r['turns']:>7,} {r['messages']:>9,} {statistics.median(r['added']):>10.2f} {p95:>10.2f} "
            f"{percentile(r['added_cpu'], 0.95):>8.2f} {percentile(r['build'], 0.95):>10.2f} "
            f"{statistics.median(r['managed']):>9.2f} {bare:>9.2f} "
            f"{statistics.median(r['wire_bare']):>11.2f} {100 * statistics.median(r['added']) / bare:>10.2f}%"
        )
        bar = 2.0 if r["turns"] <= 1000 else 20.0
        verdicts.append(
            (f"managed added time p95 <= {bar:g} ms at {r['turns']:,} turns", p95 <= bar, f"{p95:.2f} ms")
        )
    print(
        "  added: the funnel's time outside the SDK's request method (CPU: this thread's share of it); "
        "bare: the app's call unwrapped; bare(wire): the body managed mode sent, unwrapped"
    )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--turns", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    verdicts = report([measure(turns, args.calls) for turns in args.turns])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\nbars")
    for label, ok, figure in verdicts:
        print(f"  [{'pass' if ok else 'FAIL'}] {label}: {figure}")


if __name__ == "__main__":
    main()
