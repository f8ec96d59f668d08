"""The context builder: budget ceiling, API validity, determinism, prefix stability."""

from __future__ import annotations

import pytest
from memory_support import Converse, add_turn, check_anthropic, check_openai, context_text

from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.memory import ContextPolicy, Provider, VirtualMemory, VMMode, build
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ToolCall

MODEL = "gpt-4o-mini"


@pytest.mark.parametrize("budget", [1000, 2000, 4000])
def test_openai_context_stays_inside_the_budget_and_valid_at_every_turn(
    converse: Converse, budget: int
) -> None:
    state = converse("grow", 0)
    for i in range(150):
        add_turn(state, i, tool=i % 7 == 0)
        ctx = build(state, model=MODEL, budget=budget)
        assert ctx.report is not None
        assert ctx.report.tokens <= budget - ctx.report.fault_reserve_tokens
        check_openai(ctx.messages)


def test_reported_tokens_are_the_exact_count_of_what_is_sent(converse: Converse) -> None:
    state = converse("exact", 80, tools_every=5)
    incoming = [{"role": "user", "content": "And now?"}]
    ctx = build(state, model=MODEL, budget=3000, incoming_messages=incoming)
    assert ctx.report is not None
    assert ctx.report.tokens == counter_for_model(MODEL).count_messages(ctx.messages, ctx.tools)
    assert ctx.report.exact


def test_anthropic_context_alternates_starts_with_user_and_pairs_tool_blocks(converse: Converse) -> None:
    state = converse("anthropic", 0, prompt="Be kind.")
    for i in range(80):
        add_turn(state, i, tool=i % 3 == 0)
        ctx = build(state, model="claude-3-5-sonnet", budget=2500, provider=Provider.ANTHROPIC)
        check_anthropic(ctx.messages, ctx.system)
        assert ctx.system is not None and ctx.system[0] == {"type": "text", "text": "Be kind."}
        assert ctx.report is not None and ctx.report.tokens <= 2500
        assert all("name" in t and "input_schema" in t for t in ctx.tools)


def test_the_app_system_prompt_is_sent_verbatim_first(converse: Converse) -> None:
    prompt = 'You are "exact".\nKeep  spacing.'
    state = converse("prompt", 60, prompt=prompt)
    ctx = build(state, model=MODEL, budget=1500)
    assert ctx.messages[0] == {"role": "system", "content": prompt}


def test_same_session_and_budget_give_byte_identical_output(converse: Converse) -> None:
    first = converse("session-one", 200, tools_every=4)
    second = converse("session-two", 200, tools_every=4)
    # The second session is built at every turn along the way, the first only at the end.
    texts = []
    for state in (first, second):
        ctx = build(state, model=MODEL, budget=2000)
        texts.append(context_text(ctx.messages).replace(state.id, "SID"))
    assert texts[0] == texts[1]
    again = build(first, model=MODEL, budget=2000)
    assert context_text(again.messages).replace(first.id, "SID") == texts[0]


def test_determinism_holds_when_one_session_was_built_every_turn(converse: Converse) -> None:
    stepwise = converse("session-step", 0)
    for i in range(120):
        add_turn(stepwise, i)
        build(stepwise, model=MODEL, budget=1800)
    at_once = converse("session-once", 120)
    a = build(stepwise, model=MODEL, budget=1800)
    b = build(at_once, model=MODEL, budget=1800)
    assert context_text(a.messages).replace("session-step", "X") == context_text(b.messages).replace(
        "session-once", "X"
    )


def test_memory_block_changes_only_when_a_compaction_happens(converse: Converse) -> None:
    state = converse("prefix", 40)
    previous = build(state, model=MODEL, budget=3000).messages[1]["content"]
    changes = compactions = 0
    for i in range(40, 200):
        add_turn(state, i)
        ctx = build(state, model=MODEL, budget=3000)
        assert ctx.report is not None
        block = ctx.messages[1]["content"]
        if block != previous:
            changes += 1
            assert ctx.report.compactions > 0
        compactions += ctx.report.compactions
        previous = block
    assert 0 < changes == compactions < 160 // 4  # compaction happens in chunks, not every turn


def test_incoming_turn_is_sent_verbatim_and_last(converse: Converse) -> None:
    state = converse("incoming", 90)
    incoming = [{"role": "user", "content": [{"type": "text", "text": "What now?"}], "name": "ann"}]
    ctx = build(state, model=MODEL, budget=1200, incoming_messages=incoming)
    assert ctx.messages[-1] == incoming[0]
    check_openai(ctx.messages)


def test_incoming_tool_results_keep_the_assistant_call_just_before_them(converse: Converse) -> None:
    state = converse("tools", 50)
    state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="Look it up")
    call = ToolCall(id="call_x", name="lookup", arguments="{}")
    state.record(EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=None, tool_calls=(call,))
    incoming = [{"role": "tool", "tool_call_id": "call_x", "content": "42"}]
    ctx = build(state, model=MODEL, budget=1500, incoming_messages=incoming)
    assert ctx.messages[-1] == incoming[0]
    assert ctx.messages[-2]["tool_calls"][0]["id"] == "call_x"
    check_openai(ctx.messages)
    anthropic_incoming = [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_x", "content": "42"}]}
    ]
    actx = build(state, model=MODEL, budget=1500, incoming_messages=anthropic_incoming, provider="anthropic")
    check_anthropic(actx.messages, actx.system)


def test_incoming_tool_result_for_an_unknown_call_is_a_clear_error(converse: Converse) -> None:
    state = converse("orphan", 3)
    with pytest.raises(InvalidSessionOperation, match="call_nope"):
        build(
            state,
            model=MODEL,
            budget=1500,
            incoming_messages=[{"role": "tool", "tool_call_id": "call_nope", "content": "x"}],
        )


def test_impossible_budget_raises_with_both_numbers(converse: Converse) -> None:
    state = converse("tight", 5)
    incoming = [{"role": "user", "content": "word " * 400}]
    with pytest.raises(TokenLimitExceeded) as caught:
        build(state, model=MODEL, budget=300, incoming_messages=incoming)
    assert caught.value.limit == 300
    assert caught.value.required > 400


def test_a_page_larger_than_the_budget_is_truncated_not_dropped(converse: Converse) -> None:
    state = converse("huge", 10)
    state.record(
        EventType.MESSAGE, EventSource.USER, role=Role.USER, content="Summarise: " + "lorem ipsum " * 3000
    )
    ctx = build(state, model=MODEL, budget=1500)
    assert ctx.report is not None and ctx.report.tokens <= 1500
    assert "Summarise: lorem" in ctx.messages[-1]["content"]
    assert "truncated" in ctx.messages[-1]["content"]


def test_pinned_items_survive_every_build(converse: Converse) -> None:
    state = converse("pins", 0)
    state.record(
        EventType.MESSAGE,
        EventSource.USER,
        role=Role.USER,
        content="Always answer in French.",
        metadata={"pin": True},
    )
    state.record(EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content="D'accord.")
    policy = ContextPolicy(pinned=["The user is called Ada."])
    for i in range(120):
        add_turn(state, i)
        ctx = build(state, model=MODEL, budget=1200, policy=policy)
        text = context_text(ctx.messages)
        assert "Always answer in French." in text
        assert "The user is called Ada." in text


def test_passive_mode_sends_no_tools_and_no_manifest(converse: Converse) -> None:
    state = converse("passive", 100)
    ctx = build(state, model=MODEL, budget=2000, policy=ContextPolicy(mode=VMMode.PASSIVE))
    assert ctx.tools == []
    block = ctx.messages[1]["content"]
    assert "<VM:MANIFEST_JSON>" not in block and "<VM:CONTEXT>" in block


def test_memory_block_tags_are_unique_and_parseable(converse: Converse) -> None:
    state = converse("tags", 150)
    for mode in VMMode:
        ctx = build(state, model=MODEL, budget=3000, policy=ContextPolicy(mode=mode))
        block = ctx.messages[1]["content"]
        for tag in ("<VM:RULES>", "</VM:RULES>", "<VM:CONTEXT>", "</VM:CONTEXT>"):
            assert block.count(tag) == 1
        lines = block.split("<VM:CONTEXT>\n", 1)[1].split("\n</VM:CONTEXT>")[0].splitlines()
        assert lines and all(line[0] in "UATSCP" and ": " in line for line in lines)


def test_rules_tell_the_model_the_same_fault_limit_the_handler_enforces(converse: Converse) -> None:
    state = converse("limit", 60)
    ctx = build(
        state, model=MODEL, budget=3000, policy=ContextPolicy(max_faults_per_turn=3, mode=VMMode.STRICT)
    )
    block = ctx.messages[1]["content"]
    assert "at most 3 memory calls per turn" in block
    assert '"max_faults_per_turn":3' in block


def test_default_budget_comes_from_the_model_window_minus_reserved_output(converse: Converse) -> None:
    state = converse("window", 3)
    ctx = build(state, model=MODEL, policy=ContextPolicy(budget_fraction=0.05, reserved_output_tokens=1000))
    assert ctx.report is not None and ctx.report.budget == int(128_000 * 0.05) - 1000


def test_report_lists_included_pages_and_prefix_lengths(converse: Converse) -> None:
    state = converse("report", 120)
    ctx = build(state, model=MODEL, budget=2000)
    report = ctx.report
    assert report is not None
    assert report.pages_evicted > 0 and report.compactions > 0
    assert any(p.startswith(("sum_", "roll_")) for p in report.pages_included)
    last_message = [e for e in state.events if e.type is EventType.MESSAGE][-1]
    assert f"msg_{last_message.seq}" in report.pages_included
    assert any(e.type is EventType.COMPACTION for e in state.events)
    assert 0 < report.stable_prefix_tokens < report.cacheable_prefix_tokens <= report.tokens


def test_small_budgets_get_compact_rules_and_tools_and_room_for_fault_results(converse: Converse) -> None:
    state = converse("compact", 150)
    counter = counter_for_model(MODEL)
    policy = ContextPolicy(max_faults_per_turn=3)
    small = build(state, model=MODEL, budget=1500, policy=policy)
    large = build(state, model=MODEL, budget=4000, policy=policy)
    small_block, large_block = small.messages[1]["content"], large.messages[1]["content"]
    assert "<VM:MANIFEST_JSON>" not in small_block and "<VM:MANIFEST_JSON>" in large_block
    assert "at most 3 calls per turn" in small_block
    assert counter.count_text(small_block.split("</VM:RULES>")[0]) < counter.count_text(
        large_block.split("</VM:RULES>")[0]
    )
    assert [t["function"]["name"] for t in small.tools] == [t["function"]["name"] for t in large.tools]
    assert counter.count_tools(small.tools) < counter.count_tools(large.tools)
    assert small.report is not None and small.report.fault_reserve_tokens >= 1500 * 0.4 - 1
    full = build(state, model=MODEL, budget=1500, policy=ContextPolicy(compact_below_tokens=0))
    assert "<VM:MANIFEST_JSON>" in full.messages[1]["content"]


@pytest.mark.slow
@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC])
def test_a_context_built_every_turn_equals_one_replayed_from_the_log_at_every_turn(
    converse: Converse, provider: Provider
) -> None:
    # The plan keeps its window's rendered turns between builds: what a long-lived memory
    # sends must be what a memory made afresh from the same log sends, compactions included.
    model = MODEL if provider is Provider.OPENAI else "claude-3-5-sonnet"
    kept, fresh = converse("kept", 0), converse("fresh", 0)
    compactions = 0
    for i in range(90):
        incoming = [{"role": "user", "content": f"Question {i}?"}]
        built = []
        for state in (kept, fresh):
            add_turn(state, i, tool=i % 4 == 0)
            if state is fresh:
                VirtualMemory.attach(state).detach()
            ctx = build(state, model=model, budget=1500, incoming_messages=incoming, provider=provider)
            assert ctx.report is not None
            built.append((context_text(ctx.messages, ctx.system).replace(state.id, "SID"), ctx.report.tokens))
            if state is kept:
                compactions += ctx.report.compactions
                if provider is Provider.OPENAI:
                    assert ctx.report.tokens == counter_for_model(model).count_messages(
                        ctx.messages, ctx.tools
                    )
        assert built[0] == built[1]
    assert compactions > 2
