"""Recall: search_pages / page_fault handling, limits, persistence, demand paging, metrics."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from memory_support import Converse, add_turn, context_text

from sessionware.core.memory import (
    ContextPolicy,
    VirtualMemory,
    abuild,
    build,
    handle_vm_tool_call,
)
from sessionware.core.memory.compression import ExtractiveCompressor
from sessionware.core.memory.enums import MutationType
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.memory.search import SearchIndex
from sessionware.core.memory.vm import KEPT_MUTATIONS, KEPT_SNAPSHOTS
from sessionware.core.memory.working_set import ImportanceWeightedLRU, LRUEvictionPolicy, WorkingSet
from sessionware.core.session.enums import EventType
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"


def _with_facts(converse: Converse, name: str) -> object:
    state = converse(name, 0)
    add_turn(state, 0, fact="We chose PostgreSQL over MySQL for the billing ledger.")
    add_turn(state, 1, fact="The vault key ALPHA-7731 points to tag Q9-ZXKP.")
    for i in range(2, 60):
        add_turn(state, i)
    add_turn(state, 60, fact="Tag Q9-ZXKP points to bucket B-88213.")
    for i in range(61, 120):
        add_turn(state, i, tool=i == 90)
    add_turn(state, 120, fact="Bucket B-88213 holds the value FINAL-4410.")
    for i in range(121, 200):
        add_turn(state, i)
    return state


def test_multi_word_search_finds_evicted_pages(converse: Converse) -> None:
    state = _with_facts(converse, "search")
    build(state, model=MODEL, budget=2000)
    result = json.loads(handle_vm_tool_call(state, "search_pages", '{"query": "postgres mysql ledger"}'))
    assert "PostgreSQL over MySQL" in result["results"][0]


def test_search_follows_references_through_a_key_chain(converse: Converse) -> None:
    state = _with_facts(converse, "chain")
    build(state, model=MODEL, budget=4000)
    result = handle_vm_tool_call(state, "search_pages", '{"query": "what does vault key ALPHA-7731 lead to"}')
    assert "FINAL-4410" in result


def test_search_covers_tool_outputs(converse: Converse) -> None:
    state = _with_facts(converse, "tool-out")
    build(state, model=MODEL, budget=2000)
    result = handle_vm_tool_call(state, "search_pages", {"query": "lookup result subject 90"})
    assert "lookup result for subject 90" in result


def test_page_fault_returns_the_page_and_unknown_ids_get_an_error_result(converse: Converse) -> None:
    state = _with_facts(converse, "fault")
    build(state, model=MODEL, budget=2000)
    found = json.loads(handle_vm_tool_call(state, "page_fault", '{"page_id": "msg_1"}'))
    assert "PostgreSQL" in found["page"]["content"]["text"]
    missing = json.loads(handle_vm_tool_call(state, "page_fault", '{"page_id": "msg_999999"}'))
    assert "unknown page id" in missing["error"]
    bad = json.loads(handle_vm_tool_call(state, "page_fault", "{not json"))
    assert "not valid JSON" in bad["error"]
    other = json.loads(handle_vm_tool_call(state, "rm_rf", "{}"))
    assert "unknown memory tool" in other["error"]


def test_summaries_and_chunks_can_be_faulted(converse: Converse) -> None:
    state = _with_facts(converse, "summary")
    build(state, model=MODEL, budget=2000)
    chunk = json.loads(handle_vm_tool_call(state, "page_fault", '{"page_id": "chunk_1"}'))
    assert "PostgreSQL" in chunk["page"]["content"]["text"]


def test_fault_limit_per_turn_matches_the_policy_and_resets_next_turn(converse: Converse) -> None:
    state = _with_facts(converse, "limit")
    policy = ContextPolicy(max_faults_per_turn=2)
    build(state, model=MODEL, budget=2000, policy=policy)
    for _ in range(2):
        assert "error" not in json.loads(handle_vm_tool_call(state, "search_pages", '{"query": "vault"}'))
    refused = json.loads(handle_vm_tool_call(state, "search_pages", '{"query": "vault"}'))
    assert "limit reached (2 per turn)" in refused["error"]
    assert sum(e.type is EventType.PAGE_FAULT for e in state.events) == 2
    assert state.info.totals.page_faults == 2
    add_turn(state, 500)
    build(state, model=MODEL, budget=2000, incoming_messages=[{"role": "user", "content": "next"}])
    assert "error" not in json.loads(handle_vm_tool_call(state, "search_pages", '{"query": "vault"}'))


def test_a_faulted_page_is_recalled_into_the_next_turns_context(converse: Converse) -> None:
    state = _with_facts(converse, "recall")
    build(state, model=MODEL, budget=3000)
    handle_vm_tool_call(state, "page_fault", '{"page_id": "msg_1"}')
    ctx = build(state, model=MODEL, budget=3000, incoming_messages=[{"role": "user", "content": "ok"}])
    assert ctx.report is not None and "msg_1" in ctx.report.recalled_pages
    assert "PostgreSQL over MySQL" in context_text(ctx.messages)


def test_the_recall_region_answers_the_incoming_message(converse: Converse) -> None:
    state = _with_facts(converse, "recall-region")
    for i in range(400, 520):
        add_turn(state, i)
    asked = [{"role": "user", "content": "Which database did we choose for the billing ledger?"}]
    ctx = build(state, model=MODEL, budget=3000, incoming_messages=asked, policy=ContextPolicy(recall=True))
    assert ctx.report is not None and "msg_1" in ctx.report.recalled_pages
    assert "PostgreSQL over MySQL" in context_text(ctx.messages)
    recall = [m for m in ctx.messages if m["role"] == "system" and "<VM:RECALL>" in m["content"]]
    at = ctx.messages.index(recall[0])
    assert at > 1 and ctx.messages[-1] == asked[0]  # after the stable prefix; the question last
    other = build(state, model=MODEL, budget=3000, incoming_messages=[{"role": "user", "content": "Thanks!"}])
    assert other.report is not None and "msg_1" not in other.report.recalled_pages
    assert other.report.stable_prefix_tokens == ctx.report.stable_prefix_tokens
    assert other.messages[:2] == ctx.messages[:2]  # per-question recall leaves the prefix alone


def test_a_session_reloaded_from_sqlite_can_still_page_fault(tmp_path: Path, converse: Converse) -> None:
    path = tmp_path / "vm.db"
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open("persisted")
    add_turn(state, 0, fact="My locker code is KX-4711-Q.")
    for i in range(1, 150):
        add_turn(state, i)
    first = build(state, model=MODEL, budget=2000)
    store.flush()
    persisted = _load_pages(store, "persisted")
    assert any(key.endswith("sum_1") for key in persisted)
    store.close()
    reopened = Store(SQLiteBackend(path))
    again = registry_for(reopened).open("persisted")
    rebuilt = build(again, model=MODEL, budget=2000)
    assert context_text(rebuilt.messages).replace("persisted", "") == context_text(first.messages).replace(
        "persisted", ""
    )
    result = handle_vm_tool_call(again, "search_pages", '{"query": "locker code"}')
    assert "KX-4711-Q" in result
    compactions = [e for e in again.events if e.type is EventType.COMPACTION]
    assert len(compactions) == len({e.metadata["compaction_key"] for e in compactions})
    reopened.close()


def _load_pages(store: Store, session_id: str) -> dict[str, str]:
    import asyncio

    return asyncio.run(store.aload_pages(session_id))


async def test_abuild_uses_the_async_summarize_fn(converse: Converse) -> None:
    calls: list[int] = []

    async def summarize(text: str, max_tokens: int) -> str:
        calls.append(max_tokens)
        return f"LLM summary of {len(text)} characters."

    state = converse("llm", 100)
    ctx = await abuild(state, model=MODEL, budget=2000, policy=ContextPolicy(summarize_fn=summarize))
    assert calls
    assert "LLM summary of" in context_text(ctx.messages)


def test_claims_and_pins_appear_in_the_memory_block(converse: Converse) -> None:
    state = converse("claims", 100)
    vm = VirtualMemory.attach(state)
    vm.add_claim("The customer's plan is Enterprise.", importance=0.9)
    vm.pin("msg_1")
    ctx = build(state, model=MODEL, budget=2000)
    block = ctx.messages[1]["content"]
    assert "Enterprise" in block and "C (claim_1" in block and "P (msg_1" in block
    vm.pin("msg_1", pinned=False)
    assert "P (msg_1" not in build(state, model=MODEL, budget=2000).messages[1]["content"]


def test_metrics_and_the_mutation_log_describe_what_happened(converse: Converse) -> None:
    state = _with_facts(converse, "metrics")
    build(state, model=MODEL, budget=2000)
    handle_vm_tool_call(state, "page_fault", '{"page_id": "msg_1"}')
    vm = VirtualMemory.attach(state)
    metrics = vm.metrics()
    assert metrics.compactions > 0 and metrics.faults == 1 and metrics.pages_evicted > 0
    assert vm.context_at_turn(vm.turn_hint)
    assert {m.mutation_type.value for m in vm.mutations} >= {"evict", "fault_in"}


def test_a_long_lived_session_keeps_a_bounded_log_of_builds_and_mutations(converse: Converse) -> None:
    state = converse("bounded", 20)
    vm = VirtualMemory.attach(state)
    for i in range(20, 20 + KEPT_SNAPSHOTS + 30):
        add_turn(state, i)
        build(state, model=MODEL, budget=600)
    assert len(vm.snapshots) == KEPT_SNAPSHOTS
    assert vm.context_at_turn(vm.turn_hint)  # the newest turns are kept
    assert min(vm.snapshots) > 20  # the oldest went
    for _ in range(KEPT_MUTATIONS + 10):
        vm.log(MutationType.EVICT, ["msg_1"], cause="test")
    assert len(vm.mutations) == KEPT_MUTATIONS


def test_bm25_ranks_pages_with_more_query_words_first() -> None:
    index = SearchIndex()
    index.add("a", "postgres is our database")
    index.add("b", "postgres and mysql were both considered for the ledger")
    index.add("c", "lunch menus")
    hits = index.search("postgres mysql ledger")
    assert [h.page_id for h in hits] == ["b", "a"]


def test_extractive_compressor_keeps_facts_under_the_limit() -> None:
    compressor = ExtractiveCompressor()
    text = "Hello there. " * 20 + "The deploy key is DK-9921. " + "Nice day. " * 20
    out = compressor.compress_text(text, 20)
    assert "DK-9921" in out


def test_eviction_policies_and_anti_thrash() -> None:
    pages = [
        MemoryPage(page_id=f"p{i}", session_id="s", text="x", tokens=40, importance=0.1 * i) for i in range(4)
    ]
    ws = WorkingSet(capacity_tokens=100, policy=ImportanceWeightedLRU())
    ws.add(pages[3], turn=1)
    ws.add(pages[2], turn=1)
    evicted = ws.add(pages[1], turn=1)
    assert evicted == []  # every page was just recalled: protected against thrash
    evicted = ws.fit(turn=5)
    assert evicted == ["p1"]  # least important goes first once protection ends
    lru = WorkingSet(capacity_tokens=80, policy=LRUEvictionPolicy())
    lru.add(pages[0], turn=1)
    lru.add(pages[1], turn=4)
    assert lru.add(pages[2], turn=8) == ["p0"]


def test_sync_build_keeps_extractive_summaries_and_warns_once_about_summarize_fn(
    converse: Converse, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    async def summarize(text: str, max_tokens: int) -> str:
        calls.append(max_tokens)
        return "LLM summary."

    state = converse("sync-llm", 100)
    policy = ContextPolicy(summarize_fn=summarize)
    with caplog.at_level(logging.WARNING, logger="sessionware.core.memory.builder"):
        first = build(state, model=MODEL, budget=2000, policy=policy)
        for i in range(100, 160):
            add_turn(state, i)
            build(state, model=MODEL, budget=2000)
    warnings = [r for r in caplog.records if "only used by abuild" in r.getMessage()]
    assert len(warnings) == 1
    assert calls == [] and "LLM summary." not in context_text(first.messages)


async def test_llm_summaries_survive_a_reload_without_being_written_again(tmp_path: Path) -> None:
    calls: list[str] = []

    async def summarize(text: str, max_tokens: int) -> str:
        calls.append(text)
        return f"LLM summary number {len(calls)}."

    path = tmp_path / "llm.db"
    store = Store(SQLiteBackend(path))
    state = registry_for(store).open("llm-persisted")
    for i in range(150):
        add_turn(state, i)
    policy = ContextPolicy(summarize_fn=summarize)
    first = await abuild(state, model=MODEL, budget=2000, policy=policy)
    written = len(calls)
    assert written and "LLM summary number" in context_text(first.messages)
    await store.aflush()
    store.close()
    reopened = Store(SQLiteBackend(path))
    again = registry_for(reopened).open("llm-persisted")
    rebuilt = await abuild(again, model=MODEL, budget=2000, policy=policy)
    assert len(calls) == written
    assert context_text(rebuilt.messages).replace("persisted", "") == context_text(first.messages).replace(
        "persisted", ""
    )
    reopened.close()
