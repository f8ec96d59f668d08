"""How stable managed mode keeps the front of its requests, for providers' prompt caches.

Provider caches match a byte-exact prefix (tools, then system, then messages). A chat
app re-sending its growing history through ``sessionware.wrap(..., mode="managed")`` is
played for N turns against ``FakeOpenAI`` (real ``openai`` SDK, HTTP layer answered
offline); every request body that goes on the wire is kept, serialised as a provider
would read it (tools, then messages, in order), and compared with the request before it:

* **identical prefix share**: the longest common prefix of the two, in bytes, over the
  length of the later request: the part a prefix cache could serve (the rest is the
  new turn, or what a compaction rewrote);
* **calls with the previous call's whole stable part**: calls whose system prompt and
  memory block are byte-identical to the previous call's (no compaction between them);
* **identical / new bytes per call**: the same prefix in bytes, and what follows it (what
  a prefix cache cannot serve). With the recall region on (the default) each request
  carries the region chosen for its own message after the prefix, so the share falls
  while the identical bytes stay what they are without it: ``--recall off`` compares;
* the same figures for the app's own requests (what it would send unmanaged: its whole
  history, append-only, so every earlier request is a prefix of the next).

    python benchmarks/prefix_stability.py [--turns 300] [--budget 4000 8000] [--recall on off]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from typing import Any

import httpx
import openai

import sessionware
from sessionware import ContextPolicy
from sessionware.adapters.fakes import FakeOpenAI, Reply

MODEL = "gpt-4o-mini"


def wire_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps([body.get("tools") or [], body["messages"]], ensure_ascii=False).encode()


def common_prefix(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search on the first difference: bytes compare in C
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def stable_part(body: dict[str, Any]) -> bytes:
    """The system message(s) at the front: the app's prompt and the memory block."""
    front = []
    for message in body["messages"]:
        if message.get("role") != "system":
            break
        front.append(message)
    return json.dumps([body.get("tools") or [], front]).encode()


def play(turns: int, budget: int | None, recall: bool = True) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def model(body: Any) -> Reply:
        sent.append(json.loads(json.dumps(body)))
        return Reply(text=f"Noted: {body['messages'][-1].get('content', '')[:60]}")

    client = openai.OpenAI(
        api_key="offline", http_client=httpx.Client(transport=FakeOpenAI(model).transport())
    )
    if budget is not None:
        client = sessionware.wrap(client, mode="managed", context=ContextPolicy(budget=budget, recall=recall))
    history: list[dict[str, Any]] = [{"role": "system", "content": "You help plan a community garden. " * 8}]
    for i in range(turns):
        history.append(
            {
                "role": "user",
                "content": f"Week {i}: the seed tray for bed {i % 12} is in locker C-{i:04}; "
                f"water it every {i % 4 + 1} days and note the soil was {('dry', 'damp', 'wet')[i % 3]}.",
            }
        )
        reply = client.chat.completions.create(model=MODEL, messages=history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    return sent


def figures(sent: list[dict[str, Any]]) -> dict[str, float]:
    shares, same, new, stable_same = [], [], [], 0
    for before, after in itertools.pairwise(sent):
        a, b = wire_bytes(before), wire_bytes(after)
        common = common_prefix(a, b)
        shares.append(common / len(b))
        same.append(common)
        new.append(len(b) - common)
        stable_same += stable_part(before) == stable_part(after)
    pairs = max(len(sent) - 1, 1)
    return {
        "mean": statistics.mean(shares),
        "median": statistics.median(shares),
        "stable": stable_same / pairs,
        "same": statistics.mean(same),
        "new": statistics.mean(new),
        "size": statistics.mean(len(wire_bytes(b)) for b in sent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--budget", type=int, nargs="*", default=[4000, 8000])
    parser.add_argument("--recall", choices=["on", "off"], nargs="*", default=["on", "off"])
    args = parser.parse_args()
    print(f"{args.turns} turns; byte-identical prefix of each request with the one before it")
    print(
        f"{'requests':<34} {'mean share':>11} {'median':>8} {'stable part unchanged':>22}"
        f" {'identical B':>12} {'new B':>8} {'bytes/call':>11}"
    )
    runs: list[tuple[int | None, bool]] = [(None, False)]
    runs += [(budget, recall == "on") for budget in args.budget for recall in args.recall]
    for budget, recall in runs:
        f = figures(play(args.turns, budget, recall))
        mode = "on" if recall else "off"
        name = "app's own (unmanaged)" if budget is None else f"managed, {budget:,}, recall {mode}"
        print(
            f"{name:<34} {100 * f['mean']:>10.1f}% {100 * f['median']:>7.1f}% {100 * f['stable']:>21.1f}%"
            f" {f['same']:>12,.0f} {f['new']:>8,.0f} {f['size']:>11,.0f}"
        )


if __name__ == "__main__":
    main()
