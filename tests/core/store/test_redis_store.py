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
