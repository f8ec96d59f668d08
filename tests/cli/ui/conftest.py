"""A store holding a managed session recorded through the real OpenAI SDK (its HTTP layer
answered by ``FakeOpenAI``), an observe session, and the CLI tests' recorded sessions;
the UI served over it; a headless Chromium."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import sessionware
from sessionware import ContextPolicy
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.cli.ui import UIServer
from sessionware.core.store import open_store

MANAGED = "garden-managed"
OBSERVED = "garden-observed"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "build" / "ui-screenshots"


def _model(body: Any) -> Reply:
    """Answers from what it is sent; recalls with ``search_pages`` when it cannot see the key."""
    messages = body["messages"]
    last = messages[-1]
    sent = json.dumps(messages)
    cached = (len(sent) // 4) // 2  # about half the prompt from the provider's cache
    if last["role"] == "tool":
        found = re.search(r"locker ([A-Z]-\d{3})", last["content"])
        return Reply(
            text=f"The shed key is in locker {found.group(1)}." if found else "Not found.",
            cached_tokens=cached,
        )
    question = str(last.get("content", ""))
    if "shed key" in question and question.endswith("?"):
        asked = any(m["role"] == "tool" for m in messages)
        if not asked and any(t["function"]["name"] == "search_pages" for t in body.get("tools", [])):
            return Reply(tool_calls=[("search_pages", {"query": "shed key locker"})], cached_tokens=cached)
    return Reply(text=f"Noted. ({question[:30]})", cached_tokens=cached)


def _chat(client: openai.OpenAI, turns: int, more: tuple[str, ...] = ()) -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You help plan a community garden."}]
    for i in range(turns):
        text = (
            "For the record: the shed key is in locker B-317."
            if i == 3
            else f"Week {i}: the seed tray for bed {i % 12} is in locker C-{i:03}; "
            f"water it every {i % 4 + 1} days."
        )
        messages.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    for question in ("Which locker holds the shed key?", *more):
        messages.append({"role": "user", "content": question})
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})


@dataclass(frozen=True)
class UIStore:
    url: str
    managed: str = MANAGED
    observed: str = OBSERVED


def record_garden(
    url: str, turns: int = 24, seen: list[Any] | None = None, more: tuple[str, ...] = ()
) -> UIStore:
    """The garden sessions in the store at ``url``; ``seen`` gets every request body;
    ``more``: questions the managed session asks after the one that makes it recall."""

    def model(body: Any) -> Reply:
        if seen is not None:
            seen.append(json.loads(json.dumps(body)))
        if more:  # after its search, the model also reads the first page found (a page fault)
            last = body["messages"][-1]
            content = str(last.get("content") or "")
            found = re.search(r"\((\w+), t", content)
            if last["role"] == "tool" and content.startswith('{"results"') and found:
                return Reply(tool_calls=[("page_fault", {"page_id": found.group(1)})])
        return _model(body)

    api = FakeOpenAI(model)
    http = httpx.Client(transport=api.transport())
    managed = sessionware.wrap(
        openai.OpenAI(api_key="offline", http_client=http),
        mode="managed",
        context=ContextPolicy(budget=1200),
        store=url,
        session_id=MANAGED,
    )
    _chat(managed, turns, more)
    observed = sessionware.wrap(
        openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=api.transport())),
        store=url,
        session_id=OBSERVED,
    )
    _chat(observed, 6)
    open_store(url).flush()
    return UIStore(url)


@pytest.fixture
def garden(tmp_path: Path) -> UIStore:
    return record_garden(f"sqlite:///{tmp_path / 'garden.db'}")


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[UIServer] = []

    def start(url: str, **kwargs: Any) -> UIServer:
        server = UIServer(open_store(url), port=0, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@dataclass
class Reply_:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Reply_:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply_(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply_(exc.code, dict(exc.headers), exc.read())


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from cdp import Browser, find_chromium

    if find_chromium() is None:
        if os.environ.get("SESSIONWARE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required (SESSIONWARE_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Browser.launch() as b:
        yield b


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
