"""The memory over a session's life: executed tools, edited histories, policies, pins,
claims, persisted pages, the recall working set and compressors per modality."""

from __future__ import annotations

import json
import logging

import pytest
from memory_support import Converse, add_turn, check_anthropic, check_openai, context_text

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.memory import ContextPolicy, MemoryPage, Modality, VirtualMemory, abuild, build
from sessionware.core.memory.compression import CompressorRegistry, ExtractiveCompressor
from sessionware.core.memory.enums import CompressionLevel
from sessionware.core.memory.working_set import ModalityAwareLRU, WorkingSet
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ErrorInfo, ToolCall
from sessionware.core.session.state import SessionState
from sessionware.core.store.base import PutPages

MODEL = "gpt-4o-mini"


def _executed_tool(state: SessionState, i: int) -> None:
    """A turn whose tool ran in the app (``tool_used``): TOOL_CALL events, some announced."""
    state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=f"Check the weather, take {i}.")
    if i % 2:
        call = ToolCall(id=f"call_{i}", name="weather", arguments=json.dumps({"city": "Lisbon"}))
        state.record(
            EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=None, tool_calls=(call,)
        )
    state.record(
        EventType.TOOL_CALL,
        EventSource.TOOL,
        role=Role.TOOL,
        tool_name="weather",
        tool_arguments={"city": "Lisbon", "take": i},
        tool_result={"forecast": f"sunny-{i}", "high_c": 20 + i % 9},
        error=ErrorInfo(type="Timeout", message="upstream slow") if i % 7 == 0 else None,
        tool_call_id=f"call_{i}",
    )
    state.record(EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=f"Sunny, take {i}.")


def test_executed_tools_stay_paired_for_both_providers_and_are_searchable(converse: Converse) -> None:
    from sessionware.core.memory import handle_vm_tool_call

    state = converse("executed", 0)
    for i in range(80):
        _executed_tool(state, i)
        ctx = build(state, model=MODEL, budget=1200)
        check_openai(ctx.messages)
        actx = build(state, model="claude-3-5-sonnet", budget=1200, provider="anthropic")
        check_anthropic(actx.messages, actx.system)
    build(state, model=MODEL, budget=1200, incoming_messages=[{"role": "user", "content": "and?"}])
    found = handle_vm_tool_call(state, "search_pages", {"query": "sunny-12 forecast"})
    assert "sunny-12" in found
    failed = handle_vm_tool_call(state, "search_pages", {"query": "weather error upstream slow"})
    assert "Error: upstream slow" in failed


@pytest.mark.slow
def test_an_edited_history_rebuilds_the_memory_from_the_kept_path(converse: Converse) -> None:
    from sessionware.core.memory import handle_vm_tool_call

    state = converse("branch", 0)
    add_turn(state, 0, fact="My locker code is KX-4711-Q.")
    for i in range(1, 120):
        add_turn(state, i)
    build(state, model=MODEL, budget=1500)
    # The first turn's answer is the last message both histories agree on.
    kept = [e for e in state.events if e.type is EventType.MESSAGE][1].seq
    state.record(EventType.BRANCH, EventSource.USER, branch_of=kept)
    add_turn(state, 500, fact="Actually, the edited question is about tomatoes.")
    ctx = build(state, model=MODEL, budget=1500)
    text = context_text(ctx.messages)
    assert "tomatoes" in text and "subject 60" not in text
    assert ctx.report is not None and ctx.report.turns_total == 2
    assert "KX-4711-Q" in text or "KX-4711-Q" in handle_vm_tool_call(
        state, "search_pages", {"query": "locker"}
    )
    gone = json.loads(handle_vm_tool_call(state, "search_pages", {"query": "subject 60 details"}))
    assert not any("subject 60" in line for line in gone["results"])


def test_attach_with_a_new_policy_replaces_it_and_detach_forgets_the_memory(converse: Converse) -> None:
    state = converse("policy", 80)
    vm = VirtualMemory.attach(state)
    assert VirtualMemory.of(state) is vm
    strict = ContextPolicy(max_faults_per_turn=4)
    assert VirtualMemory.attach(state, strict) is vm and vm.policy is strict
    assert "at most 4" in build(state, model=MODEL, budget=3000).messages[1]["content"]
    vm.detach()
    assert VirtualMemory.of(state) is None
    add_turn(state, 80)
    fresh = VirtualMemory.attach(state)
    fresh.sync()
    assert fresh is not vm and len(fresh.turns) == 81


def test_pinning_an_unknown_page_is_a_clear_error_and_late_claims_reach_the_next_build(
    converse: Converse,
) -> None:
    state = converse("claims-late", 120)
    vm = VirtualMemory.attach(state)
    with pytest.raises(InvalidSessionOperation, match="no page 'msg_99999'"):
        vm.pin("msg_99999")
    build(state, model=MODEL, budget=2000)
    vm.add_claim("The deploy window is Tuesday 14:00 UTC.")
    assert "Tuesday 14:00 UTC" in build(state, model=MODEL, budget=2000).messages[1]["content"]


async def test_unreadable_persisted_pages_are_skipped_with_a_warning(
    converse: Converse, caplog: pytest.LogCaptureFixture
) -> None:
    async def summarize(text: str, max_tokens: int) -> str:
        return "LLM summary."

    state = converse("garbage", 120)
    state.store.submit([PutPages(state.id, {"x/sum_1": "{not json"})])
    await state.store.aflush()
    with caplog.at_level(logging.WARNING, logger="sessionware.core.memory.vm"):
        ctx = await abuild(state, model=MODEL, budget=2000, policy=ContextPolicy(summarize_fn=summarize))
    assert any("unreadable persisted page x/sum_1" in r.getMessage() for r in caplog.records)
    assert "LLM summary." in context_text(ctx.messages)


def test_working_set_evicts_heavy_media_first_and_selects_the_latest_that_fit() -> None:
    text = MemoryPage(page_id="t", session_id="s", tokens=40, importance=0.5)
    image = MemoryPage(page_id="i", session_id="s", tokens=40, importance=0.5, modality=Modality.IMAGE)
    ws = WorkingSet(capacity_tokens=60, policy=ModalityAwareLRU())
    ws.add(text, turn=1)
    ws.add(image, turn=1)
    assert ws.fit(turn=9) == ["i"]
    assert ws.recently_evicted("i", turn=10) and not ws.recently_evicted("i", turn=20)
    assert [p.page_id for p in ws.select(40)] == ["t"]
    late = MemoryPage(page_id="late", session_id="s", tokens=30)
    ws.add(late, turn=9)
    assert [p.page_id for p in ws.select(35)] == ["late"]


def test_compressors_per_modality_and_levels() -> None:
    registry = CompressorRegistry()
    extractive = registry.get(Modality.TEXT)
    assert isinstance(extractive, ExtractiveCompressor) and registry.get(Modality.STRUCTURED) is extractive
    image = registry.get(Modality.IMAGE)
    assert image.compress("a photo of a cat", CompressionLevel.ABSTRACT, 10) == "[image]"
    assert image.compress("a photo of a cat", CompressionLevel.FULL, 10) == "a photo of a cat"
    text = (
        "Nice weather. The locker code is KX-4711-Q and the badge is B-77120. " + "Filler words here. " * 40
    )
    assert extractive.compress(text, CompressionLevel.REFERENCE, 12) == "KX-4711-Q B-77120"
    cut = extractive.compress(text, CompressionLevel.FULL, 10)
    assert cut.endswith("…") and extractive.count(cut) <= 10
    assert extractive.compress("short", CompressionLevel.ABSTRACT, 10) == "short"

    class Upper:
        modality = Modality.AUDIO

        def compress(self, text: str, level: CompressionLevel, max_tokens: int) -> str:
            return text.upper()

    registry.register(Upper())
    assert registry.get(Modality.AUDIO).compress("hi", CompressionLevel.FULL, 5) == "HI"


def test_messy_logs_still_give_valid_requests_for_both_providers(converse: Converse) -> None:
    """Orphan calls and results, back-to-back user messages, content parts and bad
    tool arguments never reach the provider in a shape it rejects."""
    state = converse("messy", 0)
    for i in range(40):
        parts = [
            {"type": "text", "text": f"Look at picture {i}."},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ]
        state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=parts)
        state.record(
            EventType.MESSAGE, EventSource.USER, role=Role.USER, content=f"And one more thing about {i}."
        )
        orphan = ToolCall(id=f"lost_{i}", name="lookup", arguments="{not json")
        answered = ToolCall(id=f"ok_{i}", name="lookup", arguments="[1, 2]")
        state.record(
            EventType.MESSAGE,
            EventSource.LLM,
            role=Role.ASSISTANT,
            content="Checking.",
            tool_calls=(orphan, answered),
        )
        state.record(
            EventType.MESSAGE, EventSource.TOOL, role=Role.TOOL, tool_call_id=f"ok_{i}", content="found it"
        )
        state.record(
            EventType.MESSAGE, EventSource.TOOL, role=Role.TOOL, tool_call_id=f"nobody_{i}", content="stray"
        )
        state.record(
            EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=f"Picture {i} shows a cat."
        )
        ctx = build(state, model=MODEL, budget=1500)
        check_openai(ctx.messages)
        text = context_text(ctx.messages)
        assert f"lost_{i}" not in text and f"nobody_{i}" not in text
        actx = build(state, model="claude-3-5-sonnet", budget=1500, provider="anthropic")
        check_anthropic(actx.messages, actx.system)
        uses = [
            b
            for m in actx.messages
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_use"
        ]
        assert uses and all(isinstance(b["input"], dict) for b in uses)
