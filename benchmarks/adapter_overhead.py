"""What ``sessionware.wrap`` adds to an SDK call, against the bare call and OpenLLMetry.

The same mocked OpenAI chat call (the real ``openai`` SDK over ``httpx.MockTransport``,
answered by ``sessionware.adapters.fakes.FakeOpenAI``) is timed three ways, interleaved
call by call so that drift on a shared machine hits every variant alike:

* **bare**: the unwrapped client;
* **sessionware**: the same client wrapped in observe mode (default in-memory store),
  recording every message, usage, cost and latency into an automatically threaded session;
* **OpenLLMetry**: ``opentelemetry-instrumentation-openai`` with an OpenTelemetry SDK
  tracer provider exporting to an in-memory span exporter (instrumented once, after the
  sessionware runs; its bare calls run under OpenTelemetry's suppression key).

Each round is a fresh ten-turn conversation whose history grows turn by turn, as a chat
app's does. Reported: medians per call, the time each wrapper adds over the bare call
(the median of per-turn differences, each between calls made back to back),
the ratio of the two additions, and, for streams, the time added per chunk (the slope
between a 20-chunk and a 200-chunk stream, from each variant's fastest run). Bars: added
time <= 5 % of the bare call, >= 10x less than OpenLLMetry's, <= 2 us per streamed chunk.

Run it from the repository root::

    python benchmarks/adapter_overhead.py             # a few minutes
    python benchmarks/adapter_overhead.py --quick     # fewer rounds

On first use it creates ``benchmarks/.venv-bench`` (git-ignored) and re-runs itself there;
the same by hand::

    python3 -m venv benchmarks/.venv-bench
    benchmarks/.venv-bench/bin/pip install -c constraints.txt -e ".[all]"
    benchmarks/.venv-bench/bin/pip install -c constraints.txt -r benchmarks/requirements-bench.txt
    benchmarks/.venv-bench/bin/python benchmarks/adapter_overhead.py

``--no-otel`` runs bare vs sessionware only, in whatever Python runs the script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "benchmarks" / ".venv-bench"
MODEL = "gpt-4o-mini"
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."}
TURNS = 10


def ensure_environment(args: argparse.Namespace) -> None:
    """Re-run inside benchmarks/.venv-bench (creating it) unless OpenLLMetry is importable."""
    if args.no_otel:
        return
    try:
        import opentelemetry.instrumentation.openai
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        python = VENV / "bin" / "python"
        if Path(sys.prefix).resolve() == VENV.resolve():
            sys.exit("benchmarks/.venv-bench lacks the OpenTelemetry packages; see the docstring")
        if not python.exists():
            print("creating benchmarks/.venv-bench (once)...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
            subprocess.run([*pip, "-e", f"{ROOT}[all]"], check=True)
            subprocess.run([*pip, "-r", str(ROOT / "benchmarks" / "requirements-bench.txt")], check=True)
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


class OpenLLMetry:
    """OpenLLMetry's instrumentation with an in-memory span exporter.

    Instrumenting patches the SDK's classes for every client, and switching it off and on
    again leaves the SDK slower each time, so it is switched on once; the bare calls of
    its phase then run under OpenTelemetry's suppression key, which the instrumentation
    honours by calling straight through.
    """

    def __init__(self) -> None:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        OpenAIInstrumentor().instrument(tracer_provider=provider)

    def suppressed(self) -> Any:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        return suppress_instrumentation()

    def spans(self) -> int:
        return len(self.exporter.get_finished_spans())


def make_client(is_async: bool) -> Any:
    import httpx
    import openai

    from sessionware.adapters.fakes import FakeOpenAI

    transport = FakeOpenAI().transport()
    if is_async:
        return openai.AsyncOpenAI(
            api_key="bench", max_retries=0, http_client=httpx.AsyncClient(transport=transport)
        )
    return openai.OpenAI(api_key="bench", max_retries=0, http_client=httpx.Client(transport=transport))


def sync_timer(client: Any, messages: list[dict[str, Any]]) -> tuple[float, str]:
    start = time.perf_counter_ns()
    reply = client.chat.completions.create(model=MODEL, messages=messages)
    elapsed = time.perf_counter_ns() - start
    return elapsed / 1000.0, reply.choices[0].message.content


def run_calls(
    is_async: bool, rounds: int, variants: list[tuple[str, Any]], otel: OpenLLMetry | None = None
) -> dict[str, list[float]]:
    """Per-call times (us) of each variant over ``rounds`` ten-turn conversations.

    With ``otel``, the variant named ``bare`` runs under the suppression key.
    """
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    loop = asyncio.new_event_loop() if is_async else None

    def one(name: str, client: Any, messages: list[dict[str, Any]]) -> str:
        with otel.suppressed() if otel is not None and name == "bare" else contextlib.nullcontext():
            if loop is not None:
                micros, text = loop.run_until_complete(async_timer(client, messages))
            else:
                micros, text = sync_timer(client, messages)
        times[name].append(micros)
        return text

    for r in range(rounds + 1):  # round 0 warms up (imports, price lookups) and is dropped
        histories = {
            name: [SYSTEM, {"role": "user", "content": f"Conversation {r}: where do we start?"}]
            for name, _ in variants
        }
        for turn in range(TURNS):
            order = variants[turn % len(variants) :] + variants[: turn % len(variants)]
            for name, client in order:
                text = one(name, client, histories[name])
                histories[name] += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"And then {turn}?"},
                ]
        if r == 0:
            for values in times.values():
                values.clear()
        gc.collect()
    if loop is not None:
        loop.close()
    return times


async def async_timer(client: Any, messages: list[dict[str, Any]]) -> tuple[float, str]:
    start = time.perf_counter_ns()
    reply = await client.chat.completions.create(model=MODEL, messages=messages)
    elapsed = time.perf_counter_ns() - start
    return elapsed / 1000.0, reply.choices[0].message.content


def stream_per_chunk(rounds: int) -> tuple[float, float, float]:
    """Added time per streamed chunk (us), from 20- and 200-chunk streams; and the bare medians."""
    import httpx
    import openai

    import sessionware
    from sessionware.adapters.fakes import FakeOpenAI, Reply

    def script(body: Any) -> Reply:
        size = 200 if "long" in body["messages"][-1]["content"] else 20
        return Reply(text=" ".join(["tok"] * size))

    api = FakeOpenAI(script)

    def make() -> Any:
        return openai.OpenAI(
            api_key="bench", max_retries=0, http_client=httpx.Client(transport=api.transport())
        )

    bare, wrapped = make(), sessionware.wrap(make())
    results: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds + 1):
        for size in ("short", "long"):
            pairs = [("bare", bare), ("sessionware", wrapped)]
            for name, client in pairs if r % 2 else pairs[::-1]:
                messages = [SYSTEM, {"role": "user", "content": f"{size} answer please, round {r}"}]
                start = time.perf_counter_ns()
                stream = client.chat.completions.create(
                    model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
                )
                count = sum(1 for _ in stream)
                elapsed = (time.perf_counter_ns() - start) / 1000.0
                assert count == (203 if size == "long" else 23), count  # role, pieces, finish, usage
                if r:
                    results.setdefault((name, size), []).append(elapsed)
        gc.collect()
    # Minimum per variant and length: a slope of two small differences between long runs
    # drowns in the noise other processes add to medians; the minimum is what a stream
    # costs when nothing else runs (the same estimator for both variants).
    best = {key: min(values) for key, values in results.items()}
    added_long = best[("sessionware", "long")] - best[("bare", "long")]
    added_short = best[("sessionware", "short")] - best[("bare", "short")]
    return (added_long - added_short) / 180.0, best[("bare", "short")], best[("bare", "long")]


def report(title: str, times: dict[str, list[float]]) -> dict[str, float]:
    """Print medians and return each variant's added time over ``bare``.

    The added time is the median of per-turn differences: every turn runs the variants
    back to back, so a difference compares calls made under the same machine load.
    """
    bare = times["bare"]
    med_bare = statistics.median(bare)
    print(f"\n{title}  ({len(bare)} calls per variant)")
    print(f"  {'variant':<12} {'median':>10} {'added':>10} {'added/bare':>11}")
    added: dict[str, float] = {}
    for name, values in times.items():
        added[name] = statistics.median(v - b for v, b in zip(values, bare, strict=True))
        share = 100 * added[name] / med_bare
        print(f"  {name:<12} {statistics.median(values):>8.1f}us {added[name]:>8.1f}us {share:>10.1f}%")
    added["bare_median"] = med_bare
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-otel", action="store_true", help="skip OpenLLMetry (no extra packages needed)")
    args = parser.parse_args()
    ensure_environment(args)
    rounds = 12 if args.quick else 40
    print(f"python {sys.version.split()[0]} at {sys.prefix}; {os.cpu_count()} cpus")

    import sessionware

    verdicts: list[tuple[str, bool, str]] = []
    ours: dict[str, float] = {}
    for is_async in (False, True):
        name = "AsyncOpenAI" if is_async else "OpenAI"
        variants = [("bare", make_client(is_async)), ("sessionware", sessionware.wrap(make_client(is_async)))]
        added = report(
            f"{name} chat.completions.create, 10-turn conversations", run_calls(is_async, rounds, variants)
        )
        ours[name] = added["sessionware"]
        share = ours[name] / added["bare_median"]
        verdicts.append(
            (f"{name}: sessionware adds <= 5% of the bare call", share <= 0.05, f"{100 * share:.1f}%")
        )

    if not args.no_otel:
        otel = OpenLLMetry()  # from here on the SDK is instrumented for good
        for is_async in (False, True):
            name = "AsyncOpenAI" if is_async else "OpenAI"
            variants = [("bare", make_client(is_async)), ("OpenLLMetry", make_client(is_async))]
            added = report(
                f"{name} with OpenLLMetry (spans: in-memory)", run_calls(is_async, rounds, variants, otel)
            )
            theirs = added["OpenLLMetry"]
            ratio = theirs / ours[name] if ours[name] > 0 else float("inf")
            print(
                f"  OpenLLMetry adds {theirs:.1f}us, {ratio:.1f}x what sessionware adds ({ours[name]:.1f}us)"
            )
            verdicts.append((f"{name}: >= 10x lighter than OpenLLMetry", ratio >= 10, f"{ratio:.1f}x"))
        assert otel.spans() > 0

    per_chunk, bare_short, bare_long = stream_per_chunk(rounds * 2)
    print(f"\nstreamed chat, 20 vs 200 chunks (bare minima {bare_short:.0f}us / {bare_long:.0f}us)")
    print(f"  sessionware adds {per_chunk:.2f}us per chunk")
    verdicts.append(("streams: <= 2us added per chunk", per_chunk <= 2.0, f"{per_chunk:.2f}us"))

    print("\nbars")
    for label, ok, figure in verdicts:
        print(f"  [{'pass' if ok else 'FAIL'}] {label}: {figure}")


if __name__ == "__main__":
    main()
