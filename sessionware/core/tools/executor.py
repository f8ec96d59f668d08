"""``ToolExecutor``: run tool calls concurrently, each validated, timed out and retried once-only.

One retry layer, and only for transient failures: by default a ``ConnectionError`` or a
timeout is retried once after a short backoff; anything else (a ``ValueError``, a
``ZeroDivisionError``...) is deterministic and answered at once. Arguments that do not
validate never reach the tool and are never retried. Every failure becomes a typed
``ToolResult``; only cancellation propagates.

Async tools run on the event loop. Sync tools run in a worker thread (``asyncio.to_thread``,
so context variables follow) so they can run side by side and be timed out; a timed-out
thread cannot be killed and finishes in the background. Sync tools registered with
``blocking=False`` are called inline.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.models import ErrorInfo
from sessionware.core.tools.models import ToolInvocation, ToolResult, ToolStatus
from sessionware.core.tools.registry import Tool, ToolRegistry

__all__ = ["NO_RETRY", "RetryPolicy", "ToolExecutor", "refusal"]

logger = logging.getLogger(__name__)


class RetryPolicy(BaseModel):
    """When a failed attempt is tried again: ``max_attempts`` in all (1 = never retry), only
    for exceptions of the ``retry_on`` types (a tool's timeout is a ``TimeoutError``), after
    ``backoff_s * backoff_factor ** (attempt - 1)`` seconds, capped at ``max_backoff_s``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_attempts: int = Field(default=2, ge=1)
    backoff_s: float = Field(default=0.1, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    max_backoff_s: float = Field(default=2.0, ge=0)
    retry_on: tuple[type[Exception], ...] = (ConnectionError, TimeoutError)

    def should_retry(self, exc: Exception, attempt: int) -> bool:
        return attempt < self.max_attempts and isinstance(exc, self.retry_on)

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_s * self.backoff_factor ** (attempt - 1), self.max_backoff_s))


NO_RETRY = RetryPolicy(max_attempts=1)


class _ToolTimeout(TimeoutError):
    """The tool outlived its timeout (told apart from a ``TimeoutError`` the tool raised)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no result within {timeout:g} s")


def refusal(
    call: ToolInvocation, status: ToolStatus, error_type: str, message: str, **fields: Any
) -> ToolResult:
    """A result for a call that did not run (unknown tool, invalid arguments, blocked)."""
    return ToolResult(
        call_id=call.id,
        tool=call.name,
        status=status,
        arguments=call.arguments if call.parse_error is None else call.raw_arguments,
        error=ErrorInfo(type=error_type, message=message),
        attempts=0,
        **fields,
    )


def _validation_message(tool: Tool, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    expected = ", ".join(tool.parameters.get("properties", {})) or "none"
    return f"invalid arguments for {tool.name}: {'; '.join(problems)} (parameters: {expected})"


class ToolExecutor:
    """Execute calls against a ``ToolRegistry``; stateless apart from its settings.

    ``timeout`` is the default per call in seconds (a tool's own ``timeout`` wins; None:
    no limit). ``max_concurrency`` bounds how many calls of one batch run at once.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
    ) -> None:
        if max_concurrency < 1:
            raise InvalidSessionOperation(
                "ToolExecutor", f"max_concurrency must be >= 1, got {max_concurrency}"
            )
        if timeout is not None and timeout <= 0:
            raise InvalidSessionOperation("ToolExecutor", f"timeout must be positive or None, got {timeout}")
        self.registry = registry
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_concurrency = max_concurrency

    async def execute(self, calls: Sequence[ToolInvocation]) -> list[ToolResult]:
        """Results in the order of ``calls``; at most ``max_concurrency`` run at a time."""
        if not calls:
            return []
        if len(calls) == 1:
            return [await self.execute_one(calls[0])]
        limit = asyncio.Semaphore(self.max_concurrency)

        async def bounded(call: ToolInvocation) -> ToolResult:
            async with limit:
                return await self.execute_one(call)

        return list(await asyncio.gather(*(bounded(call) for call in calls)))

    def screen(self, call: ToolInvocation) -> ToolResult | None:
        """The answer to a call that cannot run at all (unknown tool, arguments not a JSON
        object), or None. Runners screen calls before their guards see them."""
        if call.name not in self.registry:
            available = ", ".join(self.registry.names) or "none"
            return refusal(
                call,
                ToolStatus.UNKNOWN_TOOL,
                "UnknownTool",
                f"unknown tool {call.name!r}; available tools: {available}",
            )
        if call.parse_error is not None:
            return refusal(call, ToolStatus.INVALID_ARGUMENTS, "InvalidArguments", call.parse_error)
        return None

    async def execute_one(self, call: ToolInvocation) -> ToolResult:
        """Validate and run one call; every outcome is a result."""
        screened = self.screen(call)
        if screened is not None:
            return screened
        tool = self.registry[call.name]
        try:
            kwargs = tool.validate(call.arguments)
        except ValidationError as exc:
            return refusal(
                call, ToolStatus.INVALID_ARGUMENTS, "InvalidArguments", _validation_message(tool, exc)
            )
        return await self._run(tool, call, kwargs)

    async def _run(self, tool: Tool, call: ToolInvocation, kwargs: dict[str, Any]) -> ToolResult:
        timeout = tool.timeout if tool.timeout is not None else self.timeout
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                value = await self._attempt(tool, kwargs, timeout)
                result = to_jsonable_python(value, serialize_unknown=True)
            except Exception as exc:
                if tool.retryable and self.retry.should_retry(exc, attempt):
                    logger.debug("tool %s attempt %d failed (%r); retrying", tool.name, attempt, exc)
                    await asyncio.sleep(self.retry.delay(attempt))
                    continue
                logger.debug("tool %s failed after %d attempt(s)", tool.name, attempt, exc_info=True)
                timed_out = isinstance(exc, _ToolTimeout)
                return ToolResult(
                    call_id=call.id,
                    tool=tool.name,
                    status=ToolStatus.TIMEOUT if timed_out else ToolStatus.ERROR,
                    arguments=call.arguments,
                    error=ErrorInfo(
                        type=type(exc).__name__ if not timed_out else "TimeoutError", message=_message(exc)
                    ),
                    latency_ms=(time.perf_counter() - started) * 1000,
                    attempts=attempt,
                )
            return ToolResult(
                call_id=call.id,
                tool=tool.name,
                status=ToolStatus.SUCCESS,
                arguments=call.arguments,
                result=result,
                latency_ms=(time.perf_counter() - started) * 1000,
                attempts=attempt,
            )

    @staticmethod
    async def _attempt(tool: Tool, kwargs: dict[str, Any], timeout: float | None) -> Any:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                if tool.is_async:
                    value = await tool.fn(**kwargs)
                elif tool.blocking:
                    value = await asyncio.to_thread(tool.fn, **kwargs)
                else:
                    value = tool.fn(**kwargs)
                if inspect.isawaitable(value):  # a sync function that returned a coroutine
                    value = await value
                return value
        except TimeoutError:
            if scope.expired() and timeout is not None:
                raise _ToolTimeout(timeout) from None
            raise


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
