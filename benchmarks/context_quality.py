"""Context quality of the VM against recency baselines, on a seeded planted-facts chat.

A generated conversation (``--turns``, 2,000-10,000 supported) plants
static facts, paraphrased-probe facts, updated facts (the old value is a trap), a pinned
instruction, 3-hop key chains, needles in large tool outputs and near-duplicate
distractors. At each probe the context is built at budgets 1k/2k/4k/8k:

* ``vm``: ``build`` with the probe as the incoming turn; the scripted reader may then
  make at most 2 memory calls (``search_pages`` / ``page_fault``) built from the
  question only, served by ``handle_vm_tool_call`` and appended as the model would see
  them; every request (the build and each follow-up) must stay within the budget;
* ``recency``: the newest messages that fit (LiteLLM ``trim_messages`` style);
* ``recency+bm25``: BM25 top-10 of the question over older messages in half the budget,
  recency in the rest (equal tokens);
* ``seed``: the whole transcript, as the seed package sends it (tokens only).

Metrics: evidence in context before recall, evidence after recall, stale-fact rate,
pinned survival, tokens per probe, budget violations; per probe kind, with ratios
against both baselines. By default it runs at 3,000 and at 10,000 turns (the two ends
the issue names; about half a minute on 2 cores).

``--explain`` prints, for each failed VM probe, the reader's calls with their results and
where search ranks the evidence page. ``--through-wrapper`` also replays a 1,000-turn
conversation through a managed ``OpenAI`` client at a 4k budget (``managed_quality.py``):
the same figures end to end, and wire tokens against what the app asked to send.

    python benchmarks/context_quality.py [--turns 3000 10000] [--seed 7] [--explain] [--through-wrapper]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from vm_baselines import History, recency_bm25_context, recency_context
from vm_workload import KINDS, PINNED, Probe, ScriptedReader, Turn, Workload, generate, summarise, visible

from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.memory import MemoryPage, VirtualMemory, build, handle_vm_tool_call
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ToolCall
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store import MemoryBackend, Store

MODEL = "gpt-4o-mini"
SYSTEM = "You are a helpful personal assistant."
BUDGETS = (1000, 2000, 4000, 8000)


def record(state: SessionState, i: int, turn: Turn) -> list[dict[str, Any]]:
    """Record one turn; return it as OpenAI messages (for the baselines' history)."""
    meta = {"pin": True} if turn.pin else {}
    state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=turn.user, metadata=meta)
    out: list[dict[str, Any]] = [{"role": "user", "content": turn.user}]
    if turn.tool:
        call = ToolCall(id=f"call_{i}", name="fetch_logs", arguments=turn.tool[0])
        state.record(
            EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=None, tool_calls=(call,)
        )
        state.record(
            EventType.MESSAGE, EventSource.TOOL, role=Role.TOOL, tool_call_id=call.id, content=turn.tool[1]
        )
        out.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                ],
            }
        )
        out.append({"role": "tool", "tool_call_id": call.id, "content": turn.tool[1]})
    state.record(EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=turn.assistant)
    out.append({"role": "assistant", "content": turn.assistant})
    return out


def answer_with_vm(state: SessionState, probe: Probe, budget: int, reader: ScriptedReader) -> dict[str, Any]:
    """One probe through the managed-call loop: build, then up to 2 served memory calls."""
    counter = counter_for_model(MODEL)
    incoming = [{"role": "user", "content": probe.question}]
    ctx = build(state, model=MODEL, budget=budget, incoming_messages=incoming)
    assert ctx.report is not None
    messages = list(ctx.messages)
    before = json.dumps(messages, ensure_ascii=False)
    tokens = ctx.report.tokens
    worst = tokens
    calls = 0
    trace: list[str] = []
    while not visible(json.dumps(messages, ensure_ascii=False), probe.gold):
        call = reader.next_call(messages, calls)
        if call is None:
            break
        name, args = call
        call_id = f"vm_{calls}"
        result = handle_vm_tool_call(state, name, args)
        trace.append(f"{name} {args} -> {result[:400]}")
        turn_msgs = [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": result},
        ]
        messages.extend(turn_msgs)
        calls += 1
        # The follow-up request resends everything: it is the one that must fit the budget.
        worst = counter.count_messages(messages, ctx.tools)
        tokens = worst
    after = json.dumps(messages, ensure_ascii=False)
    return {
        "in_context": visible(before, probe.gold),
        "after": visible(after, probe.gold),
        "stale": probe.stale is not None and visible(after, probe.stale) and not visible(after, probe.gold),
        "pinned": PINNED in before,
        "tokens": tokens,
        "violation": worst > budget,
        "calls": calls,
        "trace": trace,
    }


def explain(state: SessionState, probe: Probe, budget: int, row: dict[str, Any]) -> None:
    """Why a probe failed: the reader's calls, and where search ranks the evidence."""
    vm = VirtualMemory.of(state)
    assert vm is not None
    hits = vm.index.search(probe.question, limit=50)
    texts = [(vm.table.get(h.page_id) or MemoryPage(page_id="?", session_id="")).text for h in hits]
    rank = next((i + 1 for i, text in enumerate(texts) if probe.gold in text), None)
    print(
        f"  FAIL {budget} t{probe.turn} {probe.kind}: {probe.question!r} gold {probe.gold} "
        f"(evidence rank in search: {rank or '>50'}; stale shown: {row['stale']})"
    )
    for line in row["trace"]:
        print(f"    {line}")
    for text in texts[:3]:
        print(f"    top: {text[:100]!r}")


def run_vm(work: Workload, budget: int, explain_failures: bool = False) -> list[dict[str, Any]]:
    store = Store(MemoryBackend())
    state = registry_for(store).open(f"quality-{budget}")
    state.save_header(system_prompt=SYSTEM)
    reader = ScriptedReader(max_calls=2)
    rows = []
    for i, turn in enumerate(work.turns):
        probe = work.probes.get(i)
        if probe is not None:
            row = answer_with_vm(state, probe, budget, reader)
            if explain_failures and (not row["after"] or row["stale"] or row["violation"]):
                explain(state, probe, budget, row)
            rows.append({"kind": probe.kind, **row})
        record(state, i, Turn(probe.question, "Here is what I found.") if probe else turn)
    store.close()
    return rows


def run_baselines(work: Workload) -> tuple[dict[tuple[str, int], list[dict[str, Any]]], list[int]]:
    counter = counter_for_model(MODEL)
    history = History(counter)
    rows: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    seed_tokens: list[int] = []
    scratch = registry_for(Store(MemoryBackend())).open("scratch")
    for i, turn in enumerate(work.turns):
        probe = work.probes.get(i)
        if probe is not None:
            seed_tokens.append(
                history.total
                + counter.count_messages(
                    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": probe.question}]
                )
            )
            for budget in BUDGETS:
                for name, fn in (("recency", recency_context), ("recency+bm25", recency_bm25_context)):
                    msgs, tokens = fn(history, SYSTEM, probe.question, budget)
                    text = json.dumps(msgs, ensure_ascii=False)
                    rows[(name, budget)].append(
                        {
                            "kind": probe.kind,
                            "in_context": visible(text, probe.gold),
                            "after": visible(text, probe.gold),
                            "stale": probe.stale is not None
                            and visible(text, probe.stale)
                            and not visible(text, probe.gold),
                            "pinned": PINNED in text,
                            "tokens": tokens,
                            "violation": tokens > budget,
                            "calls": 0,
                        }
                    )
        for msg in record(scratch, i, Turn(probe.question, "Here is what I found.") if probe else turn):
            history.add(msg, i)
    return rows, seed_tokens


SYSTEMS = ("vm", "recency", "recency+bm25")
RATIO_KEYS = ("after", *KINDS)


def evaluate(
    turns: int, seed: int, explain_failures: bool = False
) -> tuple[Workload, dict[tuple[str, int], dict[str, float]], list[int]]:
    """Every system at every budget on one generated conversation."""
    work = generate(seed, turns)
    results: dict[tuple[str, int], dict[str, float]] = {}
    for budget in BUDGETS:
        results[("vm", budget)] = summarise(run_vm(work, budget, explain_failures))
    base_rows, seed_tokens = run_baselines(work)
    for key, rows in base_rows.items():
        results[key] = summarise(rows)
    return work, results, seed_tokens


def _ratio(vm: float, base: float) -> str:
    if base:
        return f"{vm / base:.2f}x"
    return "=" if vm == 0 else "inf"


def print_report(
    turns: int,
    seed: int,
    work: Workload,
    results: dict[tuple[str, int], dict[str, float]],
    seed_tokens: list[int],
) -> dict[str, bool]:
    """Print one length's tables; return its bars."""
    counts = ", ".join(f"{k} {sum(p.kind == k for p in work.probes.values())}" for k in KINDS)
    print(f"\n== context quality: {turns:,} turns, seed {seed}, {len(work.probes)} probes ({counts})")
    print(
        f"seed-style whole transcript per probe: mean {statistics.mean(seed_tokens):,.0f} tokens, "
        f"max {max(seed_tokens):,} tokens"
    )
    print(
        f"{'system':<13}{'budget':>7}{'in ctx':>8}{'after':>7}{'static':>7}{'para':>6}{'upd':>6}"
        f"{'chain3':>7}{'needle':>7}{'stale':>7}{'pinned':>7}{'tokens':>8}{'over':>5}{'calls':>6}"
    )
    for budget in BUDGETS:
        for name in SYSTEMS:
            r = results[(name, budget)]
            print(
                f"{name:<13}{budget:>7}{r['in_context']:>8.2f}{r['after']:>7.2f}{r['static']:>7.2f}"
                f"{r['paraphrased']:>6.2f}{r['updated']:>6.2f}{r['chain3']:>7.2f}{r['tool_needle']:>7.2f}"
                f"{r['stale']:>7.2f}{r['pinned']:>7.2f}{r['tokens']:>8.0f}{r['violations']:>5}{r['calls']:>6.2f}"
            )
    print("ratios vm / baseline at the same budget (evidence after recall; '=' both 0, 'inf' baseline 0):")
    print(f"{'budget':>7} {'baseline':<13}" + "".join(f"{k[:6]:>8}" for k in RATIO_KEYS) + f"{'tokens':>8}")
    for budget in BUDGETS:
        vm = results[("vm", budget)]
        for name in SYSTEMS[1:]:
            base = results[(name, budget)]
            cells = "".join(f"{_ratio(vm[k], base[k]):>8}" for k in RATIO_KEYS)
            print(f"{budget:>7} {name:<13}{cells}{vm['tokens'] / base['tokens']:>7.2f}x")
        print(
            f"{budget:>7} {'seed':<13}{'':>{8 * len(RATIO_KEYS)}}"
            f"{vm['tokens'] / statistics.mean(seed_tokens):>7.3f}x"
        )
    v = results[("vm", 4000)]
    bars = {
        "pinned survival 100%": v["pinned"] == 1.0,
        "static after faults >= 0.95": v["static"] >= 0.95,
        "3-hop chains >= 0.9": v["chain3"] >= 0.9,
        "stale-fact rate <= 2%": v["stale"] <= 0.02,
        "zero budget violations (all budgets)": all(results[("vm", b)]["violations"] == 0 for b in BUDGETS),
        "above recency": v["after"] > results[("recency", 4000)]["after"],
        "above recency+bm25": v["after"] > results[("recency+bm25", 4000)]["after"],
    }
    print(
        f"bars at 4k ({turns:,} turns): "
        + "; ".join(f"{k}: {'ok' if ok else 'NOT MET'}" for k, ok in bars.items())
    )
    parity = all(results[("vm", b)]["after"] >= results[("recency+bm25", b)]["after"] for b in (1000, 2000))
    print(f"at 1k-2k (target, not a bar): vm at or above recency+bm25: {'yes' if parity else 'no'}")
    return bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--explain", action="store_true", help="print the reader's calls for each failed probe"
    )
    parser.add_argument(
        "--through-wrapper", action="store_true", help="also replay 1,000 turns through a managed client"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    verdicts: dict[int, dict[str, bool]] = {}
    for turns in args.turns:
        t0 = time.perf_counter()
        work, results, seed_tokens = evaluate(turns, args.seed, args.explain)
        verdicts[turns] = print_report(turns, args.seed, work, results, seed_tokens)
        print(f"({turns:,} turns in {time.perf_counter() - t0:.1f} s)")
    failed = [f"{k} at {t:,} turns" for t, bars in verdicts.items() for k, ok in bars.items() if not ok]
    if args.through_wrapper:
        from managed_quality import run as run_through_wrapper

        wrapper_bars = run_through_wrapper(1000, args.seed, 4000)
        failed += [f"{k} through the wrapper" for k, ok in wrapper_bars.items() if not ok]
    print("\nall bars met" if not failed else "\nBARS NOT MET: " + "; ".join(failed))
    print(f"run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
