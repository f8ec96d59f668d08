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
