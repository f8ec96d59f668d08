"""The storage contract, run unchanged against the memory, SQLite and Redis backends."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.errors import SessionAlreadyExists, SessionNotFound, StorageError
from sessionware.core.session.enums import EventSource, EventType, Role, RunStatus
from sessionware.core.session.models import ErrorInfo, SessionEvent, SessionInfo, SessionRun, ToolCall
from sessionware.core.store import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    Store,
    StoreBackend,
)

Info = Callable[..., SessionInfo]
Event = Callable[..., SessionEvent]


def test_backend_satisfies_the_protocol(backend: StoreBackend, info: Info, event: Event) -> None:
    assert isinstance(backend, StoreBackend)
    assert backend.kind in ("memory", "sqlite", "redis", "postgresql")
    assert backend.location


def test_created_session_loads_with_its_header_and_no_events(
    backend: StoreBackend, info: Info, event: Event
) -> None:
    backend.write(
        [CreateSession(info("s1", metadata={"user": "ada"}, system_prompt="Be brief.", parent_id=None))]
    )
    loaded = backend.load("s1")
    assert (loaded.id, loaded.metadata, loaded.system_prompt) == ("s1", {"user": "ada"}, "Be brief.")
    assert loaded.events == [] and loaded.children == [] and loaded.last_seq == 0
    assert backend.exists("s1") and not backend.exists("s2")


def test_every_event_field_survives_a_round_trip(backend: StoreBackend, info: Info, event: Event) -> None:
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


def test_load_events_after_a_sequence_number(backend: StoreBackend, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", tuple(event("s1", i) for i in (1, 2, 3)))])
    assert [e.seq for e in backend.load_events("s1", after_seq=1)] == [2, 3]
    assert backend.load_events("s1", after_seq=3) == []


def test_totals_and_last_seq_are_folded_from_appends(backend: StoreBackend, info: Info, event: Event) -> None:
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


def test_an_append_that_skips_a_sequence_number_is_refused_and_changes_nothing(
    backend: StoreBackend, info: Info, event: Event
) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", (event("s1", 1),))])
    with pytest.raises(StorageError, match="expects seq 2, got 3") as caught:
        backend.write([AppendEvents("s1", (event("s1", 3),))])
    assert caught.value.location == backend.location
    assert [e.seq for e in backend.load_events("s1")] == [1]
    assert backend.load_info("s1").last_seq == 1


def test_creating_a_taken_id_raises_already_exists(backend: StoreBackend, info: Info, event: Event) -> None:
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
    backend: StoreBackend, operation: object, info: Info, event: Event
) -> None:
    with pytest.raises(SessionNotFound) as caught:
        operation(backend, info, event)  # type: ignore[operator]
    assert caught.value.session_id == "nope"


def test_saving_a_header_replaces_it_and_keeps_totals(
    backend: StoreBackend, info: Info, event: Event
) -> None:
    backend.write([CreateSession(info("s1")), AppendEvents("s1", (event("s1", 1),))])
    run = SessionRun(id="r1", status=RunStatus.COMPLETED)
    backend.write([SaveHeader(info("s1", metadata={"v": 2}, system_prompt="new", runs=[run]))])
    loaded = backend.load_info("s1")
    assert (loaded.metadata, loaded.system_prompt, loaded.runs) == ({"v": 2}, "new", [run])
    assert loaded.totals.events == 1 and loaded.last_seq == 1


def test_list_is_newest_first_filters_by_parent_and_limits(
    backend: StoreBackend, info: Info, event: Event
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


def test_pages_are_upserted_and_loaded_per_session(backend: StoreBackend, info: Info, event: Event) -> None:
    backend.write([CreateSession(info("s1")), CreateSession(info("s2"))])
    backend.write([PutPages("s1", {"p1": '{"v": 1}', "p2": '{"v": 2}'})])
    backend.write([PutPages("s1", {"p1": '{"v": 3}'})])
    assert backend.load_pages("s1") == {"p1": '{"v": 3}', "p2": '{"v": 2}'}
    assert backend.load_pages("s2") == {}


def test_delete_removes_the_session_its_events_and_pages(
    backend: StoreBackend, info: Info, event: Event
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
    assert len(await store.load_events("s1")) == 50
    assert (await store.load_info("s1")).last_seq == 50
    assert store.load_sync("s1").last_seq == 50
    await store.flush()
    assert store.stats.pending_ops == 0 and store.stats.written_ops == store.stats.submitted_ops == 51


async def test_store_reads_cover_the_whole_backend_api(store: Store, info: Info, event: Event) -> None:
    store.submit([CreateSession(info("p")), CreateSession(info("c", minutes=1, parent_id="p"))])
    store.submit([PutPages("c", {"x": "1"})])
    assert await store.exists("c") and store.exists_sync("p") and not await store.exists("zz")
    assert [i.id for i in await store.list_sessions(parent_id="p")] == ["c"]
    assert [i.id for i in store.list_sessions_sync(limit=1)] == ["c"]
    assert await store.load_pages("c") == {"x": "1"}
    assert (await store.load("p")).children == ["c"]
    with pytest.raises(SessionNotFound):
        await store.load("zz")


def test_usage_source_survives_storage(backend: StoreBackend, info: Info, event: Event) -> None:
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
