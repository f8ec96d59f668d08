"""Execution through the engine (chuk-tool-processor): concurrency with a bound, per-call
timeouts, one retry layer for transient failures only, and every failure as a typed result."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from pydantic import BaseModel
from tool_support import Calls

from sessionware import InvalidSessionOperation, ToolProcessingError
from sessionware.core.tools import (
    NO_RETRY,
    RetryPolicy,
    ToolInvocation,
    ToolRegistry,
    ToolResult,
    ToolRunner,
    ToolStatus,
)


def call(name: str, call_id: str = "call_1", **arguments: object) -> ToolInvocation:
    return ToolInvocation(id=call_id, name=name, arguments=dict(arguments))


class Executor:
    """A runner without a session or guards: execution alone."""

    def __init__(self, registry: ToolRegistry, **options: object) -> None:
        self.runner = ToolRunner(registry, guards=(), **options)  # type: ignore[arg-type]

    async def execute(self, calls: list[ToolInvocation]) -> list[ToolResult]:
        return list((await self.runner.run(None, list(calls))).results)

    async def execute_one(self, one: ToolInvocation) -> ToolResult:
        return (await self.execute([one]))[0]


ToolExecutor = Executor


async def test_a_successful_call_keeps_the_call_id_and_the_arguments(registry: ToolRegistry) -> None:
    result = await ToolExecutor(registry).execute_one(call("add", "call_abc", a=2, b=3))
    assert (result.status, result.call_id, result.tool, result.result) == (
        ToolStatus.SUCCESS,
        "call_abc",
        "add",
        5.0,
    )
    assert result.arguments == {"a": 2, "b": 3}
    assert (result.attempts, result.cached, result.error) == (1, False, None)
    assert result.latency_ms > 0
    assert result.content == "5.0"


async def test_calls_of_one_batch_run_concurrently() -> None:
    # Each tool waits until the other has started: run one after the other, they would time out.
    registry = ToolRegistry()
    both_started = asyncio.Barrier(2)

    @registry.tool
    async def meet(side: str) -> str:
        await both_started.wait()
        return side

    results = await ToolExecutor(registry, timeout=5).execute(
        [call("meet", "c1", side="a"), call("meet", "c2", side="b")]
    )
    assert [(r.call_id, r.result) for r in results] == [("c1", "a"), ("c2", "b")]


async def test_sync_tools_run_side_by_side_in_worker_threads() -> None:
    registry = ToolRegistry()
    both_started = threading.Barrier(2, timeout=5)
    loop_thread = threading.get_ident()

    @registry.tool
    def meet(side: str) -> bool:
        both_started.wait()
        return threading.get_ident() != loop_thread

    results = await ToolExecutor(registry).execute(
        [call("meet", "c1", side="a"), call("meet", "c2", side="b")]
    )
    assert [r.result for r in results] == [True, True]


async def test_max_concurrency_bounds_how_many_calls_run_at_once() -> None:
    registry = ToolRegistry()
    active = peak = 0

    @registry.tool
    async def work(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return n

    results = await ToolExecutor(registry, max_concurrency=2).execute(
        [call("work", f"c{i}", n=i) for i in range(6)]
    )
    assert [r.result for r in results] == list(range(6))  # in call order, whatever finished first
    assert peak == 2


async def test_a_slow_async_tool_times_out_into_a_result(registry: ToolRegistry, calls: Calls) -> None:
    result = await ToolExecutor(registry, retry=NO_RETRY).execute_one(call("slow", seconds=10))
    assert result.status is ToolStatus.TIMEOUT
    assert result.error is not None and result.error.type == "TimeoutError"
    assert result.content == "Error: no result within 0.05 s"
    assert (result.attempts, calls["slow"]) == (1, 1)


async def test_a_slow_sync_tool_times_out_too() -> None:
    registry = ToolRegistry()
    release = threading.Event()

    @registry.tool
    def stuck() -> str:
        release.wait(5)
        return "late"

    try:
        result = await ToolExecutor(registry, timeout=0.05, retry=NO_RETRY).execute_one(call("stuck"))
    finally:
        release.set()
    assert result.status is ToolStatus.TIMEOUT


async def test_a_timeout_is_retried_once_by_default(registry: ToolRegistry, calls: Calls) -> None:
    result = await ToolExecutor(registry).execute_one(call("slow", seconds=10))
    assert result.status is ToolStatus.TIMEOUT
    assert (result.attempts, calls["slow"]) == (2, 2)


async def test_a_deterministic_error_is_answered_at_once_without_retry(
    registry: ToolRegistry, calls: Calls
) -> None:
    retry = RetryPolicy(max_attempts=5, backoff_s=10)  # a retry would take 10 s
    result = await ToolExecutor(registry, retry=retry).execute_one(call("divide", a=1, b=0))
    assert result.status is ToolStatus.ERROR
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("ZeroDivisionError", "float division by zero")
    assert (result.attempts, calls["divide"]) == (1, 1)
    assert result.latency_ms < 10_000


async def test_a_transient_failure_is_retried_by_one_layer_only() -> None:
    registry = ToolRegistry()
    attempts = {"flaky": 0, "down": 0}

    @registry.tool
    def flaky() -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise ConnectionError("connection reset")
        return "ok"

    @registry.tool
    def down() -> str:
        attempts["down"] += 1
        raise ConnectionError("refused")

    executor = ToolExecutor(registry, retry=RetryPolicy(max_attempts=3, backoff_s=0))
    recovered, failed = await executor.execute([call("flaky", "c1"), call("down", "c2")])
    assert (recovered.status, recovered.result, recovered.attempts) == (ToolStatus.SUCCESS, "ok", 2)
    assert (failed.status, failed.attempts) == (ToolStatus.ERROR, 3)
    assert attempts == {"flaky": 2, "down": 3}  # exactly max_attempts runs, no stacked retries


async def test_a_tool_marked_not_retryable_runs_once() -> None:
    registry = ToolRegistry()
    runs = []

    @registry.tool(retryable=False)
    def charge(amount: float) -> str:
        runs.append(amount)
        raise ConnectionError("gateway timeout")

    result = await ToolExecutor(registry, retry=RetryPolicy(backoff_s=0)).execute_one(
        call("charge", amount=9.5)
    )
    assert (result.status, result.attempts, runs) == (ToolStatus.ERROR, 1, [9.5])


async def test_invalid_arguments_never_reach_the_tool(registry: ToolRegistry, calls: Calls) -> None:
    executor = ToolExecutor(registry)
    missing = await executor.execute_one(call("add", a=1))
    wrong = await executor.execute_one(call("sqrt", x=-4))
    garbled = await executor.execute_one(
        ToolInvocation(
            id="c3", name="add", raw_arguments="{a: 1", parse_error="invalid JSON: Expecting property"
        )
    )
    assert [r.status for r in (missing, wrong, garbled)] == [ToolStatus.INVALID_ARGUMENTS] * 3
    assert missing.content == "Error: invalid arguments for add: b: Field required (parameters: a, b)"
    assert "x: Input should be greater than or equal to 0" in wrong.content
    assert garbled.arguments == "{a: 1"
    assert calls.counts == {}
    assert {r.attempts for r in (missing, wrong, garbled)} == {0}


async def test_an_unknown_tool_is_answered_with_the_available_names(registry: ToolRegistry) -> None:
    result = await ToolExecutor(registry).execute_one(call("teleport", x=1))
    assert result.status is ToolStatus.UNKNOWN_TOOL
    assert result.content.startswith("Error: unknown tool 'teleport'; available tools: add, multiply, divide")


async def test_results_are_made_json_compatible_and_awaitables_are_awaited() -> None:
    registry = ToolRegistry()

    class Reading(BaseModel):
        at: dt.datetime
        value: float

    @registry.tool
    def read() -> Reading:
        return Reading(at=dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC), value=1.5)

    async def later() -> int:
        return 7

    @registry.tool(blocking=False)
    def deferred() -> object:
        return later()  # a sync function handing back a coroutine

    reading, value = await ToolExecutor(registry).execute([call("read", "c1"), call("deferred", "c2")])
    assert reading.result == {"at": "2024-01-02T03:04:00Z", "value": 1.5}
    assert value.result == 7


async def test_raise_for_error_turns_a_failed_result_into_tool_processing_error(
    registry: ToolRegistry,
) -> None:
    result = await ToolExecutor(registry).execute_one(call("divide", "call_9", a=1, b=0))
    with pytest.raises(ToolProcessingError) as info:
        result.raise_for_error()
    assert (info.value.tool_name, info.value.call_id) == ("divide", "call_9")
    assert "float division by zero" in info.value.reason


async def test_cancellation_propagates_and_is_not_a_result() -> None:
    registry = ToolRegistry()
    started = asyncio.Event()

    @registry.tool
    async def wait_forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(ToolExecutor(registry, timeout=None).execute_one(call("wait_forever")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_bad_runner_settings_are_refused(registry: ToolRegistry) -> None:
    with pytest.raises(InvalidSessionOperation, match="max_concurrency"):
        ToolRunner(registry, max_concurrency=0)
    with pytest.raises(InvalidSessionOperation, match="timeout"):
        ToolRunner(registry, timeout=0)
    with pytest.raises(InvalidSessionOperation, match="ToolRegistry, a ToolProcessor"):
        ToolRunner()


def test_retry_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_s=0.5, max_backoff_s=1.5)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    assert policy.transient("ConnectionRefusedError") and policy.transient("TimeoutError")
    assert not policy.transient("ValueError")
