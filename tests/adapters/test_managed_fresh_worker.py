"""A worker process meeting a long stored session builds exactly the context a warm
process builds: on SQLite and Redis, right after the session was stored, and after
another process made it grow past the memory checkpoint.

Each "process" is a store of its own on the same file or server (its own registry,
session state, memory, tool ledger and token counts), fed by a managed ``AsyncOpenAI``
app that re-sends its whole history, as a web server's workers are. The reference is a
replay of the whole log (no checkpoint read).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import sessionware
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.memory import ContextPolicy, build, checkpoint
from sessionware.core.memory.enums import Provider
from sessionware.core.memory.vm import CHECKPOINT_PAGE, VirtualMemory
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store
from sessionware.core.store.redis import RedisBackend
from sessionware.core.store.sqlite import SQLiteBackend

MODEL = "gpt-4o-mini"
SYSTEM = "You are a careful assistant."
BUDGET = 1500
POLICY = ContextPolicy(budget=BUDGET)


def history(first: int, turns: int) -> list[dict[str, Any]]:
    """``turns`` turns of an app's history, every seventh with a call of the app's own tool."""
    out: list[dict[str, Any]] = []
    for i in range(first, first + turns):
        out.append({"role": "user", "content": f"Turn {i}: how does item {i} relate to project P-{i % 13}?"})
        if i % 7 == 2:
            call = {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "lookup", "arguments": json.dumps({"item": i})},
            }
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            out.append({"role": "tool", "tool_call_id": f"call_{i}", "content": f"item {i}: owner O-{i % 5}"})
        out.append({"role": "assistant", "content": f"Item {i} belongs to P-{i % 13}, owned by O-{i % 5}."})
    return out


def _own_store(url: str) -> Store:
    """A store of its own on ``url`` (``open_store`` shares one per URL within a process)."""
    if url.startswith("sqlite:///"):
        return Store(SQLiteBackend(url.removeprefix("sqlite:///")))
    return Store(RedisBackend(url))


class Worker:
    """One process: its own store on ``url`` and a managed client of the session."""

    def __init__(self, url: str, session_id: str) -> None:
        self.store = _own_store(url)
        self.session_id = session_id
        self.api = FakeOpenAI(lambda body: Reply(text="Noted."))
        client = openai.AsyncOpenAI(
            api_key="test", max_retries=0, http_client=httpx.AsyncClient(transport=self.api.transport())
        )
        self.client = sessionware.wrap(
            client, store=self.store, session_id=session_id, mode="managed", context=POLICY
        )

    async def call(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The app's call with ``messages``; the answer is appended to them. The wire body."""
        reply = await self.client.chat.completions.create(model=MODEL, messages=messages)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
        sent: dict[str, Any] = self.api.requests[-1]
        return sent

    def built(self, question: str) -> str:
        """The context this process builds for ``question`` (nothing recorded)."""
        state = registry_for(self.store).open(self.session_id)
        state.follow()
        ctx = build(
            state,
            model=MODEL,
            budget=BUDGET,
            incoming_messages=[{"role": "user", "content": question}],
            provider=Provider.OPENAI,
            policy=POLICY,
        )
        return json.dumps(ctx.messages, sort_keys=True, default=str)

    def restored(self) -> int:
        """Events the memory of this process took from a checkpoint (0: it replayed)."""
        vm = VirtualMemory.of(registry_for(self.store).open(self.session_id))
        assert vm is not None
        return vm.marks.covered

    def close(self) -> None:
        self.store.flush()
        self.store.close()


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workers.db'}"
    else:
        yield request.getfixturevalue("redis_url")


def _replayed(url: str, session_id: str, question: str, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "MIN_EVENTS", 10**9)
        reader = Worker(url, session_id)
        text = reader.built(question)
        assert reader.restored() == 0
        reader.store.close()
    return text


async def test_a_fresh_worker_builds_the_warm_context_before_and_after_the_log_grows(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = f"workers-{uuid.uuid4().hex[:8]}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, *history(0, 150)]
    warm = Worker(url, session_id)
    for i in range(150, 153):
        messages.append({"role": "user", "content": f"Turn {i}: and item {i}?"})
        await warm.call(messages)
    warm.store.flush()
    assert CHECKPOINT_PAGE in warm.store.load_pages(session_id)

    question = "Which owner had item 12 again?"
    fresh = Worker(url, session_id)
    assert fresh.built(question) == warm.built(question) == _replayed(url, session_id, question, monkeypatch)
    assert fresh.restored() > 0

    # Another process makes the session grow: past the checkpoint the others read, and
    # with events after its own last checkpoint.
    other = Worker(url, session_id)
    messages.extend(history(153, 120))
    messages.append({"role": "user", "content": "Turn 273: and item 273?"})
    await other.call(messages)
    messages.extend(history(274, 5))
    messages.append({"role": "user", "content": "Turn 279: and item 279?"})
    await other.call(messages)
    other.close()

    question = "What did we say about item 160 and its owner?"
    later = Worker(url, session_id)
    reference = _replayed(url, session_id, question, monkeypatch)
    assert later.built(question) == reference
    assert later.restored() > fresh.restored()
    assert warm.built(question) == reference  # the warm process folds what it had not seen
    assert fresh.built(question) == reference

    for worker in (warm, fresh, later):
        worker.close()
