"""The engine under the runner: worker processes, an application's own processor, calls written
as text, the engine's guards beside sessionware's, its scheduler, and its import tamed."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from tool_support import Calls, openai_reply

from sessionware import SessionManager
from sessionware.core.tools import GuardChain, ToolRegistry, ToolRunner, ToolSchedule, ToolStatus
from sessionware.core.tools.engine import load_engine, outcome

load_engine()

from chuk_tool_processor import ToolProcessor, create_registry  # noqa: E402
from chuk_tool_processor.guards import OutputSizeGuard, SensitiveDataGuard  # noqa: E402
from chuk_tool_processor.guards.output_size import OutputSizeConfig, TruncationMode  # noqa: E402
from chuk_tool_processor.models.tool_result import ToolResult as EngineResult  # noqa: E402
from chuk_tool_processor.scheduling import (  # noqa: E402
    GreedyDagScheduler,
    SchedulingConstraints,
    ToolMetadata,
)


def whoami(tag: str) -> dict[str, Any]:
    """The process a tool runs in."""
    return {"tag": tag, "pid": os.getpid()}


async def test_isolated_tools_run_in_worker_processes() -> None:
    registry = ToolRegistry()
    registry.register(whoami)
    runner = ToolRunner(registry, isolation="subprocess", max_concurrency=2)
    try:
        done = await runner.run(
            None, openai_reply(("c1", "whoami", {"tag": "a"}), ("c2", "whoami", {"tag": "b"}))
        )
    finally:
        await runner.aclose()
    assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.SUCCESS]
    assert [r.result["tag"] for r in done.results] == ["a", "b"]
    assert all(r.result["pid"] != os.getpid() for r in done.results)


class Shout:
    """An engine-native tool (a class with an async ``execute``)."""

    async def execute(self, text: str) -> str:
        return text.upper()


async def test_an_application_processor_runs_its_own_tools_and_the_registrys(registry: ToolRegistry) -> None:
    engine_registry = create_registry()
    await engine_registry.register_tool(Shout(), name="shout")
    processor = ToolProcessor(registry=engine_registry, enable_retries=False)
    runner = ToolRunner(registry, processor=processor)
    sm = SessionManager(store="memory://")
    await sm.user_says("shout hello, then add")
    done = await runner.run(
        sm,
        openai_reply(("c1", "shout", {"text": "hello"}), ("c2", "add", {"a": 1, "b": 2}), ("c3", "nope", {})),
    )
    assert [(r.status, r.result) for r in done.results] == [
        (ToolStatus.SUCCESS, "HELLO"),
        (ToolStatus.SUCCESS, 3.0),
        (ToolStatus.UNKNOWN_TOOL, None),
    ]
    assert "available tools: add, multiply" in done.results[2].content and "shout" in done.results[2].content
    await processor.close()


async def test_tool_calls_written_as_text_are_read_by_the_engines_parsers(
    registry: ToolRegistry, calls: Calls
) -> None:
    text = 'Let me compute. <tool name="add" args=\'{"a": 5, "b": 3}\'/>'
    done = await ToolRunner(registry).run(None, text)
    assert [(r.tool, r.result) for r in done.results] == [("add", 8.0)]
    assert done.results[0].call_id.startswith("call_") and calls["add"] == 1


async def test_engine_guards_check_calls_and_outputs_beside_sessionwares(registry: ToolRegistry) -> None:
    truncate = OutputSizeConfig(max_bytes=30, truncation_mode=TruncationMode.TRUNCATE)
    guards = GuardChain([SensitiveDataGuard(), OutputSizeGuard(truncate)])
    runner = ToolRunner(registry, guards=guards)
    secret = await runner.run(None, openai_reply(("c1", "note", {"text": "my key is AKIAIOSFODNN7EXAMPLE"})))
    assert secret.results[0].status is ToolStatus.BLOCKED
    assert secret.results[0].guard == "SensitiveDataGuard"
    registry.register(whoami)
    long = await runner.run(
        None, openai_reply(("c2", "whoami", {"tag": "a tag far longer than twenty characters"}))
    )
    [result] = long.results
    assert result.status is ToolStatus.SUCCESS
    assert result.warnings and result.warnings[0].startswith("OutputSizeGuard: Output truncated")
    assert result.result != whoami("a tag far longer than twenty characters")  # the guard's replacement


async def test_a_scheduler_skips_what_the_deadline_cannot_hold(registry: ToolRegistry, calls: Calls) -> None:
    schedule = ToolSchedule(
        scheduler=GreedyDagScheduler(),
        constraints=SchedulingConstraints(deadline_ms=1000, pool_limits={"math": 1}),
        tools={
            "add": ToolMetadata(pool="math", est_ms=10, priority=1),
            "slow": ToolMetadata(pool="io", est_ms=5000, priority=0),
        },
    )
    runner = ToolRunner(registry, schedule=schedule, guards=())
    done = await runner.run(
        None,
        openai_reply(
            ("c1", "add", {"a": 1, "b": 1}), ("c2", "add", {"a": 2, "b": 2}), ("c3", "slow", {"seconds": 0})
        ),
    )
    assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.SUCCESS, ToolStatus.BLOCKED]
    assert done.results[2].guard == "scheduler" and calls["slow"] == 0


def test_mcp_results_are_read_as_their_content() -> None:
    ok = EngineResult(tool="t", result={"content": [{"type": "text", "text": '{"n": 1}'}], "isError": False})
    failed = EngineResult(
        tool="t", result={"content": [{"type": "text", "text": "no such city"}], "isError": True}
    )
    down = EngineResult(
        tool="t", result={"error": "Tool 't' timed out after 3s", "available": False, "reason": "timeout"}
    )
    assert (outcome(ok).status, outcome(ok).value) == (ToolStatus.SUCCESS, {"n": 1})
    assert (outcome(failed).status, outcome(failed).error.message) == (ToolStatus.ERROR, "no such city")  # type: ignore[union-attr]
    assert outcome(down).status is ToolStatus.TIMEOUT


def test_loading_the_engine_leaves_the_processs_logging_and_warnings_alone() -> None:
    probe = """
import logging, warnings
from sessionware.core.tools.engine import load_engine
warnings.simplefilter("default")
before = (list(warnings.filters), list(logging.getLogger().filters))
load_engine()
engine = logging.getLogger("chuk_tool_processor")
assert (list(warnings.filters), list(logging.getLogger().filters)) == before
assert not engine.handlers and engine.level == logging.NOTSET
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


async def test_a_tool_registered_after_the_first_run_runs_too(registry: ToolRegistry) -> None:
    runner = ToolRunner(registry)
    assert (await runner.run(None, openai_reply(("c1", "add", {"a": 1, "b": 1})))).ok
    registry.register(whoami)
    done = await runner.run(None, openai_reply(("c2", "whoami", {"tag": "late"})))
    assert done.results[0].status is ToolStatus.SUCCESS and done.results[0].result["tag"] == "late"


class Verdicts:
    """An engine-shaped guard answering from a table: tool -> (verdict, repaired args)."""

    def __init__(self, answers: dict[str, tuple[str, Any]], output: tuple[str, Any] | None = None) -> None:
        self.answers = answers
        self.output = output

    def check(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        from types import SimpleNamespace

        verdict, repaired = self.answers.get(tool_name, ("allow", None))
        return SimpleNamespace(verdict=verdict, reason=f"{verdict} {tool_name}", repaired_args=repaired)

    def check_output(self, tool_name: str, arguments: dict[str, Any], result: Any) -> Any:
        from types import SimpleNamespace

        verdict, fallback = self.output or ("allow", None)
        if verdict == "raise":
            raise RuntimeError("broken output check")
        return SimpleNamespace(verdict=verdict, reason=f"{verdict} output", fallback_response=fallback)


async def test_engine_verdicts_repair_warn_and_block_as_sessionwares_do(registry: ToolRegistry) -> None:
    from chuk_tool_processor.guards import GuardChain as EngineChain

    guard = Verdicts(
        {"add": ("repair", {"a": 10, "b": 1}), "multiply": ("warn", None), "divide": ("repair", None)}
    )
    chain = GuardChain()
    chain.add(EngineChain([("table", guard)]))  # an engine chain is taken apart, names kept
    runner = ToolRunner(registry, guards=chain)
    done = await runner.run(
        None,
        openai_reply(
            ("c1", "add", {"a": 1, "b": 1}),
            ("c2", "multiply", {"a": 2, "b": 3}),
            ("c3", "divide", {"a": 4, "b": 2}),
        ),
    )
    added, multiplied, divided = done.results
    assert (added.result, added.arguments) == (11.0, {"a": 10, "b": 1})
    assert multiplied.result == 6 and multiplied.warnings == ("table: warn multiply",)
    assert divided.result == 2.0 and divided.warnings == (
        "table: repair divide",
    )  # a repair without arguments


async def test_output_checks_block_replace_or_survive_a_broken_guard(registry: ToolRegistry) -> None:
    cases = {
        "block": (ToolStatus.BLOCKED, None),
        "repair": (ToolStatus.SUCCESS, {"redacted": True}),
        "raise": (ToolStatus.SUCCESS, 3.0),
    }
    for verdict, (status, value) in cases.items():
        output = (verdict, '{"redacted": true}' if verdict == "repair" else None)
        runner = ToolRunner(registry, guards=[Verdicts({}, output)])
        [result] = (await runner.run(None, openai_reply(("c1", "add", {"a": 1, "b": 2})))).results
        assert (result.status, result.result) == (status, value), verdict
    with pytest.raises(TypeError, match="not a guard"):
        GuardChain([object()])


async def test_an_application_processor_can_retry_as_the_runner_does() -> None:
    from sessionware.core.tools import RetryPolicy
    from sessionware.core.tools.execution import TransientRetry

    runs = {"flaky": 0, "broken": 0}

    class Flaky:
        async def execute(self) -> str:
            runs["flaky"] += 1
            if runs["flaky"] == 1:
                raise ConnectionResetError("connection reset by peer")
            return "ok"

    class Broken:
        async def execute(self) -> str:
            runs["broken"] += 1
            raise ValueError("always")

    engine_registry = create_registry()
    await engine_registry.register_tool(Flaky(), name="flaky")
    await engine_registry.register_tool(Broken(), name="broken")
    policy = RetryPolicy(max_attempts=3, backoff_s=0)
    processor = ToolProcessor(registry=engine_registry, retry_config=TransientRetry(policy))
    runner = ToolRunner(processor=processor, guards=())
    done = await runner.run(None, openai_reply(("c1", "flaky", {}), ("c2", "broken", {})))
    # An engine-native tool keeps only its message through the engine, read by the engine's
    # own categories: a dropped connection is retried, a ValueError is not.
    assert [r.status for r in done.results] == [ToolStatus.SUCCESS, ToolStatus.ERROR]
    assert runs == {"flaky": 2, "broken": 1}
    await processor.close()


async def test_an_application_processors_circuit_breaker_answers_for_the_tool() -> None:
    runs = {"down": 0}

    class Down:
        async def execute(self) -> str:
            runs["down"] += 1
            raise RuntimeError("backend unavailable")

    engine_registry = create_registry()
    await engine_registry.register_tool(Down(), name="down")
    processor = ToolProcessor(
        registry=engine_registry,
        enable_retries=False,
        enable_caching=False,
        enable_circuit_breaker=True,
        circuit_breaker_threshold=2,
        circuit_breaker_timeout=60,
    )
    runner = ToolRunner(processor=processor, guards=())
    sm = SessionManager(store="memory://")
    await sm.user_says("try the backend three times")
    results = [(await runner.run(sm, openai_reply((f"c{i}", "down", {})))).results[0] for i in range(3)]
    await processor.close()
    # Two failures open the circuit: the third call is answered without running the tool.
    assert [r.status for r in results] == [ToolStatus.ERROR] * 3
    assert [r.error.type for r in results if r.error] == ["ToolError", "ToolError", "CircuitOpen"]
    assert runs == {"down": 2}
    assert (await sm.get_stats()).errors == 3
