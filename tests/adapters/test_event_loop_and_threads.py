"""Sync clients in running loops, no thread per call, async calls never blocked on store I/O.

Complaint class 8 that users reported against other LLM wrappers (section (c) of
``shared/reference/adapter_anchors.md``): each test reproduces the reported situation
against the real SDKs (only HTTP is fake) and shows it does not happen here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from adapter_support import make_openai, n_calls

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Say something"}]


# -- 8. Overhead, event-loop blocking, async compatibility -----------------------------------------


async def test_a_sync_client_works_inside_a_running_event_loop(openai_client: Any, store: Store) -> None:
    # openllmetry#2195: instrumentation calling asyncio.run() crashed apps already in a loop.
    reply = openai_client.chat.completions.create(model=MODEL, messages=QUESTION)

    assert reply.choices[0].message.content == "You said: Say something"
    assert n_calls(store) == 1


def test_calls_start_no_thread(openai_api: FakeOpenAI, tmp_path: Path) -> None:
    store = Store(SQLiteBackend(tmp_path / "s.db"))
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    client.chat.completions.create(model=MODEL, messages=QUESTION)
    store.flush()  # the store's one writer runs from here (it starts with the first write)
    before = threading.active_count()

    for i in range(25):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"q{i}"}])
        list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))

    assert threading.active_count() == before
    store.close()


class SlowDisk(SQLiteBackend):
    """A real SQLite file on a disk that takes its time to read."""

    def load(self, session_id: str) -> Any:
        time.sleep(0.3)
        return super().load(session_id)

    def read_since(self, session_id: str, after_seq: int) -> Any:
        time.sleep(0.3)
        return super().read_since(session_id, after_seq)


async def test_async_calls_never_block_the_event_loop_on_store_io(
    openai_api: FakeOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "slow.db"
    seed_store = Store(SQLiteBackend(path))
    seed = sessionware.wrap(make_openai("OpenAI", openai_api), store=seed_store, session_id="s")
    seed.chat.completions.create(model=MODEL, messages=QUESTION)
    sessionware.unwrap(seed)._client.close()
    seed_store.close()  # one writer per file: the seed's store is done before the next opens it
    store = Store(SlowDisk(path))
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store, session_id="s")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    history = [*QUESTION, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    reply = await client.chat.completions.create(model=MODEL, messages=history)  # captured only
    history += [
        {"role": "assistant", "content": reply.choices[0].message.content},
        {"role": "user", "content": "z"},
    ]
    # A stream opens its session before it is sent, after the call before it: both read
    # the session from disk, off the loop.
    async for _ in await client.chat.completions.create(model=MODEL, messages=history, stream=True):
        pass
    done.set()
    await task

    assert ticks >= 5  # the loop kept running while the session was read from disk
    assert store.load("s").totals.llm_calls == 3
    store.close()
