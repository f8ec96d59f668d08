"""LiteLLM's callback hook: every chat call recorded once, through LiteLLM's real API and
its offline mocks (``mock_response``, ``mock_tool_calls``, mocked errors, streams)."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from adapter_support import calls, conversation
from litellm_support import await_calls, wait_for_calls

import sessionware
from sessionware.adapters.litellm import SessionCallback
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.session.enums import EventType
from sessionware.core.store import Store

# LiteLLM swallows what a callback raises: a bug of ours would only show up there.
pytestmark = pytest.mark.usefixtures("no_internal_errors")

SYSTEM = {"role": "system", "content": "You answer in one word."}
TOOL_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


@pytest.fixture
def callback(litellm: Any, store: Store) -> SessionCallback:
    cb = SessionCallback(store=store)
    litellm.callbacks = [cb]
    return cb


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_a_sync_completion_is_recorded_with_usage_and_both_costs(litellm: Any, callback: Any, store: Store):
    reply = litellm.completion(
        model="gpt-4o-mini", messages=[SYSTEM, user("Capital of France?")], mock_response="Paris"
    )

    [events] = wait_for_calls(store, 1).values()
    assert conversation(events) == [("user", "Capital of France?"), ("assistant", "Paris")]
    [call] = calls(events)
    assert call.usage == TokenUsage(
        input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens
    )
    assert call.model == "gpt-4o-mini" and call.provider == "openai"
    assert call.cost == Decimal("0.0000135")  # 10 and 20 tokens at gpt-4o-mini's rates
    assert Decimal(str(call.metadata["litellm_cost"])) == call.cost
    assert call.metadata["litellm_call_id"]
    assert events[0].type is EventType.SYSTEM_PROMPT and events[0].content == SYSTEM["content"]


async def test_an_async_completion_is_recorded(litellm: Any, callback: Any, store: Store):
    await litellm.acompletion(model="gpt-4o-mini", messages=[user("Two plus two?")], mock_response="Four")

    [events] = (await await_calls(store, 1)).values()
    assert conversation(events) == [("user", "Two plus two?"), ("assistant", "Four")]
    assert calls(events)[0].usage is not None


@pytest.mark.slow
def test_a_sync_stream_is_recorded_once_when_it_ends(litellm: Any, callback: Any, store: Store):
    stream = litellm.completion(
        model="gpt-4o-mini", messages=[user("Count to three")], mock_response="one two three", stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "one two three"

    [events] = wait_for_calls(store, 1).values()
    [call] = calls(events)
    assert call.content == "one two three"
    assert call.metadata["stream"] is True
    assert call.usage is not None and call.usage.output_tokens > 0


async def test_an_async_stream_is_recorded_once_when_it_ends(litellm: Any, callback: Any, store: Store):
    stream = await litellm.acompletion(
        model="gpt-4o-mini", messages=[user("Count to three")], mock_response="one two three", stream=True
    )
    parts = [c.choices[0].delta.content or "" async for c in stream]
    assert "".join(parts) == "one two three"

    [events] = (await await_calls(store, 1)).values()
    [call] = calls(events)
    assert call.content == "one two three" and call.metadata["stream"] is True


def test_anthropic_cache_reads_and_writes_are_kept_and_priced(litellm: Any, callback: Any, store: Store):
    cached = litellm.ModelResponse(
        model="claude-3-5-sonnet-20241022",
        choices=[
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "From cache."}}
        ],
        usage=litellm.Usage(
            prompt_tokens=1200,
            completion_tokens=30,
            total_tokens=1230,
            cache_read_input_tokens=1000,
            cache_creation_input_tokens=150,
        ),
    )
    litellm.completion(
        model="anthropic/claude-3-5-sonnet-20241022", messages=[user("hi")], mock_response=cached
    )

    [call] = calls(next(iter(wait_for_calls(store, 1).values())))
    assert call.usage == TokenUsage(
        input_tokens=1200, output_tokens=30, cache_read_tokens=1000, cache_write_tokens=150
    )
    assert call.provider == "anthropic"
    # 50 plain input tokens at $3/M, 1000 cache reads at $0.30/M, 150 writes at $3.75/M, 30 out at $15/M.
    assert call.cost == Decimal("0.00015") + Decimal("0.0003") + Decimal("0.0005625") + Decimal("0.00045")


def test_tool_calls_and_their_results_are_recorded_without_repeats(litellm: Any, callback: Any, store: Store):
    messages: list[Any] = [SYSTEM, user("Weather in Paris?")]
    first = litellm.completion(model="gpt-4o-mini", messages=messages, mock_tool_calls=[TOOL_CALL])
    wait_for_calls(store, 1)
    # The app appends LiteLLM's own Message object and the tool's result, then asks again.
    messages += [
        first.choices[0].message,
        {"role": "tool", "tool_call_id": "call_weather_1", "content": "18 C"},
    ]
    litellm.completion(model="gpt-4o-mini", messages=messages, mock_response="Mild: 18 C.")

    [events] = wait_for_calls(store, 2).values()
    answer, final = calls(events)
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("call_weather_1", "get_weather", '{"city": "Paris"}')
    ]
    messages_recorded = [e for e in events if e.type is EventType.MESSAGE]
    assert [e.role.value for e in messages_recorded if e.role] == ["user", "assistant", "tool", "assistant"]
    assert not any(e.type is EventType.BRANCH for e in events)
    assert final.content == "Mild: 18 C."


def test_a_legacy_function_call_is_recorded_as_a_tool_call(litellm: Any, callback: Any, store: Store):
    legacy = litellm.ModelResponse(
        model="gpt-4o-mini",
        choices=[
            {
                "index": 0,
                "finish_reason": "function_call",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            }
        ],
    )
    litellm.completion(model="gpt-4o-mini", messages=[user("Weather in Oslo?")], mock_response=legacy)

    [call] = calls(next(iter(wait_for_calls(store, 1).values())))
    assert [(c.name, c.arguments) for c in call.tool_calls] == [("get_weather", '{"city": "Oslo"}')]
    assert call.finish_reason == "function_call"


def test_a_mocked_sync_error_is_recorded_and_reaches_the_app(litellm: Any, callback: Any, store: Store):
    with pytest.raises(litellm.InternalServerError):
        litellm.completion(
            model="gpt-4o-mini", messages=[user("hi")], mock_response=Exception("upstream broke")
        )

    [events] = wait_for_calls(store, 1).values()
    [call] = calls(events)
    assert call.error is not None and "upstream broke" in call.error.message
    assert conversation(events) == [("user", "hi")]


async def test_a_mocked_rate_limit_is_recorded_with_its_status(litellm: Any, callback: Any, store: Store):
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(
            model="gpt-4o-mini", messages=[user("hi")], mock_response="litellm.RateLimitError"
        )

    [events] = (await await_calls(store, 1)).values()
    [call] = calls(events)
    assert call.error is not None
    assert call.error.type == "RateLimitError" and call.error.status_code == 429
    assert call.usage is None and call.cost is None


async def test_a_stream_failing_midway_is_recorded_as_an_error(litellm: Any, callback: Any, store: Store):
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[user("hi")],
        mock_response="Exception: mock_streaming_error",
        stream=True,
    )
    with pytest.raises(Exception, match="mock"):
        async for _ in stream:
            pass

    [events] = (await await_calls(store, 1)).values()
    assert calls(events)[0].error is not None


def test_per_call_metadata_names_the_session(litellm: Any, callback: Any, store: Store):
    litellm.completion(
        model="gpt-4o-mini", messages=[user("hi")], mock_response="hello", metadata={"session_id": "ticket-7"}
    )
    assert list(wait_for_calls(store, 1)) == ["ticket-7"]


def test_the_session_scope_names_the_session(litellm: Any, callback: Any, store: Store):
    with sessionware.session("support-42", user="ana"):
        litellm.completion(model="gpt-4o-mini", messages=[user("hi")], mock_response="hello")

    assert list(wait_for_calls(store, 1)) == ["support-42"]
    assert store.load("support-42").metadata == {"user": "ana"}


def test_metadata_wins_over_the_scope_and_the_callbacks_own_session(litellm: Any, store: Store):
    litellm.callbacks = [SessionCallback(store=store, session_id="everything")]
    with sessionware.session("scoped"):
        litellm.completion(
            model="gpt-4o-mini", messages=[user("a")], mock_response="1", metadata={"session_id": "named"}
        )
        litellm.completion(model="gpt-4o-mini", messages=[user("b")], mock_response="2")

    assert sorted(wait_for_calls(store, 2)) == ["everything", "named"]


def test_a_conversation_resent_in_full_threads_into_one_session_of_new_messages(
    litellm: Any, callback: Any, store: Store
):
    history: list[Any] = [SYSTEM, user("First question")]
    for turn in range(3):
        reply = litellm.completion(model="gpt-4o-mini", messages=history, mock_response=f"answer {turn}")
        wait_for_calls(store, turn + 1)
        history += [reply.choices[0].message.model_dump(exclude_none=True), user(f"follow-up {turn}")]

    [(session_id, events)] = wait_for_calls(store, 3).items()
    assert session_id.startswith("auto-")
    assert conversation(events) == [
        ("user", "First question"),
        ("assistant", "answer 0"),
        ("user", "follow-up 0"),
        ("assistant", "answer 1"),
        ("user", "follow-up 1"),
        ("assistant", "answer 2"),
    ]


def test_each_call_is_recorded_once_when_litellm_fires_its_events_again(litellm: Any, store: Store):
    seen: list[tuple[Any, ...]] = []

    class Capture(litellm.integrations.custom_logger.CustomLogger):  # type: ignore[name-defined,misc]
        def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            seen.append((kwargs, response_obj, start_time, end_time))

    callback = SessionCallback(store=store)
    litellm.callbacks = [callback, Capture()]
    litellm.completion(model="gpt-4o-mini", messages=[user("hi")], mock_response="hello")
    for _ in litellm.completion(model="gpt-4o-mini", messages=[user("hey")], mock_response="yo", stream=True):
        pass
    wait_for_calls(store, 2)
    assert len(seen) == 2

    # LiteLLM's known double firings: the same success again, and its async twin too.
    for args in seen:
        callback.log_success_event(*args)
        asyncio.run(callback.async_log_success_event(*args))

    assert len(wait_for_calls(store, 2)) == 2


def test_a_failure_then_a_success_of_the_same_call_are_both_recorded(litellm: Any, store: Store):
    callback = SessionCallback(store=store)
    seen: list[tuple[Any, ...]] = []

    class Capture(litellm.integrations.custom_logger.CustomLogger):  # type: ignore[name-defined,misc]
        def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            seen.append((kwargs, response_obj, start_time, end_time))

    litellm.callbacks = [Capture()]
    litellm.completion(model="gpt-4o-mini", messages=[user("hi")], mock_response="hello")
    deadline = time.monotonic() + 20
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    [(kwargs, response, start, end)] = seen
    failed = {**kwargs, "exception": TimeoutError("first attempt timed out")}

    # A retry inside LiteLLM: the attempt's failure, then the success, under one call id.
    callback.log_failure_event(failed, None, start, end)
    callback.log_success_event(kwargs, response, start, end)
    callback.log_failure_event(failed, None, start, end)

    [events] = wait_for_calls(store, 2).values()
    error, answer = calls(events)
    assert error.error is not None and error.error.type == "TimeoutError"
    assert answer.content == "hello"


def test_a_cost_disagreement_is_logged_once_per_model(
    litellm: Any, callback: Any, store: Store, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="sessionware.adapters.litellm")
    for _ in range(2):  # custom pricing: LiteLLM charges $0.001 per token
        litellm.completion(
            model="gpt-4o-mini",
            messages=[user("hi")],
            mock_response="hello",
            input_cost_per_token=1e-3,
            output_cost_per_token=1e-3,
        )
        wait_for_calls(store, _ + 1)

    events = wait_for_calls(store, 2)
    first, second = (c for e in events.values() for c in calls(e))
    for call in (first, second):
        assert call.cost == Decimal("0.0000135")
        assert call.metadata["litellm_cost"] == pytest.approx(0.03)
    warnings = [r for r in caplog.records if "gpt-4o-mini" in r.getMessage()]
    assert len(warnings) == 1


def test_a_model_only_litellm_prices_gets_litellms_cost(litellm: Any, callback: Any, store: Store):
    litellm.completion(
        model="openai/in-house-model",
        messages=[user("hi")],
        mock_response="hello",
        input_cost_per_token=1e-3,
        output_cost_per_token=2e-3,
    )

    [call] = calls(next(iter(wait_for_calls(store, 1).values())))
    assert call.cost == Decimal("0.05")  # 10 tokens in, 20 out
    assert call.metadata["cost_source"] == "litellm"


def test_calls_other_than_chat_completions_are_not_recorded_by_the_callback(
    litellm: Any, callback: Any, store: Store
):
    litellm.embedding(model="text-embedding-3-small", input=["hello"], mock_response=[0.1, 0.2])
    litellm.completion(model="gpt-4o-mini", messages=[user("hi")], mock_response="hello")

    assert len(wait_for_calls(store, 1)) == 1


def test_an_empty_session_id_is_refused():
    with pytest.raises(sessionware.InvalidSessionOperation):
        SessionCallback(session_id=" ")


def test_the_docstring_examples_hold():
    result = doctest.testmod(
        importlib.import_module("sessionware.adapters.litellm.callback"), optionflags=doctest.ELLIPSIS
    )

    assert result.attempted > 0
    assert result.failed == 0
