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
added latency. Plain and streamed chat calls are measured. Managed mode is not measured:
the proxy hook records (observe mode) only; managed mode runs in the app's process
(``benchmarks/managed_overhead.py``).

    python benchmarks/proxy_overhead.py [--calls 300] [--store sqlite:///path.db]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--store", default=None, help="the hooked proxy's store (default: temporary SQLite)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sessionware-bench-proxy-"))
    store = args.store or f"sqlite:///{folder / 'bench.db'}"
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
    finally:
        for proxy in proxies:
            proxy.stop()
        upstream.terminate()
        upstream.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)  # configs, logs and the default store


if __name__ == "__main__":
    main()
