"""Search ranking in long sessions: repeated questions, superseded facts, near-duplicates,
and fault results that keep the follow-up request inside the budget."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memory_support import Converse, add_turn, context_text

from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.memory import build, handle_vm_tool_call
from sessionware.core.memory.search import SearchIndex
from sessionware.core.session.state import SessionState

MODEL = "gpt-4o-mini"
NAMES = ["Anton", "Bruno", "Chloe", "Dmitri", "Elif", "Felix", "Greta", "Hana", "Ivan", "Jade"]


def _fill(state: SessionState, start: int, n: int) -> int:
    for i in range(start, start + n):
        add_turn(state, i)
    return start + n


def test_earlier_questions_about_other_names_do_not_outrank_the_answer(converse: Converse) -> None:
    state = converse("questions", 0)
    add_turn(state, 0, fact="Update: Lucia's parking spot changed, it is now VZ-2527-E.")
    i = _fill(state, 1, 40)
    for name in NAMES:
        add_turn(state, i, fact=f"Which parking spot does {name} use now?")
        i = _fill(state, i + 1, 10)
    build(state, model=MODEL, budget=2000)
    found = json.loads(
        handle_vm_tool_call(state, "search_pages", {"query": "Which parking spot does Lucia use now?"})
    )
    assert "VZ-2527-E" in found["results"][0]


def test_search_ranks_by_score_and_shows_both_statements_of_a_fact(converse: Converse) -> None:
    state = converse("superseded", 0)
    add_turn(state, 0, fact="Omar's desk is BR-4676-D.")
    i = _fill(state, 1, 60)
    add_turn(
        state, i, fact="Omar moved desks; the desk is now MG-3349-Z, by the east window near the printers."
    )
    _fill(state, i + 1, 60)
    ctx = build(state, model=MODEL, budget=2000, incoming_messages=[{"role": "user", "content": "Hello"}])
    found = json.loads(
        handle_vm_tool_call(state, "search_pages", {"query": "Where is Omar's desk these days?"})
    )
    seen = context_text(ctx.messages) + " ".join(found["results"])
    assert "MG-3349-Z" in seen and "BR-4676-D" in seen
    scores = [line for line in found["results"] if "desk" in line]
    assert scores and scores == found["results"][: len(scores)]  # the matching pages first


def test_near_duplicates_are_folded_so_results_cover_distinct_pages() -> None:
    index = SearchIndex()
    index.add("fact", "The retry budget for the billing service is 7 attempts, agreed with finance.")
    for n in range(12):
        index.add(f"dup_{n}", f"Billing retry budget check {n}.")
    index.add("other", "The billing retry budget review is scheduled with Greta for the end of the month.")
    hits = [h.page_id for h in index.search("billing retry budget", limit=3)]
    assert sum(h.startswith("dup_") for h in hits) == 1
    assert "fact" in hits and "other" in hits


def test_pages_that_differ_in_their_values_are_never_folded() -> None:
    index = SearchIndex()
    for n in range(6):
        index.add(f"p{n}", f"The wifi password at the cabin is KX-{4711 + n}-Q.")
    assert len(index.search("wifi password cabin", limit=6)) == 6


def _call(name: str, arguments: str, provider: str) -> list[dict[str, Any]]:
    if provider == "anthropic":
        return [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "name": name,
                        "input": json.loads(arguments),
                    }
                ],
            }
        ]
    call_id = "call_abcdefghijklmnopqrstuvwx"
    function = {"name": name, "arguments": arguments}
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": function}],
        }
    ]


def _result(text: str, provider: str) -> dict[str, Any]:
    if provider == "anthropic":
        return {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": text}
            ],
        }
    return {"role": "tool", "tool_call_id": "call_abcdefghijklmnopqrstuvwx", "content": text}


@pytest.mark.parametrize(
    ("budget", "provider"), [(1000, "openai"), (1500, "openai"), (4000, "openai"), (1200, "anthropic")]
)
def test_follow_up_requests_with_fault_results_stay_inside_the_budget(
    converse: Converse, budget: int, provider: str
) -> None:
    state = converse(f"ceiling-{budget}-{provider}", 0)
    add_turn(
        state,
        0,
        fact="Starting note: vault key JH-3420-Q points to tag QQ-1111-A. " + "Padding words. " * 150,
    )
    _fill(state, 1, 150)
    model = MODEL if provider == "openai" else "claude-3-5-sonnet"
    counter = counter_for_model(model)
    question = "Starting from vault key JH-3420-Q, which value do you reach at the end? " * 2
    ctx = build(
        state,
        model=model,
        budget=budget,
        incoming_messages=[{"role": "user", "content": question}],
        provider=provider,
    )
    messages = list(ctx.messages)
    system_tokens = (
        counter.count_text("system") + 3 + sum(counter.count_text(b["text"]) for b in ctx.system or [])
    )
    assert ctx.report is not None
    assert (
        counter.count_messages(messages, ctx.tools) + (system_tokens if ctx.system else 0)
        == ctx.report.tokens
    )
    calls = [
        ("search_pages", json.dumps({"query": question})),
        ("page_fault", json.dumps({"page_id": "msg_1"})),
    ]
    for name, arguments in calls:
        result = handle_vm_tool_call(state, name, arguments)
        assert "error" not in json.loads(result)
        messages += [*_call(name, arguments, provider), _result(result, provider)]
        total = counter.count_messages(messages, ctx.tools) + (system_tokens if ctx.system else 0)
        assert total <= budget


def test_a_chain_page_that_also_matches_the_query_is_reported_as_reached_by_the_chain() -> None:
    index = SearchIndex()
    index.add("t1", "Note this: vault key VV-6334-N points to tag HL-1724-V.")
    index.add("q1", "Starting from vault key MW-6021-L, which value do you reach at the end?", weight=0.5)
    index.add("t2", "Another note: tag HL-1724-V points to bucket AH-4321-N.")
    index.add("t3", "Last one: bucket AH-4321-N holds the value EE-6428-W.")
    hits = index.search("Starting from vault key VV-6334-N, which value do you reach at the end?", follow=3)
    assert hits[0].page_id == "t1"
    assert [(h.page_id, h.via) for h in hits if h.via] == [("t2", "hl-1724-v"), ("t3", "ah-4321-n")]
    assert [h.page_id for h in hits].count("t3") == 1


def test_hidden_pages_are_not_returned_but_a_chain_runs_through_them() -> None:
    index = SearchIndex()
    index.add("t1", "Note this: vault key VV-6334-N points to tag HL-1724-V.")
    index.add("t2", "Another note: tag HL-1724-V points to bucket AH-4321-N.")
    index.add("t3", "Last one: bucket AH-4321-N holds the value EE-6428-W.")
    index.add("t4", "A vault key is kept in the office.")
    shown = {"t1", "t2"}  # the context already shows the chain's first two links

    hits = index.search("Where does vault key VV-6334-N lead?", follow=3, hide=shown.__contains__)

    assert [h.page_id for h in hits] == ["t4", "t3"]
    assert hits[1].via == "ah-4321-n"


def test_search_leaves_out_what_the_build_showed_and_names_it(converse: Converse) -> None:
    state = converse("shown", 0)
    add_turn(state, 0, fact="Omar's desk is BR-4676-D, by the east window.")
    i = _fill(state, 1, 200)
    add_turn(state, i, fact="Omar also keeps a spare desk key in drawer KD-1180-P.")
    _fill(state, i + 1, 200)
    question = "Where is Omar's desk?"
    ctx = build(state, model=MODEL, budget=2000, incoming_messages=[{"role": "user", "content": question}])
    assert "BR-4676-D" in context_text(ctx.messages)  # the recall region found it
    assert ctx.report is not None
    [desk] = [p for p in ctx.report.recalled_pages if p == "msg_1"]

    found = json.loads(handle_vm_tool_call(state, "search_pages", {"query": question}))

    assert "BR-4676-D" not in json.dumps(found["results"])
    assert desk in found["in_context"]


def test_a_query_in_a_long_history_scores_only_what_its_rare_words_find() -> None:
    """A word in hundreds of pages adds to the pages rarer words found instead of bringing
    in every page it is in, so a query's cost stops growing with the history; alone, it
    still finds its newest pages."""
    index = SearchIndex()
    for i in range(8000):
        said = "watered the garden beds" if i % 10 == 0 else "a quiet day at the office"
        index.add(f"msg_{i}", f"Week {i}: {said}.")
    index.add("msg_8000", "The garden shed key is under the blue pot.")

    hits = index.search("where is the garden shed key", limit=50, fold=False)

    assert [h.page_id for h in hits] == ["msg_8000"]  # 800 garden pages: each only adds to a found one
    alone = index.search("garden", limit=3, fold=False)
    assert [h.page_id for h in alone] == ["msg_8000", "msg_7990", "msg_7980"]


def test_a_turn_that_names_nothing_asked_is_found_two_turns_from_one_that_does() -> None:
    index = SearchIndex()
    chat = [
        "Did you ever go to the aquarium downtown?",
        "Not yet, is it worth it?",
        "Absolutely, the jellyfish tank alone took an hour.",
        "Lunch was fine.",
        "The weather turned cold.",
    ]
    for i, text in enumerate(chat):
        index.add(f"t{i}", text)
    alone = [h.page_id for h in index.search("aquarium visit", limit=10)]
    assert alone == ["t0"]
    spread = [h.page_id for h in index.search("aquarium visit", limit=10, neighbours=0.3)]
    assert spread[0] == "t0" and set(spread) == {"t0", "t1", "t2"}  # t2 holds the answer
    near = [h.page_id for h in index.search("aquarium visit", limit=10, neighbours=0.3, reach=1)]
    assert set(near) == {"t0", "t1"}


def test_a_fault_on_a_page_search_returned_whole_brings_its_surroundings_not_the_page_again(
    converse: Converse,
) -> None:
    state = converse("fault-after-search", 0)
    i = _fill(state, 0, 100)
    add_turn(state, i, fact="The spare router lives in the hallway cupboard, box RT-5521-H.")
    _fill(state, i + 1, 100)
    build(state, model=MODEL, budget=2000, incoming_messages=[{"role": "user", "content": "Hello"}])
    found = json.loads(handle_vm_tool_call(state, "search_pages", {"query": "spare router cupboard"}))
    assert "RT-5521-H" in found["results"][0]
    page_id = found["results"][0].split(":", 1)[0].split()[-1]

    fault = json.loads(handle_vm_tool_call(state, "page_fault", {"page_id": page_id}))

    assert "RT-5521-H" not in json.dumps(fault)  # the model has it from the search result
    assert "text" not in fault["page"]["content"]
    turn = int(page_id.split("_")[1])
    near = {line.split(":", 1)[0].split()[-1] for line in fault["neighbours"]}
    assert near and all(abs(int(n.split("_")[1]) - turn) <= 3 for n in near)
    assert any(abs(int(n.split("_")[1]) - turn) == 3 for n in near)  # one turn wider than a first fault
