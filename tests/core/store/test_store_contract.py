"""The storage contract (``sessionware.core.store.base``), run unchanged against every
backend: memory, SQLite, a real Redis. A new backend joins by adding a fixture (see
``conftest.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from store_support import BackendKind

from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.errors import SessionAlreadyExists, SessionNotFound
from sessionware.core.session.enums import EventSource, EventType, Role, RunStatus
from sessionware.core.session.models import ErrorInfo, SessionEvent, SessionInfo, SessionRun, ToolCall
from sessionware.core.store import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    SessionStore,
    SessionVersion,
    Store,
)

Info = Callable[..., SessionInfo]
Event = Callable[..., SessionEvent]


def test_backend_satisfies_the_protocol(backend: SessionStore, info: Info, event: Event) -> None:
    assert isinstance(backend, SessionStore)
    assert backend.kind in ("memory", "sqlite", "redis", "postgresql")
    assert backend.location


def test_created_session_loads_with_its_header_and_no_events(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write(
        [CreateSession(info("s1", metadata={"user": "ada"}, system_prompt="Be brief.", parent_id=None))]
    )
    loaded = backend.load("s1")
    assert (loaded.id, loaded.metadata, loaded.system_prompt) == ("s1", {"user": "ada"}, "Be brief.")
    assert loaded.events == [] and loaded.children == [] and loaded.last_seq == 0
    assert backend.exists("s1") and not backend.exists("s2")


def test_every_event_field_survives_a_round_trip(backend: SessionStore, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1"))])
    rich = event(
        "s1",
        1,
        source=EventSource.LLM,
        role=Role.ASSISTANT,
        content=[{"type": "text", "text": "héllo"}, {"type": "image_url", "image_url": {"url": "x"}}],
        tool_calls=(ToolCall(id="call_1", name="weather", arguments='{"city": "Lisbon"}'),),
        usage=TokenUsage(
            input_tokens=1200,
            output_tokens=30,
            cache_read_tokens=1000,
            cache_write_tokens=100,
            reasoning_tokens=7,
        ),
        cost=Decimal("0.000123456789"),
        model="gpt-4o",
        provider="openai",
        latency_ms=12.5,
        ttft_ms=3.25,
        finish_reason="tool_calls",
        metadata={"trace": [1, 2, {"k": None}]},
    )
    failed_tool = event(
        "s1",
        2,
        type=EventType.TOOL_CALL,
        source=EventSource.TOOL,
        role=Role.TOOL,
        content=None,
        tool_name="weather",
        tool_arguments={"city": "Lisbon"},
        tool_result=None,
        tool_call_id="call_1",
        error=ErrorInfo(type="TimeoutError", message="slow", status_code=504),
    )
    backend.write([AppendEvents("s1", (rich, failed_tool))])
    assert backend.load_events("s1") == [rich, failed_tool]
    assert backend.load("s1").events == [rich, failed_tool]
    assert backend.load_events("s1")[0].cost == Decimal("0.000123456789")


def test_load_events_after_a_sequence_number(backend: SessionStore, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", tuple(event("s1", i) for i in (1, 2, 3)))])
    assert [e.seq for e in backend.load_events("s1", after_seq=1)] == [2, 3]
    assert backend.load_events("s1", after_seq=3) == []


def test_totals_and_last_seq_are_folded_from_appends(backend: SessionStore, info: Info, event: Event) -> None:
    usage = TokenUsage(input_tokens=100, output_tokens=20, cache_read_tokens=50)
    backend.write(
        [
            CreateSession(info("s1")),
            AppendEvents("s1", (event("s1", 1),)),
            AppendEvents(
                "s1",
                (
                    event(
                        "s1",
                        2,
                        source=EventSource.LLM,
                        role=Role.ASSISTANT,
                        usage=usage,
                        cost=Decimal("0.0001"),
                        model="gpt-4o",
                    ),
                    event(
                        "s1",
                        3,
                        source=EventSource.LLM,
                        role=Role.ASSISTANT,
                        usage=usage,
                        cost=None,
                        model="mystery",
                    ),
                ),
            ),
        ]
    )
    loaded = backend.load_info("s1")
    assert loaded.last_seq == 3
    totals = loaded.totals
    assert totals.events == 3
    assert totals.messages_by_role == {Role.USER: 1, Role.ASSISTANT: 2}
    assert (totals.usage.input_tokens, totals.usage.output_tokens, totals.usage.cache_read_tokens) == (
        200,
        40,
        100,
    )
    assert totals.cost == Decimal("0.0001") and totals.unpriced_calls == 1
    assert totals.models == {"gpt-4o": 1, "mystery": 1}


def test_the_store_numbers_appended_events_whatever_seq_they_carry(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", (event("s1", 1),))])
    # A writer whose view was stale numbered these 1, 1 and 9: the store says 2, 3, 4.
    late = (event("s1", 1, content="a"), event("s1", 1, content="b"), event("s1", 9, content="c"))
    receipt = backend.write([AppendEvents("s1", late)])
    assert receipt.last_seqs == {"s1": 4} and receipt.appended == 3 and receipt.duplicates == 0
    stored = backend.load_events("s1")
    assert [(e.seq, e.content) for e in stored] == [(1, "message 1"), (2, "a"), (3, "b"), (4, "c")]
    assert [e.id for e in stored[1:]] == [e.id for e in late]
    assert backend.load_info("s1").last_seq == 4 and backend.last_seq("s1") == 4


def test_an_append_is_idempotent_by_event_id(backend: SessionStore, info: Info, event: Event) -> None:
    first = (event("s1", 1), event("s1", 2))
    backend.write([CreateSession(info("s1")), AppendEvents("s1", first)])
    replay = backend.write([AppendEvents("s1", first)])  # a batch replayed after a fault
    assert replay.appended == 0 and replay.duplicates == 2 and replay.last_seqs == {"s1": 2}
    later = event("s1", 3)
    partly = backend.write([AppendEvents("s1", (first[1], later, later))])
    assert partly.appended == 1 and partly.duplicates == 2
    assert [e.id for e in backend.load_events("s1")] == [first[0].id, first[1].id, later.id]
    totals = backend.load_info("s1").totals
    assert totals.events == 3 and totals.messages_by_role == {Role.USER: 3}


def test_writers_appending_at_once_lose_nothing_and_keep_their_own_order(
    backend_kind: BackendKind, info: Info, event: Event
) -> None:
    writers = [backend_kind.client() for _ in range(4)]
    writers[0].write([CreateSession(info("busy"))])
    batches, per_batch = 25, 4
    made: dict[int, list[str]] = {}

    def write(index: int) -> None:
        ids = made.setdefault(index, [])
        for b in range(batches):
            batch = tuple(event("busy", 1, content=f"w{index} b{b} e{i}") for i in range(per_batch))
            writers[index].write([AppendEvents("busy", batch)])
            ids.extend(e.id for e in batch)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = backend_kind.client().load_events("busy")
    assert [e.seq for e in stored] == list(range(1, 4 * batches * per_batch + 1))
    position = {e.id: i for i, e in enumerate(stored)}
    assert len(position) == len(stored)  # nothing twice
    for ids in made.values():
        places = [position[i] for i in ids]  # nothing lost (KeyError otherwise)
        assert places == sorted(places)  # each writer's order kept
        for b in range(batches):  # and each of its appends contiguous
            run = places[b * per_batch : (b + 1) * per_batch]
            assert run == list(range(run[0], run[0] + per_batch))
    assert backend_kind.client().load_info("busy").totals.events == len(stored)


def test_every_event_is_storable_text_is_repaired_and_flagged(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write([CreateSession(info("s1", system_prompt="prompt \udc00"))])
    bad = event(
        "s1",
        1,
        content="lone \ud800 and a pair \ud83d\ude00",
        metadata={"k\udfff": ["\ud800"]},
        tool_calls=(ToolCall(id="c1", name="search", arguments='{"q": "\ud800"}'),),
    )
    good = event("s1", 2)
    receipt = backend.write([AppendEvents("s1", (bad, good))])
    assert receipt.appended == 2
    stored = backend.load_events("s1")
    assert [e.id for e in stored] == [bad.id, good.id]
    if stored[0].repaired:  # a backend that serialises: repaired, flagged, reported
        assert stored[0].content == "lone \ufffd and a pair \U0001f600"
        assert stored[0].tool_calls[0].arguments == '{"q": "\ufffd"}'
        assert stored[0].metadata == {"k\ufffd": ["\ufffd"]}
        assert set(stored[0].repaired) == {
            "content",
            "metadata.<key>",
            "metadata.k\ufffd[0]",
            "tool_calls[0].arguments",
        }
        assert [(r.event_id, set(r.fields)) for r in receipt.repaired if r.event_id] == [
            (bad.id, set(stored[0].repaired))
        ]
        assert backend.load_info("s1").system_prompt == "prompt \ufffd"
    else:  # a backend that keeps objects holds any text as it was given
        assert stored[0] == bad
    assert stored[1] == good


def test_a_failing_op_applies_nothing_of_its_batch(backend: SessionStore, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1"))])
    with pytest.raises(SessionNotFound):
        backend.write(
            [
                AppendEvents("s1", (event("s1", 1),)),
                CreateSession(info("s2")),
                AppendEvents("missing", (event("missing", 1),)),
            ]
        )
    assert backend.load_events("s1") == [] and not backend.exists("s2")


def test_read_since_is_one_consistent_snapshot(backend: SessionStore, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", tuple(event("s1", i) for i in (1, 2, 3)))])
    header, events = backend.read_since("s1", 1)
    assert header.last_seq == 3 and [e.seq for e in events] == [2, 3] and header.totals.events == 3
    header, events = backend.read_since("s1", 3)
    assert header.last_seq == 3 and events == []
    with pytest.raises(SessionNotFound):
        backend.read_since("nope", 0)
    with pytest.raises(SessionNotFound):
        backend.last_seq("nope")


def test_an_open_or_create_keeps_the_session_that_exists(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write([CreateSession(info("s1", system_prompt="first")), AppendEvents("s1", (event("s1", 1),))])
    backend.write([CreateSession(info("s1", system_prompt="second"), exclusive=False)])
    loaded = backend.load_info("s1")
    assert loaded.system_prompt == "first" and loaded.last_seq == 1
    backend.write([CreateSession(info("s2"), exclusive=False), DeleteSession("gone", must_exist=False)])
    assert backend.exists("s2")


def test_creating_a_taken_id_raises_already_exists(backend: SessionStore, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1"))])
    with pytest.raises(SessionAlreadyExists) as caught:
        backend.write([CreateSession(info("s1"))])
    assert caught.value.session_id == "s1"


@pytest.mark.parametrize(
    "operation",
    [
        lambda b, info, event: b.load("nope"),
        lambda b, info, event: b.load_info("nope"),
        lambda b, info, event: b.load_events("nope"),
        lambda b, info, event: b.load_pages("nope"),
        lambda b, info, event: b.write([AppendEvents("nope", (event("nope", 1),))]),
        lambda b, info, event: b.write([SaveHeader(info("nope"))]),
        lambda b, info, event: b.write([PutPages("nope", {"p": "{}"})]),
        lambda b, info, event: b.write([DeleteSession("nope")]),
    ],
    ids=["load", "load_info", "load_events", "load_pages", "append", "save_header", "put_pages", "delete"],
)
def test_an_unknown_session_id_raises_session_not_found(
    backend: SessionStore, operation: object, info: Info, event: Event
) -> None:
    with pytest.raises(SessionNotFound) as caught:
        operation(backend, info, event)  # type: ignore[operator]
    assert caught.value.session_id == "nope"


def test_saving_a_header_replaces_it_and_keeps_totals(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", (event("s1", 1),))])
    run = SessionRun(id="r1", status=RunStatus.COMPLETED)
    backend.write([SaveHeader(info("s1", metadata={"v": 2}, system_prompt="new", runs=[run]))])
    loaded = backend.load_info("s1")
    assert (loaded.metadata, loaded.system_prompt, loaded.runs) == ({"v": 2}, "new", [run])
    assert loaded.totals.events == 1 and loaded.last_seq == 1


def test_list_is_newest_first_filters_by_parent_and_limits(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write(
        [
            CreateSession(info("root", minutes=0)),
            CreateSession(info("a", minutes=1, parent_id="root")),
            CreateSession(info("b", minutes=2, parent_id="root")),
            CreateSession(info("other", minutes=3)),
        ]
    )
    assert [i.id for i in backend.list_sessions()] == ["other", "b", "a", "root"]
    assert [i.id for i in backend.list_sessions(parent_id="root")] == ["b", "a"]
    assert [i.id for i in backend.list_sessions(limit=2)] == ["other", "b"]
    assert sorted(backend.load("root").children) == ["a", "b"]


def test_versions_are_the_headers_and_move_with_every_change(
    backend: SessionStore, info: Info, event: Event
) -> None:
    def headers() -> dict[str, SessionVersion]:
        return {i.id: SessionVersion.of(i) for i in backend.list_sessions()}

    assert backend.session_versions() == {}
    backend.write([CreateSession(info("a")), CreateSession(info("b", minutes=1)), CreateSession(info("c"))])
    backend.write([AppendEvents("a", (event("a", 1), event("a", 2)))])
    before = backend.session_versions()
    assert before == headers() and before["a"].last_seq == 2 and before["b"].last_seq == 0

    backend.write([AppendEvents("b", (event("b", 1),))])  # an append
    backend.write([SaveHeader(info("c", minutes=5, metadata={"v": 2}))])  # a header saved later
    backend.write([DeleteSession("a"), CreateSession(info("a", minutes=9))])  # made again
    after = backend.session_versions()
    assert after == headers()
    assert {sid for sid in after if after[sid] != before[sid]} == {"a", "b", "c"}
    assert after["b"].last_seq == 1 and after["a"].last_seq == 0
    backend.write([DeleteSession("b")])
    assert set(backend.session_versions()) == {"a", "c"}


def test_pages_are_upserted_and_loaded_per_session(backend: SessionStore, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1")), CreateSession(info("s2"))])
    backend.write([PutPages("s1", {"p1": '{"v": 1}', "p2": '{"v": 2}'})])
    backend.write([PutPages("s1", {"p1": '{"v": 3}'})])
    assert backend.load_pages("s1") == {"p1": '{"v": 3}', "p2": '{"v": 2}'}
    assert backend.load_pages("s2") == {}


def test_delete_removes_the_session_its_events_and_pages(
    backend: SessionStore, info: Info, event: Event
) -> None:
    backend.write(
        [
            CreateSession(info("root")),
            CreateSession(info("kid", minutes=1, parent_id="root")),
            AppendEvents("kid", (event("kid", 1),)),
            PutPages("kid", {"p": "{}"}),
        ]
    )
    backend.write([DeleteSession("kid")])
    assert not backend.exists("kid")
    with pytest.raises(SessionNotFound):
        backend.load("kid")
    assert [i.id for i in backend.list_sessions()] == ["root"]
    assert backend.load("root").children == []
    # The id is free again and starts from an empty log.
    backend.write([CreateSession(info("kid")), AppendEvents("kid", (event("kid", 1),))])
    assert [e.seq for e in backend.load_events("kid")] == [1]


async def test_reads_through_the_store_see_every_write_submitted_before_them(
    store: Store, info: Info, event: Event
) -> None:
    store.submit([CreateSession(info("s1"))])
    for seq in range(1, 51):
        store.submit([AppendEvents("s1", (event("s1", seq),))])
    # No flush: the read is ordered after the queued writes.
    assert len(await store.aload_events("s1")) == 50
    assert (await store.aload_info("s1")).last_seq == 50
    assert store.load("s1").last_seq == 50
    await store.aflush()
    assert store.stats.pending_ops == 0 and store.stats.written_ops == store.stats.submitted_ops == 51


async def test_store_reads_cover_the_whole_backend_api(store: Store, info: Info, event: Event) -> None:
    store.submit([CreateSession(info("p")), CreateSession(info("c", minutes=1, parent_id="p"))])
    store.submit([PutPages("c", {"x": "1"})])
    assert await store.aexists("c") and store.exists("p") and not await store.aexists("zz")
    assert [i.id for i in await store.alist_sessions(parent_id="p")] == ["c"]
    assert [i.id for i in store.list_sessions(limit=1)] == ["c"]
    assert await store.aload_pages("c") == {"x": "1"}
    assert (await store.aload("p")).children == ["c"]
    with pytest.raises(SessionNotFound):
        await store.aload("zz")


def test_usage_source_survives_storage(backend: SessionStore, info: Info, event: Event) -> None:
    estimated = TokenUsage(input_tokens=3, output_tokens=4, source=TokenSource.ESTIMATE)
    backend.write(
        [
            CreateSession(info("s1")),
            AppendEvents(
                "s1", (event("s1", 1, source=EventSource.LLM, role=Role.ASSISTANT, usage=estimated),)
            ),
        ]
    )
    assert backend.load_events("s1")[0].usage == estimated
    assert backend.load_info("s1").totals.usage.source is TokenSource.ESTIMATE
