"""A compaction's work done ahead: turns are prepared as they close (sentences read,
recall lines counted), and superseded statements are found without comparing every pair.
Neither may change what is built."""

from __future__ import annotations

import random

import pytest
from memory_support import Converse, add_turn, context_text

from sessionware.core.memory import build
from sessionware.core.memory.compression import ExtractiveCompressor, statement, superseded
from sessionware.core.memory.plan import current_plan
from sessionware.core.memory.text import terms
from sessionware.core.memory.vm import VirtualMemory

MODEL = "gpt-4o-mini"


def _pairwise(parts: list[str]) -> set[int]:
    """The rule ``superseded`` applies, checked pair by pair (the reference)."""
    facts = [statement(p) for p in parts]
    out: set[int] = set()
    for i, (text, subject, _, _) in enumerate(facts):
        if subject is None:
            continue
        for j in range(i + 1, len(parts)):
            other, their_subject, their_terms, cue = facts[j]
            if other == text:
                continue
            if their_subject == subject or (len(subject) >= 2 and subject <= their_terms and cue):
                out.add(i)
                break
    return out


def _sentence(rng: random.Random) -> str:
    names = ["my favourite colour", "the deploy key", "Omar", "the office", "our main database", "Lena"]
    values = ["blue", "green", "KX-4711", "in Porto", "PostgreSQL", "closed", "a painter"]
    speaker = rng.choice(["", "U: ", "Caroline: ", "[8 May, 2023] Melanie: "])
    cue = rng.choice(["", "", " now", " instead"])
    if rng.random() < 0.3:
        return f"{speaker}We talked about {rng.choice(names)} and it changed{cue}."
    verb = rng.choice(["is", "was", "are"])
    return f"{speaker}{rng.choice(names).capitalize()} {verb}{cue} {rng.choice(values)}."


@pytest.mark.parametrize("seed", range(40))
def test_superseded_statements_are_those_the_pairwise_rule_finds(seed: int) -> None:
    rng = random.Random(seed)
    parts = [_sentence(rng) for _ in range(rng.randint(1, 60))]
    assert superseded(parts) == _pairwise(parts)


def test_an_update_replaces_the_statement_it_supersedes() -> None:
    parts = ["U: My favourite colour is blue.", "U: I live in Porto.", "U: My favourite colour is green now."]
    assert superseded(parts) == {0}
    cued = ["Our main database is MySQL.", "We moved our main database to PostgreSQL now."]
    assert terms("our main database") and superseded(cued) == {0}


def test_prepared_sentences_compress_to_the_same_summary() -> None:
    text = "\n".join(
        f"U: Item {i} is in project P-{i % 7}. Nice. Item {i % 5} is now in project Q." for i in range(40)
    )
    plain = ExtractiveCompressor().compress_text(text, 60)
    prepared = ExtractiveCompressor()
    prepared.prepare(text)
    assert prepared.compress_text(text, 60) == plain


def test_a_build_in_step_with_the_conversation_prepares_each_closing_turn(converse: Converse) -> None:
    state = converse("prepared", 30)
    build(state, model=MODEL, budget=3000)  # a replay of 30 turns: nothing prepared
    vm = VirtualMemory.attach(state)
    plan = current_plan(vm)
    assert plan is not None and plan.counter_key
    lines = vm.lines.setdefault(plan.counter_key, {})
    add_turn(state, 30)
    build(state, model=MODEL, budget=3000)
    closed = vm.turns[len(vm.turns) - 2]  # the turn this build closed
    assert closed.page_ids and all(page_id in lines for page_id in closed.page_ids)


def test_prepared_and_replayed_sessions_build_the_same_requests_through_compactions(
    converse: Converse,
) -> None:
    stepwise, replayed = converse("stepwise", 0, tools_every=3), converse("replayed", 0, tools_every=3)
    compactions = 0
    for i in range(150):
        incoming = [{"role": "user", "content": f"What about subject {i // 2}?"}]
        built = []
        for state in (stepwise, replayed):
            add_turn(state, i, tool=i % 3 == 0)
            if state is replayed:
                VirtualMemory.attach(state).detach()  # made afresh from the log: nothing prepared
            ctx = build(state, model=MODEL, budget=2500, incoming_messages=incoming)
            assert ctx.report is not None
            if state is stepwise:
                compactions += ctx.report.compactions
            built.append(context_text(ctx.messages).replace(state.id, "SID"))
        assert built[0] == built[1]
    assert compactions >= 3
