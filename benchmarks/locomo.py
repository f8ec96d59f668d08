"""Context quality on real conversations: LoCoMo-10 against recency and recency + BM25.

The data is not in the repository: pass the path of ``locomo10.json`` or
``locomo10.zip`` from the public ``snap-research/locomo`` repository (its ``data/``
folder), or of a folder holding either (see ``locomo_data.py``).

Driven as a user would: per conversation and budget, a
``SessionManager(enable_vm=True, vm_config=ContextPolicy(budget=B))`` records the whole
conversation (the first speaker as the user, the second as the assistant); then, for
each of the 1,527 answerable questions (categories 1-4), ``build_context`` with the
question as the incoming message, and a scripted reader makes two memory calls built
from the question alone: ``search_pages`` with the question, then ``page_fault`` of the
first page id that search returned. Nothing is recorded between questions.

Per budget (4k, 8k, 16k by default; cl100k tokens, model ``gpt-4-turbo``):

* evidence in context: every evidence turn of the question, whole, in one message of
  the built request (``locomo_data.EvidenceMatcher``);
* with <= 2 calls: ... or in the results of the two memory calls;
* request tokens (system prompt, memory block, window, recall, tools, question), mean
  and p95, without and with the calls' messages; fill = build tokens / budget;
* build time (``build_context`` as awaited by the app), p50 / p95, wall and CPU time of
  the building thread (the bar is judged on the latter: on a shared 2-core machine the wall
  time's tail is other processes' time slices); the store is flushed after each
  question's calls, outside the timing;
* per category (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop), and per half of the
  conversations (the first and the last five of LoCoMo-10: tune on one, check on the other);
* fact retention: evidence turns older than the verbatim window with a sentence kept
  verbatim in the memory block.

Baselines in the same run: ``recency`` (the newest messages that fit) and
``recency+bm25`` (BM25 top-10 of the question among messages older than the recency
window, then the newest messages in the rest), each at the nominal budget and at the
request tokens sessionware used for that question with its calls ("=tok").

    python benchmarks/locomo.py PATH [--budgets 4000 8000 16000] [--conversations N] [--explain N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from locomo_data import CATEGORIES, Conversation, EvidenceMatcher, Question, load, normalise

from sessionware import SessionManager, TokenUsage
from sessionware.core.accounting.tokens import EncodingCounter, EstimatingCounter, counter_for_model
from sessionware.core.memory import ContextPolicy

MODEL = "gpt-4-turbo"
BUDGETS = (4000, 8000, 16000)
SYSTEM = "A long chat between {a} (user) and {b} (assistant). Answer questions about it from memory."
_PAGE_ID = re.compile(r"\b((?:msg|sum|roll|chunk|claim|seg)_\d+)\b")
_WORD = re.compile(r"[a-z0-9]+")
_NO_USAGE = TokenUsage(input_tokens=0, output_tokens=0)

Msg = dict[str, Any]
Counter_ = EncodingCounter | EstimatingCounter


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


# -- sessionware -------------------------------------------------------------------------


async def record(conv: Conversation, budget: int, **policy: Any) -> SessionManager:
    # A session id of a uuid's shape, the same in every run: the memory block names it, and a
    # random one tokenises to a different count each run (the recall room moves with it).
    session_id = hashlib.md5(f"locomo/{conv.sample_id}/{budget}".encode()).hexdigest()
    sm = SessionManager(
        session_id=session_id,
        store="memory://",
        system_prompt=SYSTEM.format(a=conv.speaker_a, b=conv.speaker_b),
        default_model=MODEL,
        enable_vm=True,
        vm_config=ContextPolicy(**{"budget": budget, "recall": True, **policy}),
    )
    for turn in conv.turns:
        if turn.speaker == conv.speaker_a:
            await sm.user_says(turn.content)
        else:
            await sm.ai_responds(turn.content, model=MODEL, usage=_NO_USAGE)
    return sm


def _call(messages: list[Msg], n: int, name: str, args: dict[str, Any], result: str) -> None:
    call_id = f"call_vm_{n}"
    arguments = json.dumps(args)
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call_id, "content": result})


def _block(messages: list[Msg]) -> str:
    for msg in messages:
        content = msg.get("content")
        if msg.get("role") == "system" and isinstance(content, str) and "<VM:CONTEXT>" in content:
            return normalise(content)
    return ""


def _sentences(content: str) -> list[str]:
    words = content.split("] ", 1)[-1] if content.startswith("[") else content
    words = words.split(": ", 1)[-1]
    parts = re.split(r"(?<=[.!?])\s+", words)
    return [normalise(p) for p in parts if len(p.split()) >= 5]


async def ask(
    sm: SessionManager, conv: Conversation, q: Question, matcher: EvidenceMatcher, counter: Counter_
) -> dict[str, Any]:
    incoming = [{"role": "user", "content": q.text}]
    t0, c0 = time.perf_counter(), time.thread_time()
    ctx = await sm.build_context(incoming_messages=incoming)
    build_ms = (time.perf_counter() - t0) * 1000
    build_cpu_ms = (time.thread_time() - c0) * 1000
    messages = list(ctx.messages)
    tools = list(ctx.tools)
    build_tokens = counter.count_messages(messages, tools)
    hay = matcher.haystacks(messages)
    in_ctx = all(matcher.found(e, hay) for e in q.evidence)
    calls = 0
    if tools:
        args: dict[str, Any] = {"query": q.text}
        result = await sm.handle_vm_tool_call("search_pages", args)
        _call(messages, calls, "search_pages", args, result)
        calls += 1
        found = _PAGE_ID.search(result)
        if found:
            args = {"page_id": found.group(1)}
            result = await sm.handle_vm_tool_call("page_fault", args)
            _call(messages, calls, "page_fault", args, result)
            calls += 1
    await sm.flush()  # the calls' events are written before the next question's build is timed
    hay_after = matcher.haystacks(messages)
    after = all(matcher.found(e, hay_after) for e in q.evidence)
    return {
        "category": q.category,
        "in_ctx": in_ctx,
        "after": after,
        "build_tokens": build_tokens,
        "tokens": counter.count_messages(messages, tools),
        "build_ms": build_ms,
        "build_cpu_ms": build_cpu_ms,
        "calls": calls,
        "missing": [e for e in q.evidence if not matcher.found(e, hay_after)],
        "block": _block(list(ctx.messages)),
        "window": matcher.haystacks([m for m in ctx.messages if m.get("role") != "system"]),
    }


def retention(conv: Conversation, rows: list[dict[str, Any]], matcher: EvidenceMatcher) -> tuple[int, int]:
    """Evidence turns outside the verbatim window with a sentence of theirs in the memory block."""
    if not rows:
        return 0, 0
    block, window = rows[0]["block"], rows[0]["window"]
    turns = {t.dia_id: t for t in conv.turns}
    kept = total = 0
    for dia_id in sorted({e for q in conv.questions for e in q.evidence}):
        if matcher.found(dia_id, window):
            continue
        sentences = _sentences(turns[dia_id].content)
        if not sentences:
            continue
        total += 1
        escaped = [normalise(json.dumps(s, ensure_ascii=False)[1:-1]) for s in sentences]
        kept += any(s in block for s in sentences + escaped)
    return kept, total


# -- baselines ---------------------------------------------------------------------------


class Baselines:
    """Recency and recency + BM25 top-10 over one conversation's messages (plain words, no stemming)."""

    def __init__(self, conv: Conversation, counter: Counter_) -> None:
        self.counter = counter
        self.system = {"role": "system", "content": SYSTEM.format(a=conv.speaker_a, b=conv.speaker_b)}
        self.messages: list[Msg] = [
            {"role": "user" if t.speaker == conv.speaker_a else "assistant", "content": t.content}
            for t in conv.turns
        ]
        self.tokens = [counter.count_message(m) for m in self.messages]
        self.terms = [Counter(_WORD.findall(m["content"].lower())) for m in self.messages]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.avg = sum(self.lengths) / len(self.lengths)
        self.df: Counter[str] = Counter(w for t in self.terms for w in t)
        self._scores: dict[str, dict[int, float]] = {}

    def _recency(self, room: int) -> tuple[int, int]:
        used, start = 0, len(self.messages)
        while start > 0 and used + self.tokens[start - 1] <= room:
            start -= 1
            used += self.tokens[start]
        return start, used

    def scores(self, question: str) -> dict[int, float]:
        cached = self._scores.get(question)
        if cached is not None:
            return cached
        n = len(self.messages)
        out: dict[int, float] = {}
        for w in set(_WORD.findall(question.lower())):
            df = self.df.get(w, 0)
            if not df:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for i, terms in enumerate(self.terms):
                tf = terms.get(w)
                if tf:
                    norm = tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * self.lengths[i] / self.avg))
                    out[i] = out.get(i, 0.0) + idf * norm
        self._scores[question] = out
        return out

    def recency(self, question: str, budget: int) -> tuple[list[Msg], int]:
        head = [self.system, {"role": "user", "content": question}]
        fixed = self.counter.count_messages(head)
        start, used = self._recency(budget - fixed)
        return [head[0], *self.messages[start:], head[1]], fixed + used

    def recency_bm25(self, question: str, budget: int, k: int = 10) -> tuple[list[Msg], int]:
        head = [self.system, {"role": "user", "content": question}]
        fixed = self.counter.count_messages(head)
        half = (budget - fixed) // 2
        start_if_full, _ = self._recency(budget - fixed - half)
        scores = self.scores(question)
        hits = sorted((i for i in scores if i < start_if_full), key=lambda i: (-scores[i], -i))[:k]
        lines: list[str] = []
        room = half - 8
        for i in sorted(hits):
            line = self.messages[i]["content"]
            cost = self.counter.count_text(line) + 1
            if cost <= room:
                lines.append(line)
                room -= cost
        recalled = [{"role": "system", "content": "Retrieved:\n" + "\n".join(lines)}] if lines else []
        used_recall = self.counter.count_messages(recalled) - 3 if recalled else 0
        start, used = self._recency(budget - fixed - used_recall)
        return [head[0], *recalled, *self.messages[start:], head[1]], fixed + used_recall + used


# -- the run -----------------------------------------------------------------------------


async def run_budget(
    convs: list[Conversation], budget: int, counter: Counter_, explain: int, policy: dict[str, Any]
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    base: dict[str, list[dict[str, Any]]] = defaultdict(list)
    kept = total = 0
    shown = 0
    for n, conv in enumerate(convs):
        matcher = EvidenceMatcher(conv.turns)
        sm = await record(conv, budget, **policy)
        baselines = Baselines(conv, counter)
        conv_rows = []
        for q in conv.questions:
            row = await ask(sm, conv, q, matcher, counter)
            row["half"] = int(2 * n >= len(convs))
            conv_rows.append(row)
            if explain and shown < explain and not row["after"]:
                shown += 1
                print(f"  MISS {budget} [{conv.sample_id} c{q.category}] {q.text!r} missing {row['missing']}")
            for name, fn in (("recency", baselines.recency), ("recency+bm25", baselines.recency_bm25)):
                for label, b in ((f"{name}@B", budget), (f"{name}@=tok", row["tokens"])):
                    msgs, tokens = fn(q.text, b)
                    hay = matcher.haystacks(msgs)
                    ok = all(matcher.found(e, hay) for e in q.evidence)
                    cell = {"category": q.category, "in_ctx": ok, "after": ok, "tokens": tokens}
                    base[label].append({**cell, "half": row["half"]})
        k, t = retention(conv, conv_rows, matcher)
        kept += k
        total += t
        for row in conv_rows:
            row.pop("block")
            row.pop("window")
        rows.extend(conv_rows)
        await sm.flush()
    return {"vm": rows, "base": dict(base), "retention": (kept, total)}


def _share(rows: list[dict[str, Any]], key: str, category: int | None = None) -> float:
    sel = [r for r in rows if category is None or r["category"] == category]
    return sum(r[key] for r in sel) / len(sel) if sel else 0.0


def report(budget: int, result: dict[str, Any]) -> dict[str, float]:
    vm = result["vm"]
    cats = "".join(f"{'c' + str(c):>12}" for c in CATEGORIES)
    print(f"\n== budget {budget:,} ({len(vm)} questions)")
    head = f"{'policy':<20}{'in ctx':>8}{'<=2 calls':>10}{'tok mean':>9}{'tok p95':>8}{'fill':>6}"
    print(f"{head}{'build cpu p50/p95':>18}{cats}")
    build = [r["build_ms"] for r in vm]
    cpu = [r["build_cpu_ms"] for r in vm]
    cells = "".join(f"{_share(vm, 'in_ctx', c):>6.1%}/{_share(vm, 'after', c):<5.1%}" for c in CATEGORIES)
    toks = [r["tokens"] for r in vm]
    btoks = [r["build_tokens"] for r in vm]
    print(
        f"{'sessionware':<20}{_share(vm, 'in_ctx'):>8.1%}{_share(vm, 'after'):>10.1%}"
        f"{statistics.mean(toks):>9.0f}{pct(toks, 0.95):>8.0f}{statistics.mean(btoks) / budget:>6.0%}"
        f"{pct(cpu, 0.5):>9.2f}/{pct(cpu, 0.95):<8.2f}{cells}"
    )
    print(f"{'  (build only)':<20}{'':>18}{statistics.mean(btoks):>9.0f}{pct(btoks, 0.95):>8.0f}")
    for label, rows in result["base"].items():
        t = [r["tokens"] for r in rows]
        cells = "".join(f"{_share(rows, 'in_ctx', c):>6.1%}{'':6}" for c in CATEGORIES)
        share = _share(rows, "in_ctx")
        print(
            f"{label:<20}{share:>8.1%}{'-':>10}{statistics.mean(t):>9.0f}{pct(t, 0.95):>8.0f}{'':>24}{cells}"
        )
    halves = []
    for half, name in ((0, "first"), (1, "last")):
        mine = [r for r in vm if r["half"] == half]
        theirs = [r for r in result["base"]["recency+bm25@=tok"] if r["half"] == half]
        if mine:
            halves.append(
                f"{name} half of the conversations ({len(mine)} questions): "
                f"in ctx {_share(mine, 'in_ctx'):.1%}, <= 2 calls {_share(mine, 'after'):.1%}, "
                f"recency+bm25@=tok {_share(theirs, 'in_ctx'):.1%}"
            )
    print("\n".join(halves))
    print(
        f"build time: wall p50 {pct(build, 0.5):.2f} / p95 {pct(build, 0.95):.2f} ms; CPU of the building "
        f"thread p50 {pct(cpu, 0.5):.2f} / p95 {pct(cpu, 0.95):.2f} ms (the bar: wall time includes other "
        f"processes' time slices on a shared machine, load average {os.getloadavg()[0]:.1f})"
    )
    kept, total = result["retention"]
    print(
        f"fact retention (evidence turns outside the window with a sentence in the memory block): "
        f"{kept}/{total} = {kept / max(total, 1):.1%}"
    )
    return {
        "in_ctx": _share(vm, "in_ctx"),
        "after": _share(vm, "after"),
        "tokens_mean": statistics.mean(toks),
        "tokens_p95": pct(toks, 0.95),
        "build_p95": pct(cpu, 0.95),
        "bm25_eq": _share(result["base"]["recency+bm25@=tok"], "in_ctx"),
    }


async def amain(args: argparse.Namespace) -> int:
    convs = load(args.path)[: args.conversations or None]
    counter = counter_for_model(MODEL)
    n_q = sum(len(c.questions) for c in convs)
    print(
        f"LoCoMo: {len(convs)} conversations, {sum(len(c.turns) for c in convs):,} turns, {n_q:,} questions "
        f"(categories 1-4; {sum(c.skipped for c in convs)} left out: evidence empty or unresolvable); "
        f"model {MODEL} ({getattr(counter, 'encoding_name', '?')})"
    )
    policy = json.loads(args.policy) if args.policy else {}
    started = time.perf_counter()
    summary: dict[int, dict[str, float]] = {}
    for budget in args.budgets:
        result = await run_budget(convs, budget, counter, args.explain, policy)
        summary[budget] = report(budget, result)
    s4 = summary.get(4000)
    bars: dict[str, bool] = {}
    if s4:
        bars["4k: in context >= 75%"] = s4["in_ctx"] >= 0.75
        bars["4k: with <= 2 calls >= 85%"] = s4["after"] >= 0.85
        bars["4k: whole request p95 <= 4,500 tokens"] = s4["tokens_p95"] <= 4500
    for budget, s in summary.items():
        if budget != 4000:
            bars[f"{budget // 1000}k: above recency+bm25 at equal tokens"] = (
                min(s["in_ctx"], s["after"]) > s["bm25_eq"]
            )
        bars[f"{budget // 1000}k: build p95 <= 5 ms"] = s["build_p95"] <= 5
    print("\nbars: " + "; ".join(f"{k}: {'ok' if ok else 'NOT MET'}" for k, ok in bars.items()))
    print(f"run time {time.perf_counter() - started:.0f} s")
    return 0 if all(bars.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="locomo10.json, locomo10.zip, or a folder holding either")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--conversations", type=int, default=0, help="only the first N conversations")
    parser.add_argument(
        "--explain", type=int, default=0, help="print up to N questions missed after the calls"
    )
    parser.add_argument("--policy", default="", help="extra ContextPolicy fields as JSON (experiments)")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
