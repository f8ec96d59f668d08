"""Context quality end to end: the planted-facts conversation replayed through a managed client.

The generated conversation of ``context_quality.py`` (``vm_workload``) is replayed by an
app that keeps its whole history and re-sends it on every call to
``sessionware.wrap(OpenAI(...), mode="managed", context=ContextPolicy(budget=4000))``,
against the mocked API (the real ``openai`` SDK over ``httpx.MockTransport``). Tool turns
go through the app: the model calls ``fetch_logs``, the app runs it and sends the result.

The mocked model is scripted and reads only what it receives. At a probe it plays the
same reader as ``context_quality.py``: if the evidence is in the request it answers;
otherwise it makes at most 2 memory calls (``search_pages`` / ``page_fault``) built only
from the question, which **the wrapper** serves in hidden rounds. Per probe: evidence in
the first request, evidence in the last, stale facts, pinned survival (the pinned
instruction is a ``ContextPolicy.pinned`` item here), tokens of the last request, and
requests over the budget. Every request is counted exactly (tiktoken) on the wire and
compared with the app's own request at that call.

The same metrics from the builder-level harness (``context_quality.run_vm``) on the same
conversation and budget are printed beside them, so the figures can be seen to hold end
to end.

Bars: wire tokens <= 10 % of what the app asked to send; pinned survival 100 %; static
facts after recall >= 0.95; 3-hop chains >= 0.9; stale-fact rate <= 2 %; no request over
the budget.

    python benchmarks/managed_quality.py [--turns 1000] [--seed 7] [--budget 4000]

``context_quality.py --through-wrapper`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from vm_workload import PINNED, Probe, ScriptedReader, Turn, Workload, generate, summarise, visible

MODEL = "gpt-4o-mini"
SYSTEM = "You are a helpful personal assistant."
PROBE_ANSWER = "Here is what I found."


class ScriptedModel:
    """The mocked model: replies as the conversation says, reads at probes."""

    def __init__(self) -> None:
        self.turn: Turn | None = None
        self.probe: Probe | None = None
        self.reader = ScriptedReader(max_calls=2)
        self.calls = 0
        self.requests: list[dict[str, Any]] = []

    def __call__(self, body: Mapping[str, Any]) -> Any:
        from sessionware.adapters.fakes import Reply

        self.requests.append(dict(body))
        messages = body["messages"]
        last = messages[-1]
        if self.probe is not None:
            if visible(json.dumps(messages, ensure_ascii=False), self.probe.gold):
                return Reply(text=PROBE_ANSWER)
            call = self.reader.next_call(messages, self.calls)
            offered = any(
                (t.get("function") or {}).get("name") == "search_pages" for t in body.get("tools") or ()
            )
            if call is None or not offered or body.get("tool_choice") == "none":
                return Reply(text=PROBE_ANSWER)
            self.calls += 1
            name, arguments = call
            return Reply(tool_calls=[(name, json.loads(arguments))])
        turn = self.turn
        assert turn is not None
        if turn.tool is not None and last["role"] == "user":
            return Reply(tool_calls=[("fetch_logs", json.loads(turn.tool[0]))])
        return Reply(text=turn.assistant)


class AppTokens:
    """Exact tokens of the app's growing request, counted once per message."""

    def __init__(self) -> None:
        from sessionware.core.accounting.tokens import counter_for_model

        self.counter = counter_for_model(MODEL)
        self.total = self.counter.count_messages([{"role": "system", "content": SYSTEM}])

    def add(self, message: dict[str, Any]) -> None:
        self.total += self.counter.count_message(message)


def replay(work: Workload, budget: int) -> dict[str, Any]:
    import httpx
    import openai

    import sessionware
    from sessionware.adapters.fakes import FakeOpenAI
    from sessionware.core.accounting.tokens import counter_for_model
    from sessionware.core.memory import ContextPolicy
    from sessionware.core.store import MemoryBackend, Store

    model = ScriptedModel()
    api = FakeOpenAI(model)
    store = Store(MemoryBackend())
    client = openai.OpenAI(
        api_key="bench", max_retries=0, http_client=httpx.Client(transport=api.transport())
    )
    policy = ContextPolicy(budget=budget, pinned=[PINNED])
    sessionware.wrap(client, store=store, session_id="replay", mode="managed", context=policy)
    counter = counter_for_model(MODEL)
    tools = [{"type": "function", "function": {"name": "fetch_logs", "parameters": {"type": "object"}}}]
    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    app = AppTokens()
    app_sent = wire_sent = 0
    last_ratio = 0.0
    rows: list[dict[str, Any]] = []

    def call() -> Any:
        nonlocal app_sent, wire_sent, last_ratio
        first = len(model.requests)
        reply = client.chat.completions.create(model=MODEL, messages=history, tools=tools)
        sent = model.requests[first:]
        counts = [counter.count_messages(b["messages"], b.get("tools")) for b in sent]
        asked = app.total + counter.count_tools(tools)
        app_sent += asked  # once per app call; the wire counts hidden rounds too
        wire_sent += sum(counts)
        last_ratio = counts[-1] / asked
        return reply, sent, counts

    def append(message: dict[str, Any]) -> None:
        history.append(message)
        app.add(message)

    for i, turn in enumerate(work.turns):
        probe = work.probes.get(i)
        model.turn, model.probe, model.calls = turn, probe, 0
        append({"role": "user", "content": probe.question if probe else turn.user})
        reply, sent, counts = call()
        message = reply.choices[0].message
        if message.tool_calls:  # the app runs its tool and asks again
            tool_call = message.tool_calls[0]
            append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": tool_call.id, "type": "function", "function": tool_call.function.model_dump()}
                    ],
                }
            )
            assert turn.tool is not None
            append({"role": "tool", "tool_call_id": tool_call.id, "content": turn.tool[1]})
            reply, more, more_counts = call()
            sent, counts = sent + more, counts + more_counts
        append({"role": "assistant", "content": reply.choices[0].message.content or ""})
        if probe is not None:
            first, final = json.dumps(sent[0]), json.dumps(sent[-1])
            rows.append(
                {
                    "kind": probe.kind,
                    "in_context": visible(first, probe.gold),
                    "after": visible(final, probe.gold),
                    "stale": probe.stale is not None
                    and visible(final, probe.stale)
                    and not visible(final, probe.gold),
                    "pinned": PINNED in first,
                    "tokens": counts[-1],
                    "violation": max(counts) > budget,
                    "calls": len(sent) - 1,
                }
            )
    violations = sum(
        1 for b in model.requests if counter.count_messages(b["messages"], b.get("tools")) > budget
    )
    pinned_everywhere = all(PINNED in json.dumps(b) for b in model.requests)
    store.close()
    return {
        "rows": rows,
        "app_tokens": app_sent,
        "wire_tokens": wire_sent,
        "last_ratio": last_ratio,
        "requests": len(model.requests),
        "violations": violations,
        "pinned_everywhere": pinned_everywhere,
        "stats": sessionware.current_session().stats(),
    }


def run(turns: int, seed: int, budget: int) -> dict[str, bool]:
    from context_quality import run_vm
    from context_quality import summarise as direct_summary

    work = generate(seed, turns)
    started = time.perf_counter()
    direct = direct_summary(run_vm(work, budget))
    direct_s = time.perf_counter() - started
    started = time.perf_counter()
    e2e = replay(work, budget)
    e2e_s = time.perf_counter() - started
    through = summarise(e2e["rows"])
    stats = e2e["stats"]
    print(
        f"\n== context quality through the managed wrapper: {turns:,} turns, seed {seed}, budget {budget:,}"
    )
    print(
        f"{len(e2e['rows'])} probes, {e2e['requests']:,} requests "
        f"({direct_s:.1f} s builder-level, {e2e_s:.1f} s end to end)"
    )
    header = (
        f"{'harness':<16}{'in ctx':>8}{'after':>7}{'static':>7}{'para':>6}{'upd':>6}{'chain3':>7}"
        f"{'needle':>7}{'stale':>7}{'pinned':>7}{'tokens':>8}{'over':>5}{'calls':>6}"
    )
    print(header)
    for name, r in (("builder (direct)", direct), ("through wrapper", through)):
        print(
            f"{name:<16}{r['in_context']:>8.2f}{r['after']:>7.2f}{r['static']:>7.2f}{r['paraphrased']:>6.2f}"
            f"{r['updated']:>6.2f}{r['chain3']:>7.2f}{r['tool_needle']:>7.2f}{r['stale']:>7.2f}"
            f"{r['pinned']:>7.2f}{r['tokens']:>8.0f}{r['violations']:>5}{r['calls']:>6.2f}"
        )
    ratio = e2e["wire_tokens"] / e2e["app_tokens"]
    print(
        f"wire tokens {e2e['wire_tokens']:,} vs the app's requests {e2e['app_tokens']:,}: "
        f"{100 * ratio:.1f} % "
        f"(last call {100 * e2e['last_ratio']:.1f} %); requests over budget: {e2e['violations']}"
    )
    print(
        f"session stats: app_input_tokens {stats.app_input_tokens:,}, managed_input_tokens "
        f"{stats.managed_input_tokens:,}, hidden rounds' input {stats.hidden_input_tokens:,}, "
        f"tokens_saved {stats.tokens_saved:,}, page faults {stats.page_faults}"
    )
    bars = {
        "wire tokens <= 10% of the app's": ratio <= 0.10,
        "pinned survival 100%": through["pinned"] == 1.0 and e2e["pinned_everywhere"],
        "static after faults >= 0.95": through["static"] >= 0.95,
        "3-hop chains >= 0.9": through["chain3"] >= 0.9,
        "stale-fact rate <= 2%": through["stale"] <= 0.02,
        "zero budget violations": e2e["violations"] == 0,
        "evidence after recall within 0.02 of the builder-level harness": through["after"]
        >= direct["after"] - 0.02,
    }
    print("bars: " + "; ".join(f"{k}: {'ok' if ok else 'NOT MET'}" for k, ok in bars.items()))
    return bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=int, default=4000)
    args = parser.parse_args()
    bars = run(args.turns, args.seed, args.budget)
    failed = [k for k, ok in bars.items() if not ok]
    print("\nall bars met" if not failed else "\nBARS NOT MET: " + "; ".join(failed))


if __name__ == "__main__":
    main()
