"""What ``SessionCallback`` adds to a LiteLLM call: mocked ``litellm.acompletion``.

The same call (``mock_response``: LiteLLM's whole code path, response object, usage and
``response_cost``, without a network) is timed three ways, interleaved conversation by
conversation so that drift on a shared machine hits every variant alike:

* **bare**: no callback registered;
* **no-op logger**: a ``CustomLogger`` whose success event does nothing, which is what
  LiteLLM's own callback machinery costs any logger;
* **sessionware**: ``SessionCallback`` (in-memory store), recording every message, usage,
  both costs and latency into an automatically threaded session.

Each round is a fresh ten-turn conversation whose history grows turn by turn. Two
figures per variant, each as an addition over the bare call of the same round, as in
``adapter_overhead.py``:

* **latency**, what the app waits: the median of per-call differences (call i of a
  round against call i of bare; judged);
* **CPU**, everything the variant costs the process: ``time.process_time()`` over the
  conversation, including draining LiteLLM's logging worker (which runs success
  callbacks after the call returned) and ``settle()`` of sessionware's recorder thread
  (which records what the callback handed it), so nothing is hidden.

Bar: added latency <= 5 % of the bare call. Run it from the repository root (about a
minute)::

    python benchmarks/litellm_overhead.py
    python benchmarks/litellm_overhead.py --rounds 10   # quicker, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

TURNS = 10
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."}
BAR = 0.05
# LiteLLM copies ``callbacks`` into these on each call and never takes them out again.
CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def use_callbacks(litellm: Any, callbacks: list[Any]) -> None:
    for name in CALLBACK_LISTS:
        getattr(litellm, name).clear()
    litellm.callbacks.extend(callbacks)


async def conversation(litellm: Any, round_no: int) -> tuple[list[float], float]:
    """Per-call latencies and the CPU per call of one ten-turn conversation, drained."""
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    history: list[dict[str, Any]] = [SYSTEM]
    latencies: list[float] = []
    cpu = time.process_time()
    for turn in range(TURNS):
        history.append(
            {"role": "user", "content": f"Round {round_no}, question {turn}: what is {turn} squared?"}
        )
        started = time.perf_counter()
        reply = await litellm.acompletion(
            model="gpt-4o-mini", messages=history, mock_response=f"{turn * turn}, since {turn} x {turn}."
        )
        latencies.append(time.perf_counter() - started)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    await drain(GLOBAL_LOGGING_WORKER)
    return latencies, (time.process_time() - cpu) / TURNS


async def drain(worker: Any) -> None:
    """Wait until every call made so far is fully handled, its recording included.

    LiteLLM hands each finished call to a task that enqueues its handler on the logging
    worker: let those tasks run and wait for the worker's queue; then wait for
    sessionware's recorder thread, which records what the callback handed it.
    """
    from sessionware.adapters.api import settle

    for _ in range(3):
        await asyncio.sleep(0)
    await worker.flush()
    settle()


@dataclass
class Variant:
    callbacks: list[Any]
    latencies: list[list[float]] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


async def measure(rounds: int) -> dict[str, Variant]:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    from sessionware.adapters.litellm import SessionCallback
    from sessionware.core.store import open_store

    class NoOp(CustomLogger):
        async def async_log_success_event(
            self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
        ):
            return None

    store = open_store("memory://")
    variants = {
        "bare": Variant([]),
        "no-op logger": Variant([NoOp()]),
        "sessionware": Variant([SessionCallback(store=store)]),
    }
    for variant in variants.values():  # warm-up: imports, price lookups, tokenizers
        use_callbacks(litellm, variant.callbacks)
        await conversation(litellm, -1)
    order = list(variants)
    for round_no in range(rounds):
        random.shuffle(order)
        for name in order:
            variant = variants[name]
            use_callbacks(litellm, variant.callbacks)
            gc.collect()
            latencies, cpu = await conversation(litellm, round_no)
            variant.latencies.append(latencies)
            variant.cpu.append(cpu)
    use_callbacks(litellm, [])
    store.flush()
    sessions = store.list_sessions()
    assert len(sessions) == rounds + 1, len(sessions)  # one threaded session per conversation
    events = sum(len(store.load(s.id).events) for s in sessions)
    assert events == (rounds + 1) * (1 + 2 * TURNS), events  # system prompt + every message once
    return variants


def added_latency(variant: Variant, bare: Variant) -> float:
    """Median of per-call differences against the bare call of the same round and turn."""
    return statistics.median(
        v - b
        for ours, base in zip(variant.latencies, bare.latencies, strict=True)
        for v, b in zip(ours, base, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="conversations per variant (default 40)")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    variants = asyncio.run(measure(args.rounds))
    bare = variants["bare"]
    bare_latency = statistics.median(t for c in bare.latencies for t in c)
    bare_cpu = statistics.median(bare.cpu)
    print(f"mocked litellm.acompletion, {args.rounds} ten-turn conversations per variant")
    print(
        f"  {'variant':<14} {'latency':>10} {'added':>10} {'ratio':>8}"
        f" {'CPU/call':>10} {'added':>10} {'ratio':>8}"
    )
    for name, variant in variants.items():
        latency = statistics.median(t for c in variant.latencies for t in c)
        added = added_latency(variant, bare) if variant is not bare else 0.0
        cpu = statistics.median(variant.cpu)
        print(
            f"  {name:<14} {latency * 1e3:8.3f}ms {added * 1e6:+8.1f}us {added / bare_latency:+8.1%}"
            f" {cpu * 1e3:8.3f}ms {(cpu - bare_cpu) * 1e6:+8.1f}us {(cpu - bare_cpu) / bare_cpu:+8.1%}"
        )
    judged = added_latency(variants["sessionware"], bare) / bare_latency
    print(
        f"  bar: SessionCallback adds <= {BAR:.0%} latency to the bare call -> {judged:+.1%}, "
        f"{'met' if judged <= BAR else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
