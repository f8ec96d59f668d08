"""The builder fills its budget, keeps a reserve sized from use, and counts memory calls
per incoming message; search and page_fault return whole turns and their neighbours."""

from __future__ import annotations

import json

from memory_support import Converse, add_turn, context_text

from sessionware.core.memory import ContextPolicy, build, handle_vm_tool_call
from sessionware.core.memory.compression import ExtractiveCompressor

MODEL = "gpt-4o-mini"


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_a_build_fills_at_least_nine_tenths_of_the_budget(converse: Converse) -> None:
    state = converse("fill", 400, tools_every=7)
    for budget in (2000, 4000, 8000):
        policy = ContextPolicy(recall=True)
        ctx = build(
            state, model=MODEL, budget=budget, incoming_messages=_ask("What about subject 42?"), policy=policy
        )
        assert ctx.report is not None
        assert ctx.report.tokens + ctx.report.fault_reserve_tokens >= 0.9 * budget
        assert ctx.report.tokens <= budget - ctx.report.fault_reserve_tokens
        assert "subject 42" in context_text(ctx.messages)


def test_the_call_reserve_follows_what_calls_wanted(converse: Converse) -> None:
    state = converse("reserve", 450)
    policy = ContextPolicy(budget=16000, recall=True)
    first = build(state, model=MODEL, incoming_messages=_ask("subject 7?"), policy=policy)
    assert first.report is not None and first.report.fault_reserve_tokens == 800  # nothing used yet: 2 x 400
    for n in range(6):
        build(state, model=MODEL, incoming_messages=_ask(f"subject {n}?"))
        handle_vm_tool_call(state, "page_fault", {"page_id": f"msg_{n * 2 + 1}", "target_level": 3})
    later = build(state, model=MODEL, incoming_messages=_ask("subject 9?"))
    assert later.report is not None and later.report.fault_reserve_tokens == 400  # the floor, 200 per call
    assert later.report.tokens > first.report.tokens  # the room went to the context


def test_the_call_limit_counts_calls_per_incoming_message(converse: Converse) -> None:
    state = converse("limit-per-message", 200)
    for question in ("Tell me about subject 3?", "And subject 150?"):
        build(state, model=MODEL, budget=2000, incoming_messages=_ask(question))
        for _ in range(2):
            assert "error" not in json.loads(handle_vm_tool_call(state, "search_pages", {"query": question}))
        refused = json.loads(handle_vm_tool_call(state, "search_pages", {"query": question}))
        assert "limit" in refused["error"]
    # The app records the question, then builds again for the tool round: same message, same count.
    state_turns = len(state.events)
    add_turn(state, 999, fact="And subject 150?")
    assert len(state.events) > state_turns


def test_search_honours_limit_and_returns_whole_turns(converse: Converse) -> None:
    state = converse("search-limit", 0)
    for i in range(700):
        add_turn(state, i, fact=f"I keep the box marked K-{i:03d} in the garden shed, for reasons of space.")
    build(
        state, model=MODEL, budget=16000, incoming_messages=_ask("Hello"), policy=ContextPolicy(recall=True)
    )
    ask = {"query": "where is the box kept for reasons of space"}
    assert len(json.loads(handle_vm_tool_call(state, "search_pages", ask))["results"]) == 5
    found = json.loads(handle_vm_tool_call(state, "search_pages", {**ask, "limit": 10}))
    assert len(found["results"]) == 10
    for line in found["results"]:
        body = line.split(": ", 1)[1]  # inside a JSON string already: not quoted again
        assert body.startswith("I keep the box") and body.endswith("space.")  # whole turns


def test_page_fault_brings_the_neighbouring_turns(converse: Converse) -> None:
    state = converse("neighbours", 300)
    build(
        state, model=MODEL, budget=4000, incoming_messages=_ask("Thanks!"), policy=ContextPolicy(recall=True)
    )
    result = json.loads(handle_vm_tool_call(state, "page_fault", {"page_id": "msg_21"}))
    assert result["page"]["content"]["text"].startswith("Turn 10:")
    neighbours = " ".join(result["neighbours"])
    assert "Answer 9:" in neighbours and "Answer 10:" in neighbours


def test_summaries_keep_facts_and_drop_filler_duplicates_and_superseded_values() -> None:
    text = "\n".join(
        [
            "U: My favourite colour is blue.",
            "A: Acknowledged point 12.",
            "U: I live in Porto.",
            "A: Noted.",
            "U: I live in Porto.",
            "U: My favourite colour is green now.",
        ]
    )
    summary = ExtractiveCompressor().compress_text(text, 24)
    assert "Porto" in summary and "green" in summary
    assert "blue" not in summary and "Acknowledged" not in summary and "Noted" not in summary
    assert summary.count("Porto") == 1
