"""Infinite context: segments roll over at turn boundaries and carry a rolling summary."""

from __future__ import annotations

from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.manager import SessionManager
from sessionware.core.session.simple_api import get_session_stats, track_infinite_conversation
from sessionware.core.store import Store

FILLER = "and some more words to make this turn longer " * 4


async def test_segments_roll_over_at_the_threshold_and_keep_turns_whole(memory_store: Store) -> None:
    sm = SessionManager(
        store=memory_store, system_prompt="Be brief.", infinite_context=True, token_threshold=250
    )
    first = sm.session_id
    for i in range(12):
        await sm.user_says(f"Question {i}: my code {i} is CODE-{i:03d}. {FILLER}")
        await sm.ai_responds(
            None,
            tool_calls=[{"id": f"c{i}", "function": {"name": "look", "arguments": "{}"}}],
            model="gpt-4o-mini",
        )
        await sm.tool_used("look", {}, f"result {i}", call_id=f"c{i}")
        await sm.ai_responds(f"Answer {i}. {FILLER}", model="gpt-4o-mini")
    assert sm.session_id != first
    stats = await sm.get_stats()
    assert stats.segments >= 3 and stats.infinite_context
    assert stats.user_messages == 12 and stats.session_chain[0] == first
    for info_id in stats.session_chain:
        events = (await memory_store.aload(info_id)).events
        roles = [e.role for e in events if e.type in (EventType.MESSAGE, EventType.TOOL_CALL)]
        # A segment starts with a user message and never ends inside a turn or a tool pair.
        assert roles[0] is Role.USER and roles[-1] is Role.ASSISTANT
        assert sum(e.type is EventType.MESSAGE and e.tool_calls != () for e in events) == sum(
            e.type is EventType.TOOL_CALL for e in events
        )


async def test_each_segment_carries_the_rolling_summary_of_all_earlier_ones(memory_store: Store) -> None:
    sm = SessionManager(
        store=memory_store, infinite_context=True, token_threshold=2000, max_turns_per_segment=3
    )
    for i in range(10):
        await sm.user_says(f"Note {i}: the locker code number {i} is LK-{i}{i}{i}.")
        await sm.ai_responds(f"Noted {i}.", model="gpt-4o-mini")
    messages = await sm.get_messages_for_llm()
    summary = messages[0]["content"]
    assert messages[0]["role"] == "system" and summary.startswith("Summary of the earlier conversation")
    assert "LK-000" in summary and "LK-555" in summary  # the first and a later segment
    history = await sm.get_full_history()
    assert [e.text for e in history if e.role is Role.USER][0].startswith("Note 0")
    assert len([e for e in history if e.role is Role.USER]) == 10


async def test_max_turns_counts_turns_not_messages(memory_store: Store) -> None:
    sm = SessionManager(
        store=memory_store, infinite_context=True, token_threshold=10**6, max_turns_per_segment=2
    )
    for i in range(5):
        await sm.user_says(f"q{i}")
        await sm.ai_responds(f"a{i}", model="gpt-4o-mini")
    stats = await sm.get_stats()
    assert stats.segments == 3 and stats.total_messages == 10


async def test_vm_and_infinite_context_together_keep_the_summary_in_memory(memory_store: Store) -> None:
    sm = SessionManager(store=memory_store, infinite_context=True, token_threshold=200, enable_vm=True)
    for i in range(8):
        await sm.user_says(f"Fact {i}: the gate code is GATE-{i}42. {FILLER}")
        await sm.ai_responds(f"Ok {i}.", model="gpt-4o-mini")
    ctx = await sm.build_context(budget=1500)
    block = ctx.messages[0]["content"]
    assert "GATE-042" in block and "S (seg_" in block
    assert ctx.report is not None and ctx.report.tokens <= 1500


async def test_track_infinite_conversation_keeps_one_chain_across_calls(memory_store: Store) -> None:
    first = await track_infinite_conversation(
        "hello " + FILLER, "hi " + FILLER, model="gpt-4o-mini", store=memory_store, token_threshold=150
    )
    latest = first
    for i in range(6):
        latest = await track_infinite_conversation(
            f"question {i} " + FILLER,
            f"answer {i} " + FILLER,
            model="gpt-4o-mini",
            session_id=first.session_id,
            store=memory_store,
            token_threshold=150,
        )
    assert latest.session_id != first.session_id
    manager = SessionManager(latest.session_id, store=memory_store, infinite_context=True)
    stats = await manager.get_stats()
    assert stats.user_messages == 7 and stats.segments > 1
    for segment in (first.session_id, stats.session_chain[1], latest.session_id):
        # Any segment's id gives the stats of the whole chain, as the manager's do.
        assert await get_session_stats(segment, store=memory_store) == stats


async def test_get_session_stats_of_a_chain_counts_every_segment(memory_store: Store) -> None:
    sm = SessionManager(
        store=memory_store, infinite_context=True, token_threshold=10**6, max_turns_per_segment=5
    )
    root = sm.session_id
    for i in range(30):
        await sm.user_says(f"q{i}")
        await sm.ai_responds(f"a{i}", model="gpt-4o-mini")
    stats = await get_session_stats(root, store=memory_store)
    assert (stats.segments, stats.total_messages, stats.user_messages) == (6, 60, 30)
    assert stats.infinite_context and stats.session_chain[0] == root
