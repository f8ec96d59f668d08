"""Observe-mode calls are recorded off the app's path, and nothing can tell.

A wrapped call only captures references; the recorder thread records them. These tests
hold that thread (``background.hold``) so the records are surely still pending when the
app goes on, then check that every reader and writer of the session settles them first:
the event order with ``SessionManager`` and the tool runner writing in between, stats
read through ``current_session()``, the context builder, a flush, the CLI, and a normal
interpreter exit. Failures on the recorder thread are counted, and in strict mode (under
pytest) re-raised at the app's next call or ``settle()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from adapter_support import calls, conversation, make_openai, session_events

import sessionware
from sessionware.adapters.api import settle
from sessionware.adapters.engine import background
from sessionware.adapters.engine.guard import health
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.adapters.scope import SessionHandle
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.enums import EventType
from sessionware.core.session.manager import SessionManager
from sessionware.core.session.registry import registry_for
from sessionware.core.store import Store, open_store
from sessionware.core.store.sqlite import SQLiteBackend
from sessionware.core.tools import ToolRegistry, ToolRunner

SYSTEM = {"role": "system", "content": "You are terse."}
MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True, scope="module")
def primed() -> None:
    """The process's first record runs on the app's thread (see ``background.schedule``)."""
    client = sessionware.wrap(make_openai("OpenAI", FakeOpenAI()), store="memory://")
    ask(client, [{"role": "user", "content": "warm up"}])


def ask(client: Any, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    reply = client.chat.completions.create(model=MODEL, messages=messages, **kwargs)
    return str(reply.choices[0].message.content)


def test_a_call_returns_before_it_is_recorded_and_stats_still_include_it(openai_client: Any) -> None:
    with background.hold(), sessionware.session("deferred") as handle:
        ask(openai_client, [SYSTEM, {"role": "user", "content": "Hello"}])

        # Captured only: not even its session is worked out until something reads.
        assert registry_for(handle.store).cached("deferred") is None
        stats = handle.stats()  # reading settles it, here, on the app's thread
        assert (stats.llm_calls, stats.total_messages) == (1, 2)
        assert not handle.state.unsettled


@pytest.mark.parametrize("held", [True, False], ids=["recorder-held", "recorder-free"])
def test_session_manager_writes_between_wrapped_calls_keep_their_place(
    openai_client: Any, store: Store, held: bool
) -> None:
    """The integration-note pattern: the app tracks its user turns by hand and lets the
    wrapper record the model's; the log keeps the order things happened in."""
    manager = SessionManager("chat", store=store)
    history: list[dict[str, Any]] = [SYSTEM]

    async def user_turn(text: str) -> None:
        await manager.user_says(text)

    with background.hold() if held else nullcontext(), sessionware.session("chat"):
        for turn in range(4):
            text = f"question {turn}"
            asyncio.run(user_turn(text))
            history.append({"role": "user", "content": text})
            history.append({"role": "assistant", "content": ask(openai_client, history)})

    events = session_events(store, "chat")
    assert conversation(events) == [(m["role"], m["content"]) for m in history[1:]]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert not [e for e in events if e.type is EventType.BRANCH]
    assert len(calls(events)) == 4


async def test_async_clients_and_the_manager_share_one_order(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)
    manager = SessionManager("async-chat", store=store)
    history: list[dict[str, Any]] = [SYSTEM]
    with background.hold(), sessionware.session("async-chat"):
        for turn in range(3):
            await manager.user_says(f"question {turn}")
            history.append({"role": "user", "content": f"question {turn}"})
            reply = await client.chat.completions.create(model=MODEL, messages=history)
            history.append({"role": "assistant", "content": reply.choices[0].message.content})
        stats = await manager.get_stats()

    assert (stats.llm_calls, stats.total_messages) == (3, 6)
    events = session_events(store, "async-chat")
    assert conversation(events) == [(m["role"], m["content"]) for m in history[1:]]


@pytest.mark.parametrize("client_class", ["OpenAI", "AsyncOpenAI"])
def test_plain_and_streamed_calls_keep_their_order_while_sessions_are_worked_out_later(
    openai_api: FakeOpenAI, store: Store, client_class: str
) -> None:
    """Plain calls are threaded into their session off the app's path; a streamed call
    opens its session first, so it threads the calls made before it ahead of itself."""
    client = sessionware.wrap(make_openai(client_class, openai_api), store=store)
    history: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": "Plain, streamed, plain?"}]
    kinds = [False, True, False, False, True]

    def sync_turns() -> SessionHandle | None:
        for number, stream in enumerate(kinds):
            if stream:
                chunks = client.chat.completions.create(model=MODEL, messages=history, stream=True)
                text = "".join(c.choices[0].delta.content or "" for c in chunks)
            else:
                text = ask(client, history)
            history.extend(
                [{"role": "assistant", "content": text}, {"role": "user", "content": f"{number}?"}]
            )
        return sessionware.current_session()  # works out the last call's session here

    async def async_turns() -> SessionHandle | None:
        for number, stream in enumerate(kinds):
            if stream:
                chunks = await client.chat.completions.create(model=MODEL, messages=history, stream=True)
                text = "".join([c.choices[0].delta.content or "" async for c in chunks])
            else:
                reply = await client.chat.completions.create(model=MODEL, messages=history)
                text = str(reply.choices[0].message.content)
            history.extend(
                [{"role": "assistant", "content": text}, {"role": "user", "content": f"{number}?"}]
            )
        return sessionware.current_session()

    with background.hold():
        handle = sync_turns() if client_class == "OpenAI" else asyncio.run(async_turns())
        assert handle is not None
        assert handle.stats().llm_calls == 5

    events = session_events(store, handle.id)
    assert conversation(events) == [(m["role"], m["content"]) for m in history[1:-1]]
    assert not [e for e in events if e.type is EventType.BRANCH]
    assert [bool(e.metadata.get("stream")) for e in calls(events)] == kinds


def test_current_session_after_a_plain_call_is_that_calls_session(openai_client: Any) -> None:
    with background.hold():
        ask(openai_client, [SYSTEM, {"role": "user", "content": "First conversation"}])
        first = sessionware.current_session()
        ask(openai_client, [SYSTEM, {"role": "user", "content": "Second conversation"}])
        second = sessionware.current_session()
    assert first is not None and second is not None and first.id != second.id
    assert [m for _, m in conversation(second.events())][0] == "Second conversation"


def test_the_tool_runner_sees_the_call_that_asked_for_the_tools(openai_api: FakeOpenAI, store: Store) -> None:
    pytest.importorskip("chuk_tool_processor", reason="the tools extra is not installed")
    registry = ToolRegistry()

    @registry.tool
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    runner = ToolRunner(registry)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    openai_api.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply(text="5"))
    history: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": "2 + 3?"}]
    try:
        with background.hold(), sessionware.session("tools") as handle:
            message = client.chat.completions.create(model=MODEL, messages=history).choices[0].message
            done = runner.run_sync(handle.state, message)
            history += [message.model_dump(exclude_none=True), *done.openai_messages()]
            ask(client, history)
    finally:
        runner.close()

    events = session_events(store, "tools")
    kinds = [(e.type.value, e.role.value if e.role else None) for e in events]
    assert kinds == [
        ("system_prompt", "system"),
        ("message", "user"),
        ("message", "assistant"),  # the wrapped call's, not a second one from the runner
        ("tool_call", "tool"),
        ("message", "assistant"),
    ]
    assert events[2].usage is not None and events[2].metadata.get("recorded_by") is None


def test_a_flush_and_the_context_builder_include_pending_calls(
    tmp_path: Path, openai_api: FakeOpenAI
) -> None:
    path = tmp_path / "chat.db"
    store = open_store(f"sqlite:///{path}")
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    try:
        with background.hold(), sessionware.session("flushed"):
            answer = ask(client, [SYSTEM, {"role": "user", "content": "Remember the code word: heron"}])
            store.flush()
            stored = SQLiteBackend(path).load("flushed")  # another connection to the file
            assert conversation(stored.events)[-1] == ("assistant", answer)

            ask(client, [SYSTEM, {"role": "user", "content": "Now forget it"}], user="x")
            manager = SessionManager("flushed", store=store, enable_vm=True)
            built = asyncio.run(manager.build_context(budget=4000))
            assert any(m.get("content") == "Now forget it" for m in built.messages)
    finally:
        store.close()


def test_the_cli_in_process_shows_pending_calls(
    tmp_path: Path, openai_api: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    from sessionware.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = open_store(url)
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    with background.hold(), sessionware.session("shown"):
        answer = ask(client, [SYSTEM, {"role": "user", "content": "Say something"}])
        assert main(["show", "shown", "--store", url, "--format", "json"]) == 0

    shown = json.loads(capsys.readouterr().out)
    assert [e["content"] for e in shown["events"] if e["type"] == "message"][-1] == answer


_CHILD = """
import httpx, openai, sys
import sessionware
from sessionware.adapters.engine import background
from sessionware.adapters.fakes import FakeOpenAI

client = sessionware.wrap(
    openai.OpenAI(api_key="k", max_retries=0, http_client=httpx.Client(transport=FakeOpenAI().transport())),
    store=sys.argv[1],
)
if sys.argv[2] == "held":
    background.hold(timeout=0.5).__enter__()  # never released: the recorder is stuck at exit
history = [{"role": "system", "content": "Be brief."}]
with sessionware.session("exiting") as handle:
    for turn in range(20):
        history.append({"role": "user", "content": f"turn {turn}"})
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    if sys.argv[2] == "held":
        assert handle.state.unsettled
# no flush, no settle: a normal exit
"""


@pytest.mark.slow
@pytest.mark.parametrize("recorder", ["held", "free"])
def test_a_normal_exit_loses_no_pending_call(tmp_path: Path, recorder: str) -> None:
    path = tmp_path / "exit.db"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    done = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{path}", recorder],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    events = SQLiteBackend(path).load("exiting").events
    assert len(calls(events)) == 20
    assert len([e for e in events if e.type is EventType.MESSAGE]) == 40


# -- failures on the recorder thread ---------------------------------------------------


def _fail_next_record(client: Any, session_id: str) -> tuple[Any, int]:
    """Open ``session_id`` with one call, then make its events too big to record."""
    with sessionware.session(session_id) as handle:
        ask(client, [{"role": "user", "content": "first"}])
        assert handle.stats().llm_calls == 1  # recorded (a read settles it)
        handle.state.max_event_bytes = 4
    return handle, health().internal_errors


def _wait_for_errors(count: int) -> None:
    deadline = time.monotonic() + 10
    while health().internal_errors < count:
        assert time.monotonic() < deadline, "the recorder thread never ran"
        time.sleep(0.005)


def test_strict_mode_reraises_a_recorder_failure_at_the_next_call(
    openai_client: Any, openai_api: FakeOpenAI
) -> None:
    _, errors = _fail_next_record(openai_client, "strict-call")
    with sessionware.session("strict-call"):
        ask(openai_client, [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}])
    _wait_for_errors(errors + 1)  # failed on the recorder thread: the app's call went on
    sent = len(openai_api.requests)

    with pytest.raises(InvalidSessionOperation, match="max_event_bytes"):
        ask(openai_client, [{"role": "user", "content": "elsewhere"}])
    assert len(openai_api.requests) == sent  # raised before anything was sent
    assert settle()  # raised once, not again


def test_strict_mode_reraises_a_recorder_failure_at_settle(openai_client: Any) -> None:
    handle, errors = _fail_next_record(openai_client, "strict-settle")
    with sessionware.session("strict-settle"):
        ask(openai_client, [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}])

    with pytest.raises(InvalidSessionOperation, match="max_event_bytes"):
        settle()
    assert health().internal_errors == errors + 1
    assert handle.stats().llm_calls == 1  # the failed record left nothing half-written


def test_strict_mode_raises_from_a_read_that_settles_a_failing_record(openai_client: Any) -> None:
    handle, errors = _fail_next_record(openai_client, "strict-read")
    with background.hold(), sessionware.session("strict-read"):
        ask(openai_client, [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}])
        with pytest.raises(InvalidSessionOperation, match="max_event_bytes"):
            handle.stats()
    assert health().internal_errors == errors + 1
    assert handle.stats().llm_calls == 1


@pytest.mark.usefixtures("lenient")
def test_outside_strict_mode_a_recorder_failure_is_logged_and_counted(
    openai_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handle, errors = _fail_next_record(openai_client, "lenient")
    with caplog.at_level(logging.WARNING, logger="sessionware.adapters.engine.guard"):
        with sessionware.session("lenient"):
            ask(openai_client, [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}])
        _wait_for_errors(errors + 1)
        assert settle()  # nothing kept to re-raise
        handle.state.max_event_bytes = 1 << 20
        with sessionware.session("lenient"):
            ask(openai_client, [{"role": "user", "content": "again"}])

    assert health().internal_errors == errors + 1
    assert "max_event_bytes" in (health().last_error or "")
    assert any("could not record" in r.getMessage() for r in caplog.records)
    assert handle.stats().llm_calls == 2


def test_a_session_deleted_between_calls_starts_again_instead_of_reusing_its_state(
    openai_client: Any, store: Store
) -> None:
    with sessionware.session("gone"):
        ask(openai_client, [{"role": "user", "content": "first life"}])
    asyncio.run(SessionManager("gone", store=store).delete())

    with sessionware.session("gone") as handle:
        answer = ask(openai_client, [{"role": "user", "content": "second life"}])
        assert handle.stats().llm_calls == 1

    assert conversation(session_events(store, "gone")) == [("user", "second life"), ("assistant", answer)]
