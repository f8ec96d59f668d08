"""Outages lose nothing: a session opened while Redis is down, ``redis-server`` killed
(``kill -9``) mid-batch with and without its data, a writer killed mid-batch. Each time
the events the store acknowledged are all there, none twice, and the writers' figures
say exactly what happened (a replay is not a drop)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from many_writers_support import Writers, check_log, stored, texts_by_writer
from redis_process import RedisProcess

import sessionware
from sessionware import SessionManager, StorageError
from sessionware.adapters.api import settle
from sessionware.core.store import Store
from sessionware.core.store.redis import RedisBackend

# Writer processes, Redis servers killed and restarted.
pytestmark = [pytest.mark.redis, pytest.mark.slow]


def wait_until_stored(store: Store, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.flush(timeout=5)
            return
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def chat_reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        },
    )


async def test_a_conversation_started_while_redis_is_down_is_stored_when_it_comes_back(
    tmp_path: Path,
) -> None:
    server = RedisProcess(tmp_path, persistent=False)  # not started yet: the store is down
    store = Store(RedisBackend(server.url))
    try:
        sm = SessionManager("during-outage", store=store, system_prompt="Be brief.")
        await sm.user_says("hello?")  # neither raises into the app
        await sm.ai_responds("hi", model="gpt-4o-mini", usage={"input_tokens": 5, "output_tokens": 1})
        with pytest.raises(StorageError) as caught:
            await sm.flush()
        assert caught.value.retryable
        server.start()
        wait_until_stored(store)
        loaded = store.load("during-outage")
        assert [e.text for e in loaded.events] == ["hello?", "hi"] and loaded.system_prompt == "Be brief."
        assert store.stats.dropped_events == 0 and not store.stats.lost_sessions
        assert [e.text for e in await sm.get_events()] == ["hello?", "hi"]
    finally:
        store.close()
        server.stop()


def test_a_wrapped_call_made_while_redis_is_down_is_stored_when_it_comes_back(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, persistent=False)
    store = Store(RedisBackend(server.url))
    client = sessionware.wrap(
        openai.OpenAI(api_key="sk-test", http_client=httpx.Client(transport=httpx.MockTransport(chat_reply))),
        store=store,
    )
    try:
        question = [{"role": "user", "content": "a new conversation"}]
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=question)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "hello"  # the app's call went through
        settle()
        server.start()
        wait_until_stored(store)
        [info] = store.list_sessions()
        assert [e.text for e in store.load(info.id).events] == ["a new conversation", "hello"]
        assert store.stats.dropped_events == 0
    finally:
        sessionware.unwrap(client)
        store.close()
        server.stop()


@pytest.mark.parametrize("persistent", [True, False], ids=["data-kept", "restarted-empty"])
def test_redis_killed_mid_batch_loses_and_duplicates_nothing(tmp_path: Path, persistent: bool) -> None:
    """Two writers of one session when ``redis-server`` is killed: ``a`` in the middle of its
    appends, ``b`` done with its own but still holding the session (an idle worker). Data kept:
    neither notices more than an outage. Restarted empty: each writes again what it holds,
    ``a`` when its next write is refused, ``b`` when it flushes or reads (it never writes
    again), so every event is back, once, each writer's in its own order."""
    server = RedisProcess(tmp_path, persistent=persistent)
    server.start()
    session = f"kill-{uuid.uuid4().hex[:8]}"
    hold = tmp_path / "hold"
    writers = Writers(tmp_path)
    try:
        for name, count in (("a", 1500), ("b", 300)):
            writers.writer(
                "manager", server.url, session, name, count, "--batch", "100", "--acks", "--hold", str(hold)
            )
        writers.release()
        for name, line in (("b", "holding"), ("a", "acked 300")):
            out = writers.procs[name].stdout
            assert out is not None
            while not out.readline().startswith(line):
                pass
        server.kill9()
        time.sleep(0.5)
        server.start()  # same socket: its data back from the synced log, or none at all
        hold.write_text("")  # both processes still held the session until now
        reports = writers.results()
        events = stored(server.url, session)
    finally:
        writers.kill_all()
        server.stop()
    check_log(events)
    assert texts_by_writer(events) == {"a": list(range(1500)), "b": list(range(300))}
    for report in reports.values():
        assert report["dropped_events"] == 0 and report["lost_sessions"] == []
        assert report["resets"] == (0 if persistent else 1)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_writer_killed_mid_batch_leaves_whole_appends_and_the_others_lose_nothing(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}" if kind == "sqlite" else str(request.getfixturevalue("redis_url"))
    session = f"victim-{uuid.uuid4().hex[:8]}"
    writers = Writers(tmp_path)
    try:
        for name in ("a", "b", "c"):
            writers.writer("manager", url, session, name, 2000, "--batch", "100", "--acks")
        writers.release()
        victim = writers.procs["b"]
        assert victim.stdout is not None
        acked = 0
        while acked < 500:
            acked = int(victim.stdout.readline().split()[1])
        victim.kill()  # SIGKILL: no exit handler, no flush
        victim.communicate()
        del writers.procs["b"]
        reports = writers.results()
    finally:
        writers.kill_all()
    events = stored(url, session)
    check_log(events)
    found = texts_by_writer(events)
    assert found["a"] == found["c"] == list(range(2000))
    # What b's store acknowledged is there; whatever else of b's landed is whole and in order.
    assert found["b"] == list(range(len(found["b"]))) and len(found["b"]) >= acked
    assert all(r["dropped_events"] == 0 and r["duplicates"] == 0 for r in reports.values())


async def test_a_session_manager_reads_what_other_processes_appended(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'follow.db'}"
    sm = SessionManager("followed", store=url)
    await sm.user_says("mine first")
    await sm.flush()
    writers = Writers(tmp_path)
    try:
        writers.writer("manager", url, "followed", "other", 5)
        writers.release()
        writers.results()
    finally:
        writers.kill_all()
    await sm.user_says("mine after")  # numbered 2 here; the store makes it 7
    await sm.flush()
    texts = [e.text for e in await sm.get_events()]
    assert texts == ["mine first", *(f"other {i}" for i in range(5)), "mine after"]
    assert [e.seq for e in await sm.get_events()] == list(range(1, 8))
