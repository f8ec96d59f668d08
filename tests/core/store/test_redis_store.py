"""Redis as sessions shared between processes: what one client writes, another reads."""

from __future__ import annotations

import uuid

import pytest

from sessionware import SessionManager, StorageError
from sessionware.core.store import Store
from sessionware.core.store.redis import RedisBackend

pytestmark = pytest.mark.redis


def client_pair(redis_url: str) -> tuple[Store, Store]:
    """Two stores on one server and key prefix, as two processes would have."""
    prefix = f"pair-{uuid.uuid4().hex[:12]}"
    return Store(RedisBackend(redis_url, prefix=prefix)), Store(RedisBackend(redis_url, prefix=prefix))


async def test_sync_durability_is_visible_to_another_client_at_once(redis_url: str) -> None:
    writer, reader = client_pair(redis_url)
    sm = SessionManager(store=writer, durability="sync", system_prompt="Be brief.")
    await sm.user_says("hello")
    await sm.ai_responds("hi", model="gpt-4o-mini", usage={"input_tokens": 9, "output_tokens": 1})
    loaded = await reader.aload(sm.session_id)
    assert [e.text for e in loaded.events] == ["hello", "hi"]
    assert loaded.system_prompt == "Be brief." and loaded.totals.usage.input_tokens == 9
    writer.close()
    reader.close()


async def test_another_client_continues_a_session_where_the_first_left_it(redis_url: str) -> None:
    first, second = client_pair(redis_url)
    a = await SessionManager.create("shared", store=first)
    await a.user_says("one")
    await a.flush()
    b = await SessionManager.load("shared", store=second)
    await b.ai_responds("two")
    await b.flush()
    assert [e.seq for e in (await first.aload("shared")).events] == [1, 2]
    first.close()
    second.close()


async def test_two_clients_appending_with_the_same_view_both_land_in_order(redis_url: str) -> None:
    first, second = client_pair(redis_url)
    a = await SessionManager.create("race", store=first)
    await a.user_says("base")
    await a.flush()
    b = await SessionManager.load("race", store=second)
    await a.user_says("from a")  # seq 2 in a's view
    await a.flush()
    await b.user_says("from b")  # also seq 2 in b's view: the store numbers it 3
    await b.flush()
    stored = (await first.aload("race")).events
    assert [(e.seq, e.text) for e in stored] == [(1, "base"), (2, "from a"), (3, "from b")]
    assert [e.text for e in await b.get_events()] == ["base", "from a", "from b"]
    assert first.stats.dropped_ops == second.stats.dropped_ops == 0
    first.close()
    second.close()


async def test_an_unreachable_server_is_a_storage_error_naming_the_url() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    store = Store(RedisBackend(url))
    with pytest.raises(StorageError) as caught:
        await SessionManager.load("any", store=store)
    assert caught.value.location == url and caught.value.retryable
    store.close()


def test_a_redis_emptied_under_a_live_process_gets_back_what_it_holds_and_names_the_rest(
    redis_url: str,
) -> None:
    import gc

    import redis

    from sessionware.adapters.api import health
    from sessionware.core.session.enums import EventSource, EventType, Role
    from sessionware.core.session.registry import registry_for

    prefix = f"reset-{uuid.uuid4().hex[:12]}"
    store = Store(RedisBackend(redis_url, prefix=prefix))
    registry = registry_for(store)
    held, gone = registry.open("held"), registry.open("gone")
    for state, text in ((held, "kept 1"), (gone, "not held any more")):
        state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content=text)
    store.flush()
    registry.forget("gone")
    del gone, state
    gc.collect()
    server = redis.Redis.from_url(redis_url)
    server.delete(*server.keys(f"{prefix}:*"))  # the server lost everything, as after a restart without data
    server.close()
    held.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="kept 2")
    store.flush()  # no error: the reset was handled before anything was written
    assert [e.text for e in store.load("held").events] == ["kept 1", "kept 2"]
    stats = store.stats
    assert (stats.resets, stats.restored_sessions, stats.lost_sessions) == (1, 1, {"gone"})
    assert stats.dropped_events == 0 and "gone" in health().lost_sessions
    store.close()


def empty_the_server(redis_url: str, prefix: str) -> None:
    """What a restart without data does to one store's keys."""
    import redis

    server = redis.Redis.from_url(redis_url)
    keys = server.keys(f"{prefix}:*")
    if keys:
        server.delete(*keys)
    server.close()


async def test_a_process_with_nothing_left_to_write_writes_again_what_it_holds_at_its_flush(
    redis_url: str,
) -> None:
    prefix = f"idle-{uuid.uuid4().hex[:12]}"
    store = Store(RedisBackend(redis_url, prefix=prefix))
    sm = SessionManager("idle", store=store, system_prompt="Be brief.")
    await sm.user_says("one")
    await sm.ai_responds("two")
    await sm.flush()
    empty_the_server(redis_url, prefix)
    await sm.flush()  # nothing to write: the flush asks whether the data is still there
    other = Store(RedisBackend(redis_url, prefix=prefix))
    loaded = other.load("idle")
    assert [e.text for e in loaded.events] == ["one", "two"] and loaded.system_prompt == "Be brief."
    assert (store.stats.resets, store.stats.restored_sessions, store.stats.dropped_events) == (1, 1, 0)
    await sm.flush()  # once: the data is there again
    assert store.stats.resets == 1
    store.close()
    other.close()


def test_a_store_closed_after_its_data_vanished_writes_again_what_its_process_holds(redis_url: str) -> None:
    from sessionware.core.session.enums import EventSource, EventType, Role
    from sessionware.core.session.registry import registry_for

    prefix = f"closing-{uuid.uuid4().hex[:12]}"
    store = Store(RedisBackend(redis_url, prefix=prefix))
    state = registry_for(store).open("closing")
    state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="before")
    store.flush()
    empty_the_server(redis_url, prefix)
    store.close()
    other = Store(RedisBackend(redis_url, prefix=prefix))
    assert [e.text for e in other.load("closing").events] == ["before"]
    assert store.stats.resets == 1
    other.close()


async def test_a_reading_process_finds_the_vanished_data_and_writes_again_what_it_holds(
    redis_url: str,
) -> None:
    """The only process left holds a session another one wrote: its first read after the
    data vanished puts it back, and it reads what it put back."""
    prefix = f"reader-{uuid.uuid4().hex[:12]}"
    gone, kept = (Store(RedisBackend(redis_url, prefix=prefix)) for _ in range(2))
    writer = SessionManager("read", store=gone)
    await writer.user_says("from the writer that left")
    await writer.flush()
    gone.close()
    reader = await SessionManager.load("read", store=kept)  # reads, never writes
    empty_the_server(redis_url, prefix)
    assert [e.text for e in await reader.get_events()] == ["from the writer that left"]
    check = Store(RedisBackend(redis_url, prefix=prefix))
    assert [e.text for e in check.load("read").events] == ["from the writer that left"]
    assert (kept.stats.resets, kept.stats.restored_sessions) == (1, 1)
    await reader.user_says("and the reader's own")
    await reader.flush()
    assert [e.text for e in check.load("read").events] == [
        "from the writer that left",
        "and the reader's own",
    ]
    assert kept.stats.resets == 1 and kept.stats.dropped_events == 0
    check.close()
    kept.close()
