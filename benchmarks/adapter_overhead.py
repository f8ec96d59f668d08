"""What ``sessionware.wrap`` adds to an SDK call, against the bare call and OpenLLMetry.

The same mocked OpenAI chat call (the real ``openai`` SDK over ``httpx.MockTransport``,
answered by ``sessionware.adapters.fakes.FakeOpenAI``) is made by three variants:

* **bare**: the unwrapped client;
* **sessionware**: the same client wrapped in observe mode (default in-memory store),
  recording every message, usage, cost and latency into an automatically threaded session;
* **OpenLLMetry**: ``opentelemetry-instrumentation-openai`` with an OpenTelemetry SDK
  tracer provider exporting to an in-memory span exporter;
* **sessionware+otel**: the wrapped client with its own OpenTelemetry export
  (``wrap(otel=...)``) to the same kind of provider and exporter (one span per call,
  made on the recorder thread; in phase 2 it runs under OpenLLMetry's
  language-model suppression key, which OpenLLMetry honours and sessionware does not).

Each round holds ten ten-turn conversations, each history growing turn by turn as a chat
app's does; at every turn each variant makes the same call on its own copy of the history,
in an order that rotates turn by turn, so a call and its bare twin are made microseconds
apart and drift on a shared machine cancels out of their difference. Two phases, for
``OpenAI`` and ``AsyncOpenAI``:

1. the SDK as it ships: bare vs sessionware;
2. the SDK instrumented by OpenLLMetry (once: instrumenting patches the SDK's classes
   for every client, and switching it off and on again leaves the SDK slower each time):
   bare and sessionware run under OpenTelemetry's suppression key, which the
   instrumentation honours by calling straight through, interleaved with OpenLLMetry.

Figures per variant, each an addition over the bare call:

* **latency**, what the app waits: the median of per-call differences (a call against
  its bare twin; judged), and their mean;
* **CPU**, everything the variant costs the process (``time.process_time()``, every
  thread), per call.

sessionware's call only captures references; the recorder thread works out the session
and records, in batches (``background.LINGER``). With a real provider that work runs
while the app waits on the network; this mock does no I/O, so a batch takes the GIL at
some call's brief release of it and lands inside that call, whichever variant made it.
Each call's share of the recorder thread's CPU is read around it: the mean and the CPU
figures take those shares out of every call and charge the recorder's whole work
(including the batch settled after each round) to sessionware, so nothing is hidden.
The median, what the app typically waits, is of the raw differences.

Streams: the time added per chunk (per round, the slope between the wrapped-minus-bare
differences of a 20-chunk and a 200-chunk stream made moments apart; the median over
rounds). It is judged with an app that reads each chunk's text as apps do
(``chunk.choices[0].delta.content``); an app that discards its chunks unread is shown too.
Reading a chunk fresh from the SDK costs most for whoever reads it first (the lookups
run cold after the SDK's work on the chunk), and sessionware reads each chunk on its way
to the app: with a reading app that first read is the app's own cost moved, not an
addition; with a discarding app it is all added.

Bars: sessionware's added latency <= 5 % of the bare call (phase 1) and >= 10x less
than OpenLLMetry's (phase 2), for sync and async clients, with and without its
OpenTelemetry export; <= 2 us per streamed chunk.
The load average is printed before and after: run it on a quiet machine.

Run it from the repository root::

    python benchmarks/adapter_overhead.py             # about two minutes
    python benchmarks/adapter_overhead.py --quick     # fewer rounds

On first use it creates ``benchmarks/.venv-bench`` (git-ignored) and re-runs itself there;
the same by hand::

    python3 -m venv benchmarks/.venv-bench
    benchmarks/.venv-bench/bin/pip install -c constraints.txt -e ".[all]"
    benchmarks/.venv-bench/bin/pip install -c constraints.txt -r benchmarks/requirements-bench.txt
    benchmarks/.venv-bench/bin/python benchmarks/adapter_overhead.py

``--no-otel`` runs phase 1 only, in whatever Python runs the script. ``--managed`` adds
managed mode's added time on 1,000- and 10,000-turn sessions (``managed_overhead.py``;
bars: p95 <= 2 ms and <= 20 ms; about five minutes more, the bare SDK call on such a
history being slow itself).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "benchmarks" / ".venv-bench"
MODEL = "gpt-4o-mini"
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."}
TURNS = 10
CONVERSATIONS = 10


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
    again leaves the SDK slower each time, so it is switched on once; the other variants
    of its phase then run under OpenTelemetry's suppression key, which the instrumentation
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

    def llm_suppressed(self) -> Any:
        """OpenLLMetry's own key for "another layer makes the LLM span": it calls straight
        through, while sessionware's export (which honours only the general key) still runs."""
        from opentelemetry import context
        from opentelemetry.semconv_ai import SUPPRESS_LANGUAGE_MODEL_INSTRUMENTATION_KEY

        @contextlib.contextmanager
        def attached() -> Any:
            token = context.attach(context.set_value(SUPPRESS_LANGUAGE_MODEL_INSTRUMENTATION_KEY, True))
            try:
                yield
            finally:
                context.detach(token)

        return attached()

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


@dataclass
class Series:
    """Every call of one variant: latency, CPU of the process during it, and the recorder
    thread's CPU that ran inside it (us)."""

    latency: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    landed: list[float] = field(default_factory=list)


def sync_call(client: Any, messages: list[dict[str, Any]]) -> str:
    reply = client.chat.completions.create(model=MODEL, messages=messages)
    return str(reply.choices[0].message.content)


async def async_call(client: Any, messages: list[dict[str, Any]]) -> str:
    reply = await client.chat.completions.create(model=MODEL, messages=messages)
    return str(reply.choices[0].message.content)


def run_rounds(
    is_async: bool, rounds: int, variants: list[tuple[str, Any]], otel: OpenLLMetry | None = None
) -> tuple[dict[str, Series], float]:
    """Every variant's calls, interleaved call by call; and the recorder thread's CPU per
    call of the wrapped variant (us).

    Each round holds ``CONVERSATIONS`` conversations of ``TURNS`` turns; at every turn each
    variant makes the same call on its own copy of the history, in an order that rotates
    turn by turn, so a call and its bare twin are microseconds apart and drift on a shared
    machine cancels out of their difference. With ``otel``, every variant but OpenLLMetry
    runs under OpenTelemetry's suppression key.
    """
    from sessionware.adapters.engine import background

    series = {name: Series() for name, _ in variants}
    loop = asyncio.new_event_loop() if is_async else None
    recorder_total = 0
    for r in range(rounds + 1):  # round 0 warms up (imports, price lookups) and is dropped
        recorder_start = background.stats().cpu_ns
        step = 0
        for c in range(CONVERSATIONS):
            opening = [SYSTEM, {"role": "user", "content": f"Conversation {r}.{c}: where do we start?"}]
            histories = {name: list(opening) for name, _ in variants}
            for turn in range(TURNS):
                step += 1
                shift = step % len(variants)
                for name, client in variants[shift:] + variants[:shift]:
                    history = histories[name]
                    with _quiet(otel, name):
                        recorder = background.stats().cpu_ns
                        cpu = time.process_time_ns()
                        start = time.perf_counter_ns()
                        if loop is not None:
                            text = loop.run_until_complete(async_call(client, history))
                        else:
                            text = sync_call(client, history)
                        elapsed = time.perf_counter_ns() - start
                        cpu = time.process_time_ns() - cpu
                        recorder = background.stats().cpu_ns - recorder
                    if r:
                        done = series[name]
                        done.latency.append(elapsed / 1000.0)
                        done.cpu.append(cpu / 1000.0)
                        done.landed.append(recorder / 1000.0)
                    histories[name] = [
                        *history,
                        {"role": "assistant", "content": text},
                        {"role": "user", "content": f"{turn}?"},
                    ]
        background.settle()
        if r:
            recorder_total += background.stats().cpu_ns - recorder_start
        gc.collect()
    if loop is not None:
        loop.close()
    calls = rounds * CONVERSATIONS * TURNS
    return series, recorder_total / 1000.0 / calls


def _quiet(otel: OpenLLMetry | None, name: str) -> Any:
    """The context a variant's call runs in while OpenLLMetry instruments the SDK."""
    if otel is None or name == "OpenLLMetry":
        return contextlib.nullcontext()
    return otel.llm_suppressed() if name == "sessionware+otel" else otel.suppressed()


class OtelExport:
    """sessionware's own OpenTelemetry export (``wrap(otel=...)``) to an SDK tracer
    provider with an in-memory exporter, as OpenLLMetry's spans are."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from sessionware.core.telemetry import OtelSettings

        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.settings = OtelSettings(tracer_provider=provider)

    def spans(self) -> int:
        count = len(self.exporter.get_finished_spans())
        self.exporter.clear()
        return count


@dataclass
class Added:
    """A variant's additions over the bare call (us per call)."""

    latency: float
    """Median of per-call differences (a call against its bare twin): what the app waits."""
    latency_mean: float
    """Mean of those differences, with the recorder thread's batches charged to the
    wrapped variant wherever they landed."""
    cpu: float
    """Mean CPU difference per call, the recorder thread's whole work charged to the
    wrapped variant."""


def additions(variant: Series, bare: Series, landed: float, recorder: float, ours: bool) -> Added:
    """``landed``: recorder CPU that ran inside any variant's calls, per call; ``recorder``:
    all of it, the batch settled after each round included, per call."""
    diffs = [v - b for v, b in zip(variant.latency, bare.latency, strict=True)]
    net = [
        (v - vl) - (b - bl)
        for v, vl, b, bl in zip(variant.latency, variant.landed, bare.latency, bare.landed, strict=True)
    ]
    cpu = [
        (v - vl) - (b - bl)
        for v, vl, b, bl in zip(variant.cpu, variant.landed, bare.cpu, bare.landed, strict=True)
    ]
    return Added(
        statistics.median(diffs),
        statistics.mean(net) + (landed if ours else 0.0),
        statistics.mean(cpu) + (recorder if ours else 0.0),
    )


def report(title: str, measured: tuple[dict[str, Series], float]) -> tuple[float, dict[str, Added]]:
    """Print each variant's figures; return the bare median and every variant's additions."""
    series, recorder = measured
    bare = series["bare"]
    med_bare = statistics.median(bare.latency)
    print(f"\n{title}  ({len(bare.latency)} calls per variant, interleaved call by call)")
    print(
        f"  {'variant':<12} {'median':>9} {'added':>9} {'/bare':>7}"
        f" {'mean add':>9} {'cpu add':>9} {'/bare':>7}"
    )
    cpu_bare = statistics.mean(c - x for c, x in zip(bare.cpu, bare.landed, strict=True))
    landed = sum(sum(s.landed) for s in series.values()) / len(bare.landed)
    added: dict[str, Added] = {}
    for name, values in series.items():
        add = added[name] = additions(values, bare, landed, recorder, ours=name.startswith("sessionware"))
        print(
            f"  {name:<12} {statistics.median(values.latency):>7.1f}us {add.latency:>7.1f}us"
            f" {100 * add.latency / med_bare:>6.1f}% {add.latency_mean:>7.1f}us"
            f" {add.cpu:>7.1f}us {100 * add.cpu / cpu_bare:>6.1f}%"
        )
    print(
        f"  recorder thread: {recorder:.1f}us of CPU per wrapped call (in each sessionware variant's"
        " cpu add, so charged twice when two run)"
    )
    return med_bare, added


def ratio(theirs: float, ours: float) -> float:
    return theirs / ours if ours > 0 else float("inf")


def read_stream(stream: Any) -> int:
    """Consume a chat stream as apps do (``chunk.choices[0].delta.content``); the chunk count."""
    parts: list[str] = []
    count = 0
    for chunk in stream:
        count += 1
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
    return count


def drain_stream(stream: Any) -> int:
    """Consume a stream without looking at its chunks; the chunk count."""
    return sum(1 for _ in stream)


def stream_per_chunk(rounds: int) -> tuple[dict[str, float], float, float]:
    """Added time per streamed chunk (us) for each way of consuming the stream; and the
    bare medians of 20- and 200-chunk streams.

    Each round streams a 20-chunk and a 200-chunk answer through the bare and the wrapped
    client, with each consumer, in a random order, so a stream and its bare twin are
    made moments apart and whatever one call leaves behind (a recorder batch, a garbage
    collection) falls on any of them alike. A call's time excludes the recorder thread's
    CPU that ran inside it (per-call work, charged in the figures above). The round's
    figure is the slope of its two differences, ``((wrapped - bare) at 200 - (wrapped -
    bare) at 20) / 180``: what is paid per call cancels out, as does the machine's speed
    of that moment; the median over rounds is reported.
    """
    import random

    import httpx
    import openai

    import sessionware
    from sessionware.adapters.engine import background
    from sessionware.adapters.fakes import FakeOpenAI, Reply

    sizes = {"short": 20, "long": 200}
    consumers = {"reads chunks": read_stream, "discards chunks": drain_stream}

    def script(body: Any) -> Reply:
        size = sizes["long"] if "long" in body["messages"][-1]["content"] else sizes["short"]
        return Reply(text=" ".join(["tok"] * size))

    api = FakeOpenAI(script)

    def make() -> Any:
        return openai.OpenAI(
            api_key="bench", max_retries=0, http_client=httpx.Client(transport=api.transport())
        )

    clients = {"bare": make(), "sessionware": sessionware.wrap(make())}
    calls = [(name, size, way) for name in clients for size in sizes for way in consumers]
    shuffle = random.Random(20261121).shuffle
    slopes: dict[str, list[float]] = {way: [] for way in consumers}
    bare: dict[str, list[float]] = {size: [] for size in sizes}
    for r in range(rounds + 1):  # round 0 warms up and is dropped
        times: dict[tuple[str, str, str], float] = {}
        shuffle(calls)
        for name, size, way in calls:
            messages = [SYSTEM, {"role": "user", "content": f"{size} answer please, round {r}"}]
            recorder = background.stats().cpu_ns
            start = time.perf_counter_ns()
            stream = clients[name].chat.completions.create(
                model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            count = consumers[way](stream)
            elapsed = time.perf_counter_ns() - start - (background.stats().cpu_ns - recorder)
            times[name, size, way] = elapsed / 1000.0
            assert count == sizes[size] + 3, count  # role, pieces, finish, usage
        if r:
            for way in consumers:
                added = {s: times["sessionware", s, way] - times["bare", s, way] for s in sizes}
                slopes[way].append((added["long"] - added["short"]) / (sizes["long"] - sizes["short"]))
            for size in sizes:
                bare[size].append(times["bare", size, "reads chunks"])
    per_chunk = {way: statistics.median(values) for way, values in slopes.items()}
    return per_chunk, statistics.median(bare["short"]), statistics.median(bare["long"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-otel", action="store_true", help="skip OpenLLMetry (no extra packages needed)")
    parser.add_argument("--managed", action="store_true", help="also time managed mode on long sessions")
    args = parser.parse_args()
    ensure_environment(args)
    rounds = 4 if args.quick else 12
    print(f"python {sys.version.split()[0]} at {sys.prefix}; {os.cpu_count()} cpus")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    import sessionware

    verdicts: list[tuple[str, bool, str]] = []
    names = {False: "OpenAI", True: "AsyncOpenAI"}
    export = None if args.no_otel else OtelExport()
    for is_async, name in names.items():
        variants = [("bare", make_client(is_async)), ("sessionware", sessionware.wrap(make_client(is_async)))]
        if export is not None:
            variants.append(
                ("sessionware+otel", sessionware.wrap(make_client(is_async), otel=export.settings))
            )
        med_bare, added = report(
            f"1. {name} chat.completions.create, 10-turn conversations",
            run_rounds(is_async, rounds, variants),
        )
        for variant in [v for v, _ in variants if v != "bare"]:
            share = added[variant].latency / med_bare
            verdicts.append(
                (f"{name}: {variant} adds <= 5% of the bare call", share <= 0.05, f"{100 * share:.1f}%")
            )
        if export is not None:
            made = export.spans()
            print(f"  sessionware+otel exported {made} spans")
            assert made == rounds * CONVERSATIONS * TURNS + CONVERSATIONS * TURNS  # warm-up round too

    if export is not None:
        otel = OpenLLMetry()  # from here on the SDK is instrumented for good
        for is_async, name in names.items():
            variants = [
                ("bare", make_client(is_async)),
                ("sessionware", sessionware.wrap(make_client(is_async))),
                ("sessionware+otel", sessionware.wrap(make_client(is_async), otel=export.settings)),
                ("OpenLLMetry", make_client(is_async)),
            ]
            _, added = report(
                f"2. {name} under OpenLLMetry's instrumentation (spans: in-memory)",
                run_rounds(is_async, rounds, variants, otel),
            )
            ours, theirs = added["sessionware"], added["OpenLLMetry"]
            lighter = ratio(theirs.latency, ours.latency)
            shown = f"{lighter:.1f}x" if ours.latency > 0 else "more than (sessionware's median <= 0)"
            print(
                f"  OpenLLMetry adds {shown} sessionware's latency"
                f" and {ratio(theirs.cpu, ours.cpu):.1f}x its CPU (recorder thread included)"
            )
            verdicts.append((f"{name}: >= 10x lighter than OpenLLMetry", lighter >= 10, shown))
            traced = added["sessionware+otel"]
            lighter = ratio(theirs.latency, traced.latency)
            shown = f"{lighter:.1f}x" if traced.latency > 0 else "more than (its median <= 0)"
            print(
                f"  OpenLLMetry adds {shown} the latency of sessionware with its own OpenTelemetry"
                f" export, {ratio(theirs.cpu, traced.cpu):.1f}x its CPU ({export.spans()} spans made)"
            )
            verdicts.append((f"{name}: with otel=True >= 10x lighter than OpenLLMetry", lighter >= 10, shown))
        assert otel.spans() > 0

    per_chunk, bare_short, bare_long = stream_per_chunk(rounds * 20)
    print(f"\nstreamed chat, 20 vs 200 chunks (bare medians {bare_short:.0f}us / {bare_long:.0f}us)")
    for way, figure in per_chunk.items():
        print(f"  app {way}: sessionware adds {figure:.2f}us per chunk")
    judged = per_chunk["reads chunks"]
    verdicts.append(("streams: <= 2us added per chunk (app reads chunks)", judged <= 2.0, f"{judged:.2f}us"))

    if args.managed:
        import managed_overhead

        calls = 30 if args.quick else 60
        verdicts += managed_overhead.report([managed_overhead.measure(n, calls) for n in (1000, 10000)])

    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("bars (added latency: median of per-call differences)")
    for label, ok, figure in verdicts:
        print(f"  [{'pass' if ok else 'FAIL'}] {label}: {figure}")


if __name__ == "__main__":
    main()
