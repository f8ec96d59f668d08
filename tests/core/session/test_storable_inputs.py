"""Poison stays local: any text in any recorded field (lone surrogates, NUL, megabytes)
is either refused with a typed error or stored, and never costs a later event.

Through ``SessionManager`` the app's input is checked at the door; through the recording
path the adapters use (``SessionState.record``) it is repaired where it is serialised,
flagged on the stored event and counted. Both on a real SQLite file, read back by a
fresh store (what another process would see).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessionware import InvalidSessionOperation, SessionManager
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import ToolCall
from sessionware.core.session.registry import registry_for
from sessionware.core.session.storable import repair_text
from sessionware.core.store import Store
from sessionware.core.store.sqlite import SQLiteBackend

# Every code point, surrogates included, plus the strings that broke things before.
ANY_CHAR = st.characters(exclude_categories=[])
NASTY = st.sampled_from(["\ud800", "\udc00", "\ud83d\ude00", "\x00", "a\x00b", "\ufffe", "\U0010ffff", ""])
TEXT = st.one_of(st.text(ANY_CHAR, max_size=40), NASTY, st.lists(NASTY, max_size=4).map("".join))
FIELDS = ("content", "tool_arguments", "tool_name", "metadata", "system_prompt", "session_id")

PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def fresh_read(path: Path, session_id: str) -> Any:
    store = Store(SQLiteBackend(path))
    try:
        return store.load(session_id)
    finally:
        store.close()


async def record_through_manager(path: Path, field: str, text: str) -> tuple[str | None, str]:
    """Record ``text`` in ``field`` through SessionManager, then a canary message.
    Returns (the error's operation if refused, the session id)."""
    store = Store(SQLiteBackend(path))
    session_id = "s"
    try:
        try:
            if field == "session_id":
                session_id = text
                sm = SessionManager(text, store=store)
                await sm.user_says("first")
            elif field == "system_prompt":
                sm = SessionManager(session_id, store=store, system_prompt=text)
                await sm.user_says("first")
            else:
                sm = SessionManager(session_id, store=store)
                await sm.user_says("first")
                if field == "content":
                    await sm.user_says(text)
                elif field == "metadata":
                    await sm.user_says("with metadata", note=text, **{"k" + text: 1})
                elif field == "tool_arguments":
                    await sm.ai_responds(None, tool_calls=[ToolCall(id="c1", name="t", arguments=text)])
                else:
                    await sm.tool_used(text, {"q": text}, {"r": text}, call_id="c1")
        except InvalidSessionOperation as exc:
            sm = SessionManager("s", store=store)
            await sm.user_says("canary")
            await sm.flush()
            return exc.operation, "s"
        await sm.user_says("canary")
        await sm.flush()
        assert store.stats.dropped_events == 0
        return None, session_id
    finally:
        store.close()


@pytest.mark.parametrize("field", FIELDS)
@PROPERTY
@given(text=TEXT)
def test_session_manager_refuses_or_stores_any_text_and_loses_nothing_after(
    field: str, text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("storable") / "s.db"
    refused, session_id = asyncio.run(record_through_manager(path, field, text))
    loaded = fresh_read(path, session_id)
    assert loaded.events[-1].text == "canary"  # nothing after the bad input was lost
    if refused is not None:
        return
    encodable = repair_text(text) == text
    assert encodable, f"{field}: an unstorable {text!r} was accepted"
    if field == "session_id":
        assert loaded.id == text
    elif field == "system_prompt":
        assert loaded.system_prompt == (text or None) or loaded.system_prompt == text
    elif field == "content":
        assert loaded.events[-2].content == text
    elif field == "metadata":
        assert loaded.events[-2].metadata == {"note": text, "k" + text: 1}
    elif field == "tool_arguments":
        assert loaded.events[-2].tool_calls[0].arguments == text
    else:
        assert (loaded.events[-2].tool_name, loaded.events[-2].tool_result) == (text, {"r": text})


@PROPERTY
@given(content=TEXT, arguments=TEXT, name=TEXT, meta=TEXT, prompt=TEXT)
def test_the_recording_path_repairs_flags_and_counts_and_loses_nothing_after(
    content: str, arguments: str, name: str, meta: str, prompt: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("repaired") / "s.db"
    store = Store(SQLiteBackend(path))
    try:
        state = registry_for(store).open("s", system_prompt=prompt)
        state.record(
            EventType.MESSAGE,
            EventSource.LLM,
            role=Role.ASSISTANT,
            content=content,
            tool_calls=(ToolCall.model_construct(id="c1", name=name, arguments=arguments),),
            metadata={"m": meta},
        )
        state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="after")
        store.flush()
        repaired = store.stats.repaired_events
    finally:
        store.close()
    loaded = fresh_read(path, "s")
    bad, after = loaded.events
    assert after.text == "after" and [e.seq for e in loaded.events] == [1, 2]
    assert bad.content == repair_text(content)
    assert (bad.tool_calls[0].name, bad.tool_calls[0].arguments) == (
        repair_text(name),
        repair_text(arguments),
    )
    assert bad.metadata == {"m": repair_text(meta)}
    assert loaded.system_prompt == repair_text(prompt)
    changed = [c for c in (content, name, arguments, meta) if repair_text(c) != c]
    assert bool(bad.repaired) == bool(changed)
    assert len(bad.repaired) == len(changed)
    assert repaired == (1 if changed else 0) + (1 if repair_text(prompt) != prompt else 0)


@pytest.mark.parametrize("tail", ["", "\ud800", "\x00"], ids=["plain", "surrogate", "nul"])
async def test_five_megabyte_strings_are_stored_or_refused_whole(tmp_path: Path, tail: str) -> None:
    big = "x" * 5_000_000 + tail
    store = Store(SQLiteBackend(tmp_path / "big.db"))
    sm = SessionManager("big", store=store)
    try:
        await sm.user_says(big)
        accepted = True
    except InvalidSessionOperation as exc:
        assert "surrogate" in exc.reason
        accepted = False
    await sm.user_says("after")
    state = sm.state
    state.record(EventType.MESSAGE, EventSource.LLM, role=Role.ASSISTANT, content=big)
    await sm.flush()
    store.close()
    events = fresh_read(tmp_path / "big.db", "big").events
    assert [len(e.text) for e in events] == [*([len(big)] if accepted else []), 5, len(big)]
    assert events[-1].text == repair_text(big)
