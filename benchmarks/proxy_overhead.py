"""Latency the sessionware hook adds to a LiteLLM proxy call, against the same proxy without it.

Three ways to the same fake provider API (its own process, on 127.0.0.1), called in
turn, call by call, by the real ``openai`` SDK:

* ``direct``: the upstream itself;
* ``bare``: a LiteLLM proxy (1 worker) without the hook;
* ``hooked``: the same proxy config with ``ProxyHook`` recording into a store (observe mode);
* ``control``: a second proxy without the hook, to show how far two identical proxies
  differ on this machine (the noise floor of the comparison).

The proxy's own added latency is ``bare - direct``; the hook's is ``hooked - bare``, taken
as the median of call-by-call differences (the three calls of a round are microseconds
apart, so the machine's drift cancels out). Bar: the hook adds <= 5 % of the proxy's own
added latency. Plain and streamed chat calls are measured.

Managed mode (``--managed``, after the observe part): a proxy with the hook in managed
mode (``SESSIONWARE_MODE=managed``, ``--budget`` tokens) is sent a conversation of
``--turns`` turns (1,000: 2,001 messages, resent whole on every call, one turn more each
time). The upstream runs in this process and keeps what it receives, so each call's
wire (what the managed proxy sent) is checked against the budget and then sent to the
bare proxy as it is. End to end, ``managed - bare(its wire)`` also holds LiteLLM's own
handling of the app's large request (parsing, logging), which the bare proxy sent the
small wire never pays, and ``managed - bare(whole history)`` subtracts what the smaller
wire saves; so the local time is measured where it is spent: the managed hook's
pre-call and post-call work (context built, records, commit) timed in this process on
the same conversation, each call's messages parsed anew from JSON as the proxy hands
them over, with LiteLLM's mock response as the model. Bars: every wire within the
budget; the hook's local time <= 20 ms per call. The first call of a session records the
whole history: its end-to-end time through each fresh proxy (managed and bare, both
paying LiteLLM's own first-request work) and the hook's part of it are printed too.

    python benchmarks/proxy_overhead.py [--calls 300] [--store sqlite:///path.db]
        [--managed] [--turns 1000] [--budget 8000] [--managed-calls 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import openai

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from sessionware.adapters.litellm.launch import ProxyProcess, free_port

HOOK = "from sessionware.adapters.litellm.proxy import ProxyHook\nhook = ProxyHook.from_env()\n"
KEY = "sk-bench"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is the capital of Portugal? Answer in one word."},
]


def config(upstream: str, *, hook: bool) -> str:
    lines = [
        "model_list:",
        "  - model_name: gpt-4o-mini",
        f"    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{upstream}/v1', api_key: offline}}",
        "general_settings:",
        f"  master_key: {KEY}",
    ]
    if hook:
        lines += ["litellm_settings:", "  callbacks: sessionware_hook.hook"]
    return "\n".join(lines) + "\n"


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionware.adapters.litellm.fake_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions", data=b'{"messages": []}', method="POST"
            )
            with urllib.request.urlopen(request, timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the fake upstream did not start")


def one_call(client: openai.OpenAI, *, stream: bool) -> float:
    start = time.perf_counter()
    if stream:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass
    else:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    return time.perf_counter() - start


def measure(clients: dict[str, openai.OpenAI], calls: int, *, stream: bool) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in clients}
    order = list(clients)
    for i in range(calls):
        rotated = order[i % len(order) :] + order[: i % len(order)]  # no side always goes first
        for name in rotated:
            times[name].append(one_call(clients[name], stream=stream))
    return times


def paired(a: list[float], b: list[float]) -> float:
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def report(label: str, times: dict[str, list[float]]) -> tuple[float, float]:
    ms: Callable[[float], str] = lambda s: f"{s * 1000:7.3f} ms"  # noqa: E731
    proxy_own = paired(times["bare"], times["direct"])
    hook = paired(times["hooked"], times["bare"])
    control = paired(times["control"], times["bare"])
    print(f"\n{label}: median latency per call ({len(times['direct'])} calls each, interleaved)")
    for name, values in times.items():
        print(f"  {name:<7} {ms(statistics.median(values))}")
    print(f"  the proxy's own added latency (bare - direct, median of pairs): {ms(proxy_own)}")
    print(f"  the hook's added latency (hooked - bare, median of pairs):      {ms(hook)}")
    print(f"  noise floor: a second bare proxy (control - bare):              {ms(control)}")
    share = hook / proxy_own if proxy_own > 0 else float("nan")
    allowed = 0.05 * proxy_own
    if abs(control) > allowed:
        verdict = f"inconclusive: two identical proxies differ by {ms(abs(control))}, more than that"
    else:
        verdict = "met" if share <= 0.05 else "MISSED"
    print(f"  hook / proxy's own: {share:.1%}   bar <= 5 % ({ms(allowed)}): {verdict}")
    return proxy_own, hook


def history(turns: int) -> list[dict[str, object]]:
    """A conversation of ``turns`` answered turns and a new question, as an app resends it."""
    sent: list[dict[str, object]] = [{"role": "system", "content": "You are a patient archivist."}]
    for turn in range(turns):
        note = f"Day {turn}: crate {turn * 7} arrived with a letter about the harbour and the tides."
        sent += [{"role": "user", "content": note}, {"role": "assistant", "content": f"You said: {note}"}]
    return sent


def timed(client: openai.OpenAI, messages: list[dict[str, object]], **extra: object) -> float:
    start = time.perf_counter()
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, **extra)  # type: ignore[call-overload]
    return time.perf_counter() - start


def hook_seconds(
    turns: int, budget: int, calls: int, store: str
) -> tuple[tuple[float, float], list[float], list[float]]:
    """The managed hook's own time, in process: (pre, post) of the session's first call
    (the whole history recorded), then pre-call + post-call + commit per later call, and
    the CPU time of the calling thread in those (what the machine's load does not stretch).

    Each call hands the hook the request as the proxy does: parsed anew from its JSON body
    (new dicts and strings every call, equal to the ones before)."""
    import asyncio
    import json
    import uuid

    import litellm

    from sessionware.adapters.litellm.proxy import ManagedProxyHook

    async def run() -> tuple[tuple[float, float], list[float], list[float]]:
        hook = ManagedProxyHook(store=store, budget=budget)
        conversation = history(turns)
        first = (0.0, 0.0)
        spent: list[float] = []
        cpu: list[float] = []
        for call in range(calls + 5):
            question = f"Question {call}: which crate came with letter {call}?"
            conversation.append({"role": "user", "content": question})
            data = {
                "model": "gpt-4o-mini",
                "messages": json.loads(json.dumps(conversation)),
                "litellm_call_id": str(uuid.uuid4()),
                "metadata": {"session_id": f"hook-{os.getpid()}"},
            }
            start, thread = time.perf_counter(), time.thread_time()
            sent = await hook.async_pre_call_hook(None, None, data, "acompletion")
            before, thread_before = time.perf_counter() - start, time.thread_time() - thread
            assert isinstance(sent, dict)
            answer = await litellm.acompletion(
                model="gpt-4o-mini", messages=sent["messages"], mock_response=f"You said: {question}"
            )
            start, thread = time.perf_counter(), time.thread_time()
            await hook.async_post_call_success_hook(data, None, answer)
            after, thread_after = time.perf_counter() - start, time.thread_time() - thread
            if call == 0:  # the first call records the whole history, once per session
                first = (before, after)
            elif call >= 5:
                spent.append(before + after)
                cpu.append(thread_before + thread_after)
            conversation.append({"role": "assistant", "content": f"You said: {question}"})
        return first, spent, cpu

    return asyncio.run(run())


def measure_managed(args: argparse.Namespace, folder: Path, store: str) -> None:
    from sessionware.adapters.litellm.fake_upstream import FakeUpstream
    from sessionware.core.accounting.tokens import counter_for_model

    upstream = FakeUpstream(keep=4).start()
    base = upstream.base_url
    proxies: list[ProxyProcess] = []
    try:
        for name, mode in (("bare-m", {}), ("managed", {"SESSIONWARE_MODE": "managed"})):
            (folder / name).mkdir()
            (folder / name / "config.yaml").write_text(config(base, hook=bool(mode)))
            (folder / name / "sessionware_hook.py").write_text(HOOK)
            env = {"SESSIONWARE_STORE": store, "SESSIONWARE_BUDGET": str(args.budget), **mode}
            print(f"starting the {name} proxy...", flush=True)
            proxies.append(ProxyProcess.start(folder / name / "config.yaml", workers=1, env=env))
        bare = openai.OpenAI(base_url=f"{proxies[0].base_url}/v1", api_key=KEY, max_retries=0)
        managed = openai.OpenAI(base_url=f"{proxies[1].base_url}/v1", api_key=KEY, max_retries=0)
        start = time.perf_counter()
        counter = counter_for_model("gpt-4o-mini")  # the tokenizer: loaded once per process
        tokenizer = time.perf_counter() - start
        conversation = history(args.turns)
        session = {"metadata": {"session_id": f"bench-{os.getpid()}"}}
        conversation.append({"role": "user", "content": "Which crate came first?"})
        print(f"the first call of each proxy ({len(conversation)} messages)...", flush=True)
        first_bare = timed(bare, conversation)
        first_managed = timed(managed, conversation, **session)
        conversation.append({"role": "assistant", "content": "You said: Which crate came first?"})
        local: list[float] = []
        whole: list[float] = []
        wires: list[int] = []
        app_tokens = counter.count_messages(conversation)
        for call in range(args.managed_calls + 5):
            question = f"Question {call}: which crate came with letter {call}?"
            conversation.append({"role": "user", "content": question})
            m = timed(managed, conversation, **session)
            wire = next(b for b in reversed(upstream.received) if b["messages"][-1]["content"] == question)
            messages = wire["messages"]
            tools = wire.get("tools")
            b = timed(bare, messages, **({"tools": tools} if tools else {}))
            full = timed(bare, conversation)
            conversation.append({"role": "assistant", "content": f"You said: {question}"})
            if call >= 5:  # warm-up: the first calls after the bootstrap
                local.append(m - b)
                whole.append(m - full)
                wires.append(counter.count_messages(messages, tools))
        ms: Callable[[float], str] = lambda s: f"{s * 1000:7.2f} ms"  # noqa: E731
        added = statistics.median(local)
        print(f"\nmanaged mode at {args.turns} turns ({len(local)} calls, budget {args.budget} tokens)")
        print(
            f"  the app's history: ~{app_tokens} tokens; the wire: max {max(wires)}, median "
            f"{statistics.median(wires):.0f} tokens: within the budget: {max(wires) <= args.budget}"
        )
        print(f"  end to end, managed - bare sent its wire (median of pairs): {ms(added)}")
        print(f"  end to end, managed - bare sent the whole history (median): {ms(statistics.median(whole))}")
        (pre, post), own, cpu = hook_seconds(
            args.turns, args.budget, len(local), f"sqlite:///{folder / 'hook.db'}"
        )
        print(
            f"  first call of a proxy process (the whole history recorded): managed {first_managed:.2f} s,"
            f" bare {first_bare:.2f} s ({first_managed / first_bare:.2f}x); the hook's part, in process:"
            f" pre {pre * 1000:.0f} ms + post {post * 1000:.0f} ms, and the tokenizer's load (once per"
            f" process) {tokenizer * 1000:.0f} ms"
        )
        median = statistics.median(own)
        print(
            f"  the hook's local time per call (pre + post + commit, median): {ms(median)}"
            f"   max {ms(max(own))}   bar <= 20 ms: {'met' if median <= 0.020 else 'MISSED'}"
        )
        print(f"  of which CPU of the calling thread (median, informative): {ms(statistics.median(cpu))}")
    finally:
        for proxy in proxies:
            proxy.stop()
        upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--store", default=None, help="the hooked proxy's store (default: temporary SQLite)")
    parser.add_argument("--managed", action="store_true", help="measure managed mode too")
    parser.add_argument("--managed-only", action="store_true", help="measure managed mode only")
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=8000)
    parser.add_argument("--managed-calls", type=int, default=60)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sessionware-bench-proxy-"))
    store = args.store or f"sqlite:///{folder / 'bench.db'}"
    if args.managed_only:
        try:
            measure_managed(args, folder, store)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    upstream_port = free_port()
    upstream = start_upstream(upstream_port)
    base = f"http://127.0.0.1:{upstream_port}"
    proxies: list[ProxyProcess] = []
    try:
        for name, hook in (("bare", False), ("hooked", True), ("control", False)):
            (folder / name).mkdir()
            (folder / name / "config.yaml").write_text(config(base, hook=hook))
            (folder / name / "sessionware_hook.py").write_text(HOOK)
            print(f"starting the {name} proxy...", flush=True)
            proxies.append(
                ProxyProcess.start(folder / name / "config.yaml", workers=1, env={"SESSIONWARE_STORE": store})
            )
        clients = {
            "direct": openai.OpenAI(base_url=f"{base}/v1", api_key="offline", max_retries=0),
            "bare": openai.OpenAI(base_url=f"{proxies[0].base_url}/v1", api_key=KEY, max_retries=0),
            "hooked": openai.OpenAI(base_url=f"{proxies[1].base_url}/v1", api_key=KEY, max_retries=0),
            "control": openai.OpenAI(base_url=f"{proxies[2].base_url}/v1", api_key=KEY, max_retries=0),
        }
        measure(clients, 20, stream=False)  # warm-up: connections, first-call imports
        print(f"store: {store}")
        report("plain chat calls", measure(clients, args.calls, stream=False))
        report("streamed chat calls", measure(clients, args.calls, stream=True))
        for proxy in proxies:
            proxy.stop()
        if args.managed:
            measure_managed(args, folder, store)
    finally:
        for proxy in proxies:
            proxy.stop()
        upstream.terminate()
        upstream.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)  # configs, logs and the default store


if __name__ == "__main__":
    main()
