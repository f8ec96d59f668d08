"""A proxy fleet on one store: 2 proxy workers, 200 requests of 20 interleaved conversations.

Each conversation resends its whole history every turn and names no session, so each
worker threads it by its opening; its turns land on either worker. Expected, on Redis and
on PostgreSQL: 20 sessions, each holding its 10 turns once, in order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from proxy_support import MASTER_KEY, Proxy

from sessionware.adapters.litellm.fake_upstream import FakeUpstream
from sessionware.core.session.enums import EventType
from sessionware.core.store import Store, open_store

pytestmark = pytest.mark.slow

CONVERSATIONS = 20
TURNS = 10
_WAIT_SECONDS = 120.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ],
)
def fleet_store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        import redis

        url = str(request.getfixturevalue("redis_url")).rsplit("/", 1)[0] + "/8"
        redis.Redis.from_url(url).flushdb()
        return url
    return f"{request.getfixturevalue('postgres_url')}?schema=fleet_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def fleet(upstream: FakeUpstream, fleet_store_url: str) -> Iterator[Proxy]:
    running = Proxy.start(upstream.base_url, store=fleet_store_url, workers=2)
    yield running
    running.stop()


def converse(base_url: str, prompt: str, sent: list[int]) -> None:
    """One conversation of ``TURNS`` turns, each resending the history, on a new connection
    each time (so the proxy's workers share the turns)."""
    history: list[dict[str, Any]] = [{"role": "system", "content": prompt}]
    for turn in range(TURNS):
        history.append({"role": "user", "content": f"turn {turn}"})
        with openai.OpenAI(base_url=f"{base_url}/v1", api_key=MASTER_KEY, max_retries=0) as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=history, extra_headers={"connection": "close"}
            )
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        sent.append(1)


def test_two_workers_record_200_requests_of_20_conversations_exactly(
    fleet: Proxy, fleet_store_url: str
) -> None:
    run = uuid.uuid4().hex[:8]
    prompts = [f"You are agent {run}-{n}." for n in range(CONVERSATIONS)]
    sent: list[int] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for done in [pool.submit(converse, fleet.base_url, p, sent) for p in prompts]:
            done.result()
    assert len(sent) == CONVERSATIONS * TURNS

    expected = []
    for turn in range(TURNS):
        expected += [("user", f"turn {turn}"), ("assistant", f"You said: turn {turn}")]
    store: Store = open_store(fleet_store_url)
    try:
        deadline = time.monotonic() + _WAIT_SECONDS
        while True:
            infos = [i for i in store.backend.list_sessions() if i.system_prompt in prompts]
            by_prompt: dict[str, list[Any]] = {}
            for found in infos:
                events = store.backend.load_events(found.id)
                by_prompt.setdefault(str(found.system_prompt), []).append(
                    [
                        (e.role.value if e.role else "", e.content)
                        for e in events
                        if e.type is EventType.MESSAGE
                    ]
                )
            complete = len(by_prompt) == CONVERSATIONS and all(
                sum(len(m) for m in logs) >= 2 * TURNS for logs in by_prompt.values()
            )
            if complete or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        store.close()
    assert sorted(by_prompt) == sorted(prompts)
    for prompt, logs in by_prompt.items():
        assert len(logs) == 1, f"{prompt}: {len(logs)} sessions"  # one session per conversation
        assert logs[0] == expected, prompt  # every turn once, in order: 0 lost, 0 duplicated
