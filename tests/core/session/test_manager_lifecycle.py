"""Sessions as objects: system prompt, loading and creating by id, hierarchy, listing, runs, delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessionware import (
    Durability,
    EventType,
    RunStatus,
    SessionAlreadyExists,
    SessionManager,
    SessionNotFound,
)
from sessionware.core.store import Store

Reopen = Callable[[Store], Store]


async def test_the_system_prompt_is_set_updated_persisted_and_reloaded(
    any_store: Store, reopen: Reopen
) -> None:
    sm = SessionManager(store=any_store, system_prompt="You are a pirate.")
    assert sm.system_prompt == "You are a pirate."  # known before the session is open
    await sm.user_says("hello")
    await sm.update_system_prompt("You are a lawyer.")
    assert sm.system_prompt == "You are a lawyer."
    assert (await sm.get_messages_for_llm())[0] == {"role": "system", "content": "You are a lawyer."}
    prompt_events = [e for e in await sm.get_events() if e.type is EventType.SYSTEM_PROMPT]
    assert [e.content for e in prompt_events] == ["You are a lawyer."]
    await sm.flush()

    store = reopen(any_store)
    again = await SessionManager.load(sm.session_id, store=store)
    assert again.system_prompt == "You are a lawyer."
    assert (await again.get_messages_for_llm())[0]["content"] == "You are a lawyer."
    assert (await store.aload_info(sm.session_id)).system_prompt == "You are a lawyer."


async def test_opening_an_existing_session_with_another_prompt_changes_it(
    any_store: Store, reopen: Reopen
) -> None:
    first = await SessionManager.create("s", store=any_store, system_prompt="old")
    await first.user_says("q")
    await first.flush()
    store = reopen(any_store)
    second = SessionManager("s", store=store, system_prompt="new")
    await second.user_says("q2")
    assert (await second.get_messages_for_llm())[0]["content"] == "new"
    assert [e.type for e in await second.get_events()].count(EventType.SYSTEM_PROMPT) == 1


async def test_clearing_or_blanking_the_prompt_removes_the_system_message() -> None:
    sm = SessionManager(store="memory://", system_prompt="x")
    await sm.user_says("q")
    await sm.set_system_prompt("   ")
    assert [m["role"] for m in await sm.get_messages_for_llm()] == ["user"]
    await sm.set_system_prompt(None)
    assert sm.system_prompt is None
    assert [m["role"] for m in await sm.get_messages_for_llm()] == ["user"]


async def test_load_requires_the_session_to_exist(any_store: Store) -> None:
    with pytest.raises(SessionNotFound) as caught:
        await SessionManager.load("missing", store=any_store)
    assert caught.value.session_id == "missing" and caught.value.store == any_store.location
    assert not await any_store.aexists("missing")  # no empty session was made up in its place


async def test_create_requires_the_id_to_be_free(any_store: Store, reopen: Reopen) -> None:
    made = await SessionManager.create("taken", store=any_store)
    with pytest.raises(SessionAlreadyExists) as caught:
        await SessionManager.create("taken", store=any_store)
    assert caught.value.session_id == "taken"
    await made.user_says("persisted")
    await made.flush()
    # Also when this process has never seen the session: the store is asked.
    store = reopen(any_store)
    with pytest.raises(SessionAlreadyExists):
        await SessionManager.create("taken", store=store)
    fresh = await SessionManager.create(store=store)
    assert fresh.session_id != "taken" and len(fresh.session_id) == 32


async def test_a_manager_touches_the_store_only_when_first_awaited(any_store: Store) -> None:
    sm = SessionManager("lazy", store=any_store, metadata={"user": "ada"})
    assert not await any_store.aexists("lazy")
    await sm.get_stats()
    await sm.flush()
    assert (await any_store.aload_info("lazy")).metadata == {"user": "ada"}


async def test_an_unknown_id_is_created_and_a_known_one_is_reopened(any_store: Store, reopen: Reopen) -> None:
    sm = SessionManager("chat-42", store=any_store)
    await sm.user_says("one")
    await sm.flush()
    again = SessionManager("chat-42", store=reopen(any_store))
    await again.user_says("two")
    assert [e.seq for e in await again.get_events()] == [1, 2]


async def test_two_managers_of_one_session_share_one_log() -> None:
    store = "memory://"
    a = SessionManager(store=store)
    await a.user_says("from a")
    b = SessionManager(a.session_id, store=a.store)
    await b.user_says("from b")
    await a.ai_responds("to both")
    assert [e.seq for e in await b.get_events()] == [1, 2, 3]


async def test_children_and_ancestors(any_store: Store, reopen: Reopen) -> None:
    root = SessionManager("root", store=any_store, durability="sync")
    await root.user_says("plan")
    child = await root.create_child("child", metadata={"task": "research"})
    second = await root.create_child()
    grandchild = await child.create_child("grandchild")
    assert child.durability is Durability.SYNC and child.default_model == root.default_model
    assert await root.children() == ["child", second.session_id]
    assert await grandchild.ancestors() == ["child", "root"]
    assert await root.ancestors() == []
    with pytest.raises(SessionAlreadyExists):
        await root.create_child("child")
    await root.flush()

    store = reopen(any_store)
    loaded = await store.aload("root")
    assert sorted(loaded.children) == sorted(["child", second.session_id])
    assert (await store.aload_info("grandchild")).parent_id == "child"
    again = await SessionManager.load("grandchild", store=store)
    assert await again.ancestors() == ["child", "root"]


async def test_list_sessions_newest_first_by_parent_and_limit(any_store: Store) -> None:
    parent = await SessionManager.create("p", store=any_store)
    kids = [await parent.create_child(f"k{i}") for i in range(3)]
    await kids[0].user_says("hello")
    await parent.flush()
    listed = await SessionManager.list_sessions(store=any_store)
    assert [i.id for i in listed] == ["k2", "k1", "k0", "p"]
    assert [i.id for i in await SessionManager.list_sessions(store=any_store, parent_id="p", limit=2)] == [
        "k2",
        "k1",
    ]
    k0 = next(i for i in listed if i.id == "k0")
    assert k0.totals.events == 1 and k0.last_seq == 1 and k0.parent_id == "p"


async def test_a_run_is_marked_running_then_completed_and_persisted(any_store: Store, reopen: Reopen) -> None:
    sm = SessionManager(store=any_store)
    async with sm.run(task="summarise") as run:
        assert run.status is RunStatus.RUNNING and run.duration_s is None
        await sm.user_says("work")
    assert run.status is RunStatus.COMPLETED and run.ended_at is not None
    assert run.duration_s is not None and run.duration_s >= 0
    await sm.flush()
    stored = (await reopen(any_store).aload_info(sm.session_id)).runs
    assert [(r.id, r.status, r.metadata) for r in stored] == [
        (run.id, RunStatus.COMPLETED, {"task": "summarise"})
    ]


async def test_a_failing_run_is_marked_failed_and_the_error_propagates() -> None:
    sm = SessionManager(store="memory://")
    with pytest.raises(KeyError):
        async with sm.run() as run:
            raise KeyError("boom")
    assert run.status is RunStatus.FAILED and "boom" in run.metadata["failure_reason"]
    async with sm.run() as second:
        pass
    info = (await sm.store.aload_info(sm.session_id)).runs
    assert [r.status for r in info] == [RunStatus.FAILED, RunStatus.COMPLETED] and info[1].id == second.id


async def test_delete_removes_the_session_from_the_store(any_store: Store, reopen: Reopen) -> None:
    sm = SessionManager("gone", store=any_store)
    await sm.user_says("bye")
    keep = await SessionManager.create("kept", store=any_store)
    await keep.user_says("stay")
    await sm.delete()
    assert not await any_store.aexists("gone")
    with pytest.raises(SessionNotFound):
        await SessionManager.load("gone", store=any_store)
    store = reopen(any_store)
    assert [i.id for i in await SessionManager.list_sessions(store=store)] == ["kept"]
    with pytest.raises(SessionNotFound):
        await store.aload_events("gone")
