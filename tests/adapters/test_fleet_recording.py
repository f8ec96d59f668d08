"""One conversation recorded by several workers (a proxy fleet): records arrive late and
out of order, and the session still holds every message once, in order.

Two ``Store`` objects on one SQLite file are two worker processes. Each worker records a
turn from what its call carried (the whole history resent, and the answer), as the proxy
hook does after the response went out; a worker that is slow to record lets the next
turn, answered by the other worker, reach the store first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adapter_support import make_openai

import sessionware
from sessionware.adapters.engine.record import CallFacts, record_call
from sessionware.adapters.engine.types import CallOutput, EndpointKind
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.adapters.openai.chat import ChatEndpoint
from sessionware.core.accounting.pricing import PriceBook
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.memory import ContextPolicy
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

SYSTEM = {"role": "system", "content": "You are a fleet test."}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a = Store(SQLiteBackend(tmp_path / "fleet.db"))
    b = Store(SQLiteBackend(tmp_path / "fleet.db"))
    yield a, b
    a.close()
    b.close()


def history(turns: int) -> list[dict[str, Any]]:
    """The messages a client sends for turn ``turns`` (0-based): the turns before, answered."""
    sent: list[dict[str, Any]] = [SYSTEM]
    for turn in range(turns):
        sent += [{"role": "user", "content": f"u{turn}"}, {"role": "assistant", "content": f"a{turn}"}]
    return [*sent, {"role": "user", "content": f"u{turns}"}]


def record_turn(store: Store, turn: int) -> None:
    request = ChatEndpoint().read_request({"model": "gpt-4o-mini", "messages": history(turn)})
    facts = CallFacts(
        provider="openai", kind=EndpointKind.CHAT, request=request, stream=False, latency_ms=5.0
    )
    output = CallOutput(
        text=f"a{turn}", model="gpt-4o-mini", usage=TokenUsage(input_tokens=10 * (turn + 1), output_tokens=3)
    )
    state = registry_for(store).open("conversation")
    record_call(state, facts, PriceBook(), output=output)
    store.flush()


def logged(store: Store) -> list[str]:
    events = store.backend.load_events("conversation")
    return [str(e.content) for e in events if e.type is EventType.MESSAGE]


def expected(turns: int) -> list[str]:
    return [text for turn in range(turns) for text in (f"u{turn}", f"a{turn}")]


def test_turns_recorded_in_order_by_alternating_workers(workers: tuple[Store, Store]) -> None:
    for turn in range(6):
        record_turn(workers[turn % 2], turn)
    assert logged(workers[0]) == expected(6)


def test_a_turn_recorded_after_the_next_one_adds_no_message_and_keeps_its_usage(
    workers: tuple[Store, Store],
) -> None:
    a, b = workers
    record_turn(a, 0)
    record_turn(b, 2)  # turn 1's worker has not recorded yet; turn 2 carries it in its history
    record_turn(a, 1)
    record_turn(b, 3)
    assert logged(a) == expected(4)
    events = a.backend.load_events("conversation")
    # Every call's tokens are counted once: the late turn's usage is on an event of its own.
    assert sum(e.usage.input_tokens for e in events if e.usage is not None) == 10 + 20 + 30 + 40
    assert [e.type for e in events].count(EventType.BRANCH) == 0
    totals = a.backend.load_info("conversation").totals
    assert totals.usage.input_tokens == 100 and totals.llm_calls == 4
    assert totals.messages_by_role[Role.ASSISTANT] == 4
    late = next(e for e in events if e.type is EventType.LLM_CALL)
    answer = next(e for e in events if e.type is EventType.MESSAGE and e.content == "a1")
    assert late.metadata["answer_seq"] == answer.seq and late.usage is not None


def test_a_worker_recording_the_next_turn_waits_for_the_one_recording_the_turn_before(
    workers: tuple[Store, Store],
) -> None:
    """Both workers would find turn 1 missing if each read before the other committed;
    the later one waits for the session until the earlier one's append is committed."""
    a, b = workers
    record_turn(a, 0)
    state_a = registry_for(a).open("conversation")
    holding, go = threading.Event(), threading.Event()

    def worker_a() -> None:
        with state_a.exclusive() as held:  # a is inside its record of turn 1
            assert held
            holding.set()
            go.wait(10)
            record_turn(a, 1)

    first = threading.Thread(target=worker_a)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=record_turn, args=(b, 2))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # b waits: it has not read the log yet
    go.set()
    first.join(10)
    second.join(10)
    assert logged(a) == expected(3)
    events = a.backend.load_events("conversation")
    assert sum(e.usage.input_tokens for e in events if e.usage is not None) == 10 + 20 + 30


def test_a_managed_worker_records_an_answer_another_worker_is_recording_once(
    workers: tuple[Store, Store],
) -> None:
    """Managed mode records what the session lacks before it builds the context: here the
    answer to turn 1, which worker a is recording at that moment. Worker b waits for a's
    commit and finds the answer there, instead of appending it a second time."""
    a, b = workers
    record_turn(a, 0)
    state_a = registry_for(a).open("conversation")
    holding, go = threading.Event(), threading.Event()

    def worker_a() -> None:
        with state_a.exclusive() as held:
            assert held
            holding.set()
            go.wait(10)
            record_turn(a, 1)

    api = FakeOpenAI(lambda body: Reply(text="a2"))
    managed = sessionware.wrap(
        make_openai("OpenAI", api),
        store=b,
        session_id="conversation",
        mode="managed",
        context=ContextPolicy(budget=2000),
    )
    first = threading.Thread(target=worker_a)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(
        target=lambda: managed.chat.completions.create(model="gpt-4o-mini", messages=history(2))
    )
    second.start()
    second.join(0.3)
    assert second.is_alive() and not api.requests  # b waits before it builds and sends
    go.set()
    first.join(10)
    second.join(10)
    b.flush()
    assert logged(a) == expected(3)
