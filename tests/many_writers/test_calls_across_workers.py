"""One conversation whose calls land on different workers (a load balancer in front of
web workers), each worker with its own wrapped client and its own ``Store`` on one
SQLite file, as separate processes have. The app re-sends its whole history each call.

Every worker compares the request with the session as the store has it, so the
conversation is recorded once, in order, without branches or repeated messages; and a
managed client builds what it sends from the merged log, whichever worker recorded
each turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import sessionware
from sessionware import ContextPolicy
from sessionware.adapters.api import settle
from sessionware.core.session.enums import EventType
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend


class Api:
    """A chat completions endpoint answering ``re: <last message>``; keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.sent.append(body)
        last = body["messages"][-1]["content"]
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{len(self.sent)}",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"re: {last}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
            },
        )


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Store]]:
    stores = [Store(SQLiteBackend(tmp_path / "shared.db")) for _ in range(3)]
    yield stores
    settle()
    for store in stores:
        store.close()


def client(store: Store, api: Api, **options: Any) -> Any:
    http = httpx.Client(transport=httpx.MockTransport(api))
    return sessionware.wrap(openai.OpenAI(api_key="sk-test", http_client=http), store=store, **options)


def ask(worker: Any, store: Store, history: list[dict[str, str]], question: str) -> None:
    history.append({"role": "user", "content": question})
    reply = worker.chat.completions.create(model="gpt-4o-mini", messages=history)
    history.append({"role": "assistant", "content": reply.choices[0].message.content})
    settle()  # the worker's recorder has written it...
    store.flush()  # ...and its store committed it before the next request arrives elsewhere


def test_a_conversation_spread_over_workers_is_recorded_once(workers: list[Store]) -> None:
    api = Api()
    clients = [client(store, api, session_id="conv") for store in workers]
    history: list[dict[str, str]] = []
    for turn in range(6):
        ask(clients[turn % 3], workers[turn % 3], history, f"question {turn}")
    events = workers[0].load("conv").events
    assert [e.type for e in events] == [EventType.MESSAGE] * 12  # no branch, nothing twice
    assert [e.text for e in events] == [m["content"] for m in history]
    assert [e.seq for e in events] == list(range(1, 13))
    assert workers[0].load_info("conv").totals.llm_calls == 6
    for worker in clients:
        sessionware.unwrap(worker)


def test_managed_workers_build_from_the_merged_log(workers: list[Store]) -> None:
    api = Api()
    policy = ContextPolicy(budget=8000)
    clients = [
        client(workers[0], api, session_id="conv"),
        client(workers[1], api, session_id="conv", mode="managed", context=policy),
        client(workers[2], api, session_id="conv", mode="managed", context=policy),
    ]
    history: list[dict[str, str]] = []
    for turn in range(6):
        ask(clients[turn % 3], workers[turn % 3], history, f"question {turn}")
    events = workers[0].load("conv").events
    assert [e.type for e in events] == [EventType.MESSAGE] * 12  # no branch, nothing twice
    assert [e.text for e in events] == [m["content"] for m in history]
    # Each managed request carried every earlier turn once, whichever worker recorded it.
    for turn in (1, 2, 4, 5):
        sent = [m.get("content") for m in api.sent[turn]["messages"]]
        for earlier in history[: 2 * turn + 1]:
            assert sent.count(earlier["content"]) == 1, (turn, earlier)
    # The managed worker's live session is the merged log (what its context is built from).
    live = registry_for(workers[2]).cached("conv")
    assert live is not None and [e.text for e in live.events] == [m["content"] for m in history]
    for worker in clients:
        sessionware.unwrap(worker)
