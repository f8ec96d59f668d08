"""Which session a call records into: explicit, scoped (contextvars), or threaded automatically."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from adapter_support import calls, conversation, make_openai, session_events

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.store import Store

SYSTEM = {"role": "system", "content": "You answer geography questions."}


def ask(client: Any, *messages: dict[str, Any]) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=list(messages))


def test_an_explicit_session_id_takes_every_call(openai_client: Any, store: Store) -> None:
    client = sessionware.wrap(openai_client, store=store, session_id="ticket-1")

    ask(client, SYSTEM, {"role": "user", "content": "Lisbon?"})
    ask(client, {"role": "user", "content": "Porto?"})

    store.flush()
    assert [i.id for i in store.list_sessions()] == ["ticket-1"]


def test_a_scope_names_the_session_and_stores_its_metadata(openai_client: Any, store: Store) -> None:
    with sessionware.session("support-42", user="ana", plan="pro") as handle:
        ask(openai_client, {"role": "user", "content": "Hello"})
        assert sessionware.current_session() is handle

    assert handle.id == "support-42"
    assert handle.stats().llm_calls == 1
    store.flush()
    assert store.load("support-42").metadata == {"user": "ana", "plan": "pro"}
    assert sessionware.current_session() is not handle


def test_inside_a_scope_a_pinned_client_s_session_is_the_current_one(
    openai_api: FakeOpenAI, openai_client: Any, store: Store
) -> None:
    pinned = sessionware.wrap(make_openai("OpenAI", openai_api), store=store, session_id="pinned")
    with sessionware.session("ticket-42") as scope:
        assert sessionware.current_session() is scope  # no call yet: the scope's session
        ask(pinned, {"role": "user", "content": "Hello"})
        current = sessionware.current_session()
        assert current is not None and current.id == "pinned" and current.stats().llm_calls == 1
        ask(openai_client, {"role": "user", "content": "Hi"})
        assert sessionware.current_session() is scope and scope.stats().llm_calls == 1
        with sessionware.session("inner") as inner:
            assert sessionware.current_session() is inner  # the last call was made outside it
        ask(pinned, {"role": "user", "content": "Again"})
    current = sessionware.current_session()
    assert current is not None and current.id == "pinned" and current.stats().llm_calls == 2


def test_scope_metadata_is_merged_into_an_existing_session(openai_client: Any, store: Store) -> None:
    with sessionware.session("s", user="ana"):
        ask(openai_client, {"role": "user", "content": "one"})
    with sessionware.session("s", channel="email"):
        ask(openai_client, {"role": "user", "content": "one"}, {"role": "user", "content": "two"})

    store.flush()
    assert store.load("s").metadata == {"user": "ana", "channel": "email"}


def test_scopes_nest_and_restore(openai_client: Any, store: Store) -> None:
    with sessionware.session("outer"):
        with sessionware.session("inner"):
            ask(openai_client, {"role": "user", "content": "a"})
        ask(openai_client, {"role": "user", "content": "b"})

    assert conversation(session_events(store, "inner")) == [("user", "a"), ("assistant", "You said: a")]
    assert conversation(session_events(store, "outer")) == [("user", "b"), ("assistant", "You said: b")]


async def test_async_scopes_stay_with_their_task(async_openai_client: Any, store: Store) -> None:
    async def conversation_of(name: str) -> None:
        async with sessionware.session(name):
            for turn in range(3):
                await async_openai_client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"{name} {turn}"}]
                )
                await asyncio.sleep(0)  # let the other task interleave

    await asyncio.gather(conversation_of("task-a"), conversation_of("task-b"))

    for name in ("task-a", "task-b"):
        users = [c for role, c in conversation(session_events(store, name)) if role == "user"]
        assert users == [f"{name} 0", f"{name} 1", f"{name} 2"]


def test_thread_scopes_do_not_leak_into_each_other(openai_api: FakeOpenAI, store: Store) -> None:
    client = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with sessionware.session(name):
                barrier.wait()
                for turn in range(5):
                    ask(client, {"role": "user", "content": f"{name} {turn}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"thread-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    for i in range(4):
        users = [c for role, c in conversation(session_events(store, f"thread-{i}")) if role == "user"]
        assert users == [f"thread-{i} {turn}" for turn in range(5)]


def test_a_new_thread_starts_outside_the_scope_unless_the_context_is_copied(
    openai_client: Any, store: Store
) -> None:
    seen: dict[str, Any] = {}
    with sessionware.session("parent"):
        plain = threading.Thread(target=lambda: seen.setdefault("plain", sessionware.current_session()))
        plain.start()
        plain.join()
        ctx = contextvars.copy_context()
        copied = threading.Thread(
            target=ctx.run, args=(lambda: seen.setdefault("copied", sessionware.current_session()),)
        )
        copied.start()
        copied.join()

    assert seen["plain"] is None
    assert seen["copied"].id == "parent"


def test_an_app_that_resends_its_history_is_threaded_into_one_session(
    openai_client: Any, store: Store
) -> None:
    history = [SYSTEM, {"role": "user", "content": "Capital of Spain?"}]
    for follow_up in ("And of France?", "And of Italy?"):
        reply = ask(openai_client, *history)
        history += [
            reply.choices[0].message.model_dump(exclude_none=True),
            {"role": "user", "content": follow_up},
        ]
    ask(openai_client, *history)
    ask(openai_client, SYSTEM, {"role": "user", "content": "A different conversation"})

    store.flush()
    sessions = store.list_sessions()
    assert len(sessions) == 2
    threaded = max(sessions, key=lambda i: i.totals.llm_calls)
    assert threaded.id.startswith("auto-")
    assert threaded.totals.llm_calls == 3
    assert threaded.system_prompt == SYSTEM["content"]
    users = [c for role, c in conversation(session_events(store, threaded.id)) if role == "user"]
    assert users == ["Capital of Spain?", "And of France?", "And of Italy?"]


PROBE = """
import httpx, openai, sessionware
from sessionware.adapters.fakes import FakeOpenAI
http = httpx.Client(transport=FakeOpenAI().transport())
client = sessionware.wrap(openai.OpenAI(api_key="k", http_client=http))
client.chat.completions.create(model="gpt-4o-mini", messages=[
    {"role": "system", "content": "You answer geography questions."}, {"role": "user", "content": "Hi"}])
print(sessionware.current_session().id)
"""


@pytest.mark.slow
def test_automatic_session_ids_are_stable_across_clients_and_processes(
    openai_api: FakeOpenAI, store: Store
) -> None:
    first = sessionware.wrap(make_openai("OpenAI", openai_api), store=store)
    second = sessionware.wrap(make_openai("AsyncOpenAI", openai_api), store=store)

    ask(first, SYSTEM, {"role": "user", "content": "Hi"})
    asyncio.run(
        second.chat.completions.create(
            model="gpt-4o-mini", messages=[SYSTEM, {"role": "user", "content": "Hi"}]
        )
    )
    other_process = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "7"},
    ).stdout.strip()

    store.flush()
    [info] = store.list_sessions()
    assert info.totals.llm_calls == 2
    assert info.id == other_process


def test_current_session_is_the_last_call_s_session_outside_a_scope(openai_client: Any) -> None:
    ask(openai_client, {"role": "user", "content": "Where am I recorded?"})

    handle = sessionware.current_session()

    assert handle is not None and handle.id.startswith("auto-")
    assert handle.stats().llm_calls == 1
    assert handle.messages()[-1] == {"role": "assistant", "content": "You said: Where am I recorded?"}


def test_embeddings_without_a_session_go_to_the_client_s_own_session(
    openai_client: Any, store: Store
) -> None:
    openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    openai_client.embeddings.create(model="text-embedding-3-small", input="c")

    store.flush()
    [info] = store.list_sessions()
    assert info.id.startswith("calls-")
    [first, second] = calls(session_events(store, info.id))
    assert first.metadata == {"endpoint": "embeddings", "inputs": 2}
    assert first.usage is not None and first.usage.input_tokens == 2
    assert first.cost is not None and first.cost > 0
    assert second.metadata["inputs"] == 1


@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_a_scope_needs_a_session_id(bad: Any) -> None:
    with pytest.raises(InvalidSessionOperation, match="a session id must (be a str|not be empty)"):
        sessionware.session(bad)
