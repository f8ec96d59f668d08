"""LiteLLM's callback reads on LiteLLM's path only what picks the session; the rest of the
call is read when the recorder thread records it. These tests check that what is
recorded is still the call as LiteLLM reported it, and that the callback's memory of the
last session it recorded into never outlives that session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from adapter_support import calls, conversation
from litellm_support import await_calls, clean_litellm

from sessionware.adapters import _background, _guard
from sessionware.adapters.litellm import SessionCallback
from sessionware.core.session.manager import SessionManager
from sessionware.core.store import Store

SYSTEM = {"role": "system", "content": "You answer in one word."}


@pytest.fixture
def litellm() -> Iterator[Any]:
    with clean_litellm() as module:
        yield module


@pytest.fixture(autouse=True)
def no_internal_errors() -> Iterator[None]:
    before = _guard.health().internal_errors
    yield
    assert _guard.health().internal_errors == before, _guard.health().last_error


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_a_callback_after_ours_rewriting_the_call_details_does_not_change_the_record(
    litellm: Any, store: Store
):
    from litellm.integrations.custom_logger import CustomLogger

    class Rewriter(CustomLogger):
        """Rewrites LiteLLM's shared call details the way its redaction does."""

        async def async_log_success_event(
            self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            kwargs["messages"] = [{"role": "user", "content": "redacted"}]
            kwargs["litellm_params"] = {"metadata": {"session_id": "elsewhere"}}
            kwargs["response_cost"] = 99.0
            kwargs["optional_params"] = {}
            kwargs["model"] = "rewritten"

    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    litellm.callbacks = [SessionCallback(store=store), Rewriter()]
    await litellm.acompletion(  # the process's first record may run at once: not this one
        model="gpt-4o-mini", messages=[user("warm-up")], mock_response="ok", metadata={"session_id": "w"}
    )
    await await_calls(store, 1)
    # The recorder thread held: the record waits until after the Rewriter has run.
    with _background.hold():
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=[SYSTEM, user("Capital of France?")],
            mock_response="Paris",
            metadata={"session_id": "ticket-9"},
        )
        for _ in range(3):
            await asyncio.sleep(0)
        await GLOBAL_LOGGING_WORKER.flush()

    events = await await_calls(store, 2)
    assert sorted(events) == ["ticket-9", "w"]
    assert conversation(events["ticket-9"]) == [("user", "Capital of France?"), ("assistant", "Paris")]
    [call] = calls(events["ticket-9"])
    assert call.model == "gpt-4o-mini"
    assert Decimal(str(call.metadata["litellm_cost"])) == call.cost == Decimal("0.0000135")


async def test_calls_alternating_between_sessions_each_land_in_their_own(litellm: Any, store: Store):
    litellm.callbacks = [SessionCallback(store=store)]
    for session_id, text in [("a", "one"), ("b", "two"), ("a", "three"), ("b", "four"), ("a", "five")]:
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=[user(text)],
            mock_response=text.upper(),
            metadata={"session_id": session_id},
        )

    events = await await_calls(store, 5)
    assert [text for role, text in conversation(events["a"]) if role == "user"] == ["one", "three", "five"]
    assert [text for role, text in conversation(events["b"]) if role == "user"] == ["two", "four"]


async def test_a_session_deleted_between_calls_is_created_afresh(litellm: Any, store: Store):
    litellm.callbacks = [SessionCallback(store=store)]

    async def ask(text: str) -> None:
        await litellm.acompletion(
            model="gpt-4o-mini", messages=[user(text)], mock_response="ok", metadata={"session_id": "t-1"}
        )

    await ask("first")
    await await_calls(store, 1)
    await SessionManager("t-1", store=store).delete()
    await ask("second")

    events = await await_calls(store, 1)
    assert conversation(events["t-1"]) == [("user", "second"), ("assistant", "ok")]
    assert [e.seq for e in events["t-1"]] == list(range(1, len(events["t-1"]) + 1))
