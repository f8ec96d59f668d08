"""Managed mode at scale: long app histories, fresh worker processes, memory per session.

Measured as a new user would run it: ``sessionware.wrap(AsyncOpenAI(...), mode="managed",
context=ContextPolicy(budget=4000))``, the app re-sending its whole history (N turns,
every 10th with a tool call and its result) on every call, the HTTP layer mocked
(``FakeOpenAI`` over ``httpx.MockTransport``), everything in one run:

* **warm**: a process that already made calls on the session. Each timed managed call is
  paired with the bare SDK call with the app's full history (every few calls: it is slow)
  and with the bare call of the body managed mode sent (``wire``), interleaved. *Added*
  is managed minus bare(wire) of the same call: what sessionware costs on top of the SDK
  sending the request it sends.
* **fresh**: the session is already stored (SQLite file, real ``redis-server``), written
  by a process that made a managed call on it and exited. A new process makes one call
  on another, small session (imports, tokenizer tables and prices load there, as in a
  worker that served anyone before), then its first call on the stored session, then
  warm calls. *First - warm* is what a worker pays the first time it meets a long session.
* **memory**: in that fresh process, the RSS growth from holding the app's history
  (``history``) and from the managed calls on top of it (``session``), after
  ``gc.collect()``.

Bars (issue 15): managed wall time <= 1/20 of the bare call at 10k turns; added p95 <=
20 ms; fresh first call <= warm + 100 ms at 10k turns on SQLite and Redis.

    python benchmarks/managed_scale.py [--turns 1000 10000] [--calls 20] [--stores sqlite redis]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from managed_overhead import SYSTEM, app_history, percentile, preload

MODEL = "gpt-4o-mini"
BUDGET = 4000
SESSION = "scale"
FRESH_WARM_CALLS = 5


def _reply(body: Any) -> Any:
    from sessionware.adapters.fakes import Reply

    return Reply(text="Noted.")


def _client(api: Any) -> Any:
    import httpx
    import openai

    return openai.AsyncOpenAI(
        api_key="bench", max_retries=0, http_client=httpx.AsyncClient(transport=api.transport())
    )


def _managed(api: Any, store: Any, session_id: str) -> Any:
    import sessionware
    from sessionware.core.memory import ContextPolicy

    return sessionware.wrap(
        _client(api), store=store, session_id=session_id, mode="managed", context=ContextPolicy(budget=BUDGET)
    )


def _turn(messages: list[dict[str, Any]], i: int) -> None:
    messages.append({"role": "user", "content": f"New turn {i}: and how does item {i} relate to P-{i % 97}?"})


async def _timed(coro: Any) -> tuple[Any, float]:
    result, wall, _ = await _timed_cpu(coro)
    return result, wall


async def _timed_cpu(coro: Any) -> tuple[Any, float, float]:
    """The result, wall time and CPU time of the process (all its threads: the store's
    reads and writer too), in ms. On a shared machine the wall time of a call is several
    times its CPU time; the CPU time is what the code costs wherever it runs."""
    start, cpu = time.perf_counter(), time.process_time()
    result = await coro
    return result, (time.perf_counter() - start) * 1000.0, (time.process_time() - cpu) * 1000.0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- warm -------------------------------------------------------------------------------------


async def warm(turns: int, calls: int, workdir: Path) -> dict[str, Any]:
    from sessionware.adapters.fakes import FakeOpenAI
    from sessionware.core.store.url import open_store

    api = FakeOpenAI(_reply)
    store = open_store(f"sqlite:///{workdir / f'warm-{turns}.db'}")
    history = app_history(turns)
    preload(store, SESSION, history)
    managed, bare, wire = _managed(api, store, SESSION), _client(api), _client(api)
    messages = [{"role": "system", "content": SYSTEM}, *history]
    rows: dict[str, list[float]] = {"managed": [], "bare": [], "wire": [], "added": [], "added_cpu": []}
    every = 2 if turns <= 1000 else 5
    for i in range(calls + 3):  # the first calls fold the log into memory: dropped
        _turn(messages, i)
        gc.collect()
        gc.disable()
        try:
            reply, took, took_cpu = await _timed_cpu(
                managed.chat.completions.create(model=MODEL, messages=messages)
            )
            sent = api.requests[-1]
            _, wire_took, wire_cpu = await _timed_cpu(
                wire.chat.completions.create(model=MODEL, messages=sent["messages"], tools=sent.get("tools"))
            )
            if i >= 3 and (i - 3) % every == 0:
                _, bare_took = await _timed(bare.chat.completions.create(model=MODEL, messages=messages))
                rows["bare"].append(bare_took)
        finally:
            gc.enable()
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
        if i >= 3:
            rows["managed"].append(took)
            rows["wire"].append(wire_took)
            rows["added"].append(took - wire_took)
            rows["added_cpu"].append(took_cpu - wire_cpu)
    store.close()
    return {"turns": turns, "messages": len(messages), "wire_messages": len(sent["messages"]), **rows}


# -- fresh process ----------------------------------------------------------------------------


def prepare(url: str, turns: int) -> None:
    """Store a session of ``turns`` turns, as a process that ran managed calls leaves it."""
    from sessionware.adapters.fakes import FakeOpenAI
    from sessionware.core.store.url import open_store

    store = open_store(url)
    history = app_history(turns)
    preload(store, SESSION, history)
    messages = [{"role": "system", "content": SYSTEM}, *history]
    _turn(messages, -1)
    api = FakeOpenAI(_reply)

    async def one() -> None:
        await _managed(api, store, SESSION).chat.completions.create(model=MODEL, messages=messages)

    asyncio.run(one())
    store.flush()
    store.close()


async def fresh_child(url: str, turns: int) -> dict[str, Any]:
    """Run in a new process: one call elsewhere, then the first and warm calls on ``SESSION``."""
    from sessionware.adapters.fakes import FakeOpenAI
    from sessionware.core.store.url import open_store

    api = FakeOpenAI(_reply)
    store = open_store(url)
    small = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello"}]
    await _managed(api, store, "warm-up").chat.completions.create(model=MODEL, messages=small)
    gc.collect()
    before_history = rss_mb()
    messages = [{"role": "system", "content": SYSTEM}, *app_history(turns)]
    _turn(messages, -1)
    messages.append({"role": "assistant", "content": "Noted."})  # the preparing call's answer
    gc.collect()
    with_history = rss_mb()
    client = _managed(api, store, SESSION)
    times, cpu = [], []
    for i in range(FRESH_WARM_CALLS + 1):
        _turn(messages, i)
        reply, took, used = await _timed_cpu(client.chat.completions.create(model=MODEL, messages=messages))
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
        times.append(took)
        cpu.append(used)
    gc.collect()
    after = rss_mb()
    store.close()
    return {
        "first": times[0],
        "warm": times[1:],
        "first_cpu": cpu[0],
        "warm_cpu": cpu[1:],
        "history_mb": with_history - before_history,
        "session_mb": after - with_history,
    }


def fresh(url: str, turns: int) -> dict[str, Any]:
    prepare(url, turns)
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(turns)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"fresh process failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- report -----------------------------------------------------------------------------------


def report(warm_rows: list[dict[str, Any]], fresh_rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    verdicts: list[tuple[str, bool, str]] = []
    print("\nwarm process, AsyncOpenAI chat.completions.create, SQLite store (ms per call)")
    print(
        f"  {'turns':>7} {'app msgs':>9} {'wire msgs':>10} {'bare':>9} {'managed p50':>12} {'p95':>8} "
        f"{'wire p50':>9} {'added p50':>10} {'added p95':>10} {'managed/bare':>13} "
        f"{'added CPU p50':>14} {'p95':>6}"
    )
    for r in warm_rows:
        bare, managed = statistics.median(r["bare"]), statistics.median(r["managed"])
        added95 = percentile(r["added"], 0.95)
        print(
            f"  {r['turns']:>7,} {r['messages']:>9,} {r['wire_messages']:>10,} {bare:>9.1f} {managed:>12.1f} "
            f"{percentile(r['managed'], 0.95):>8.1f} {statistics.median(r['wire']):>9.1f} "
            f"{statistics.median(r['added']):>10.2f} {added95:>10.2f} {managed / bare:>13.4f} "
            f"{statistics.median(r['added_cpu']):>14.2f} {percentile(r['added_cpu'], 0.95):>6.2f}"
        )
        verdicts.append((f"added p95 <= 20 ms at {r['turns']:,} turns", added95 <= 20.0, f"{added95:.2f} ms"))
        if r["turns"] >= 10_000:
            ratio = managed / bare
            verdicts.append(
                (f"managed <= 1/20 of bare at {r['turns']:,} turns", ratio <= 0.05, f"1/{1 / ratio:.1f}")
            )
    print("  added: managed minus the bare call of the body managed mode sent, call by call (wall; CPU: of")
    print("  the process, all threads)")
    if fresh_rows:
        print("\nfresh process: first call on a stored session vs warm calls (ms); RSS (MB)")
        print(
            f"  {'store':>7} {'turns':>7} {'first':>9} {'warm p50':>9} {'first-warm':>11} "
            f"{'CPU: first':>11} {'warm p50':>9} {'first-warm':>11} "
            f"{'history MB':>11} {'session MB':>11} {'session/history':>16}"
        )
    for r in fresh_rows:
        warm_p50 = statistics.median(r["warm"])
        extra = r["first"] - warm_p50
        share = r["session_mb"] / max(r["history_mb"], 0.1)
        warm_cpu = statistics.median(r["warm_cpu"])
        print(
            f"  {r['store']:>7} {r['turns']:>7,} {r['first']:>9.1f} {warm_p50:>9.1f} {extra:>11.1f} "
            f"{r['first_cpu']:>11.1f} {warm_cpu:>9.1f} {r['first_cpu'] - warm_cpu:>11.1f} "
            f"{r['history_mb']:>11.1f} {r['session_mb']:>11.1f} {share:>16.2f}"
        )
        if r["turns"] >= 10_000:
            verdicts.append(
                (
                    f"fresh first call <= warm + 100 ms, {r['store']}, {r['turns']:,} turns",
                    extra <= 100.0,
                    f"+{extra:.1f} ms",
                )
            )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--stores", nargs="*", default=["sqlite", "redis"])
    parser.add_argument("--child", nargs=2, metavar=("URL", "TURNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(fresh_child(args.child[0], int(args.child[1])))
        print(json.dumps(result))
        return
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        warm_rows = [asyncio.run(warm(turns, args.calls, workdir)) for turns in args.turns]
        fresh_rows: list[dict[str, Any]] = []
        with redis_server(workdir) as redis_url:
            for store in args.stores:
                for turns in args.turns:
                    if store == "redis":
                        if redis_url is None:
                            print("redis-server not installed: Redis skipped")
                            break
                        url = redis_url.rsplit("/", 1)[0] + f"/{turns % 16}"
                    else:
                        url = f"sqlite:///{workdir / f'fresh-{turns}.db'}"
                    fresh_rows.append({"store": store, "turns": turns, **fresh(url, turns)})
    verdicts = report(warm_rows, fresh_rows)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\nbars")
    for label, ok, figure in verdicts:
        print(f"  [{'pass' if ok else 'FAIL'}] {label}: {figure}")


if __name__ == "__main__":
    main()
