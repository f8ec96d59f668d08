"""Running a ``ToolRegistry``'s tools, and any engine tools, through a ``ToolProcessor``.

Importing this module imports the engine (see ``engine``): only a ``ToolRunner`` about
to execute does.

* ``RegisteredTool`` is a sessionware tool as the engine runs it: arguments validated
  against the tool's schema, its own timeout, sync functions in a worker thread, the
  result made JSON-compatible, and a failure raised with its exception type kept in the
  text (the engine keeps only text). It pickles as its function, so the engine's
  ``SubprocessStrategy`` can run it in a worker process.
* ``EngineExecutor`` holds the runner's ``ToolProcessor``: one of its own per event loop
  (the engine's locks belong to the loop that first used them), built on an isolated
  engine registry with the retry and cache layers configured by the runner's policies;
  or the application's processor, whose own settings then apply, with the registry's
  tools added to its registry. Each call goes through ``ToolProcessor.execute`` on its
  own: the engine's retry layer runs a batch's calls one after another, so a batch keeps
  its parallelism only when handed over call by call.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from sessionware.core.errors import ToolProcessingError
from sessionware.core.tools.engine import Outcome, failure_text, load_engine, outcome, read_failure
from sessionware.core.tools.models import ToolInvocation, ToolScope
from sessionware.core.tools.policies import CachePolicy, RetryPolicy, ToolSchedule
from sessionware.core.tools.registry import Tool, ToolRegistry

load_engine()  # before any engine module: undoes what importing the engine does to the process

from chuk_tool_processor import InProcessStrategy, SubprocessStrategy, ToolProcessor, create_registry  # noqa: E402
from chuk_tool_processor import ToolCall as EngineCall  # noqa: E402
from chuk_tool_processor.core.exceptions import ErrorInfo as EngineErrorInfo  # noqa: E402
from chuk_tool_processor.execution.wrappers.caching import CacheInterface, CachingToolExecutor  # noqa: E402
from chuk_tool_processor.execution.wrappers.retry import RetryableToolExecutor, RetryConfig  # noqa: E402

__all__ = [
    "EngineExecutor",
    "RegisteredTool",
    "ToolIsolation",
    "TransientRetry",
    "cache_scope",
    "run_scheduled",
    "scope_key",
]

# Longest any engine strategy waits for one of our tools, which time themselves out.
_BACKSTOP_S = 24 * 3600.0

cache_scope: contextvars.ContextVar[str] = contextvars.ContextVar("sessionware_tool_cache_scope", default="")
"""Which session (and turn) the cached results of the current execution belong to."""


class ToolIsolation(StrEnum):
    """Where a runner's own processor runs the registry's tools."""

    IN_PROCESS = "in_process"
    """On the event loop (sync tools in worker threads): the engine's ``InProcessStrategy``."""
    SUBPROCESS = "subprocess"
    """In a pool of worker processes: the engine's ``SubprocessStrategy`` (functions must be
    importable by name, as ``pickle`` requires)."""


class _Failure(ToolProcessingError):
    """A tool's failure on its way through the engine, which keeps ``str(exc)`` only."""

    def __init__(self, tool: str, error_type: str, message: str) -> None:
        super().__init__(tool, message)
        self.text = failure_text(error_type, message)

    def __str__(self) -> str:
        return self.text


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def validation_message(tool: Tool, exc: ValidationError) -> str:
    """What the model reads about arguments that do not fit ``tool``'s schema."""
    problems = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    expected = ", ".join(tool.parameters.get("properties", {})) or "none"
    return f"invalid arguments for {tool.name}: {'; '.join(problems)} (parameters: {expected})"


def _rebuild(
    fn: Callable[..., Any], name: str, options: dict[str, Any], timeout: float | None
) -> RegisteredTool:
    return RegisteredTool(ToolRegistry().register(fn, name=name, **options), timeout=timeout)


class RegisteredTool:
    """A ``ToolRegistry`` tool as the engine calls it (``await tool.execute(**arguments)``)."""

    def __init__(self, tool: Tool, *, timeout: float | None) -> None:
        self.tool = tool
        self.timeout = tool.timeout if tool.timeout is not None else timeout
        self.__doc__ = tool.description

    def __reduce__(self) -> tuple[Any, ...]:
        t = self.tool
        options = {
            "description": t.description,
            "timeout": t.timeout,
            "retryable": t.retryable,
            "cacheable": t.cacheable,
            "blocking": t.blocking,
        }
        return _rebuild, (t.fn, t.name, options, self.timeout)

    async def execute(self, **arguments: Any) -> Any:
        tool = self.tool
        try:
            kwargs = tool.validate(arguments)
        except ValidationError as exc:
            raise _Failure(tool.name, "InvalidArguments", validation_message(tool, exc)) from None
        scope = asyncio.timeout(self.timeout)
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
        except TimeoutError as exc:
            if scope.expired() and self.timeout is not None:
                raise _Failure(tool.name, "ToolTimeout", f"no result within {self.timeout:g} s") from None
            raise _Failure(tool.name, type(exc).__name__, _message(exc)) from exc
        except Exception as exc:
            raise _Failure(tool.name, type(exc).__name__, _message(exc)) from exc
        return to_jsonable_python(value, serialize_unknown=True)


class TransientRetry(RetryConfig):
    """The engine's ``RetryConfig`` deciding by exception type (``RetryPolicy.retry_on``)
    instead of retrying every failure. For an app's own processor:
    ``ToolProcessor(retry_config=TransientRetry(RetryPolicy()))``."""

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(
            max_retries=policy.max_attempts - 1,
            base_delay=policy.backoff_s,
            max_delay=policy.max_backoff_s,
            jitter=policy.jitter,
        )
        self.policy = policy

    def should_retry(
        self, attempt: int, *, error: Exception | None = None, error_str: str | None = None
    ) -> bool:
        if attempt >= self.max_retries:
            return False
        text = error_str or (str(error) if error is not None else "")
        kind = outcome_kind(text)
        if kind is None:  # an engine-native tool: only its message is known, read by the engine
            category = EngineErrorInfo.from_error_string(text).category.value
            kind = {"connection": "ConnectionError", "timeout": "TimeoutError"}.get(category)
        return kind is not None and self.policy.transient(kind)


def outcome_kind(error: str) -> str | None:
    """The exception type (by name) behind an engine error string, when it is known."""
    _, info = read_failure(error)
    return info.type if info.type not in ("ToolError", "UnknownTool") else None


class ScopedCache(CacheInterface):
    """The engine's cache interface over one runner's results, kept apart per session (and
    turn): an entry is found only under the ``cache_scope`` it was stored in. Least
    recently used entries go first past ``max_entries``; a thread lock, not an asyncio
    one, so one cache serves every event loop."""

    def __init__(self, policy: CachePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, tool: str, arguments_hash: str) -> Any | None:
        key = (cache_scope.get(), tool, arguments_hash)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires = entry
            if expires <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    async def set(self, tool: str, arguments_hash: str, result: Any, *, ttl: int | None = None) -> None:
        key = (cache_scope.get(), tool, arguments_hash)
        lifetime = self.policy.ttl_s if self.policy.ttl_s is not None else float("inf")
        with self._lock:
            self._entries[key] = (result, self._clock() + lifetime)
            self._entries.move_to_end(key)
            while len(self._entries) > self.policy.max_entries:
                self._entries.popitem(last=False)

    async def invalidate(self, tool: str, arguments_hash: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[1] == tool and arguments_hash in (None, k[2])]:
                del self._entries[key]

    async def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class EngineExecutor:
    """The runner's way into the engine (see the module docstring)."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        processor: ToolProcessor | None = None,
        timeout: float | None,
        retry: RetryPolicy,
        cache: CachePolicy | None,
        max_concurrency: int,
        isolation: ToolIsolation = ToolIsolation.IN_PROCESS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.given = processor
        self.timeout = timeout
        self.retry = retry
        self.cache_policy = cache
        self.cache = ScopedCache(cache, clock) if cache is not None else None
        self.max_concurrency = max_concurrency
        self.isolation = ToolIsolation(isolation)
        self._own: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ToolProcessor] = (
            weakref.WeakKeyDictionary()
        )
        self._mirrored: dict[int, int] = {}
        """``id()`` of each processor -> the registry version its engine registry mirrors."""
        self._names: frozenset[str] | None = None

    # -- the processor -------------------------------------------------------------------

    async def _register(self, target: Any, tools: Iterable[Tool]) -> None:
        for tool in tools:
            await target.register_tool(
                RegisteredTool(tool, timeout=self.timeout),
                name=tool.name,
                metadata={
                    "description": tool.description,
                    "argument_schema": tool.parameters,
                    "source": "sessionware",
                    "source_name": getattr(tool.fn, "__qualname__", tool.name),
                },
            )

    async def _build(self) -> ToolProcessor:
        engine_registry = create_registry()
        await self._register(engine_registry, self.registry)
        if self.isolation is ToolIsolation.SUBPROCESS:
            strategy: Any = SubprocessStrategy(
                engine_registry, max_workers=self.max_concurrency, default_timeout=_BACKSTOP_S
            )
        else:
            strategy = InProcessStrategy(
                engine_registry, default_timeout=_BACKSTOP_S, max_concurrency=self.max_concurrency
            )
        processor = ToolProcessor(
            registry=engine_registry, strategy=strategy, enable_caching=False, enable_retries=False
        )
        await processor.initialize()
        # The retry layer always: even without retries (``NO_RETRY``) it counts attempts,
        # and ``ToolProcessor.execute`` hands ``use_cache=`` to a bare strategy, which
        # refuses it (only the wrappers take it).
        once = RetryConfig(max_retries=0)
        executor: Any = RetryableToolExecutor(
            processor.executor,
            default_config=TransientRetry(self.retry),
            tool_configs={t.name: once for t in self.registry if not t.retryable},
        )
        if self.cache is not None and self.cache_policy is not None:
            ttl = self.cache_policy.ttl_s
            executor = CachingToolExecutor(
                executor,
                cache=self.cache,
                default_ttl=int(ttl) if ttl is not None else None,
                cacheable_tools=[t.name for t in self.registry if t.cacheable],
            )
        processor.executor = executor
        return processor

    async def processor(self) -> ToolProcessor:
        """The processor calls of the current event loop go through (tools registered
        since it was built are added to its registry first)."""
        if self.given is not None:
            processor = self.given
            await processor.initialize()
        else:
            loop = asyncio.get_running_loop()
            found = self._own.get(loop)
            if found is None:
                found = self._own[loop] = await self._build()
                self._mirrored[id(found)] = self.registry.version
            processor = found
        if self._mirrored.get(id(processor)) != self.registry.version:
            self._mirrored[id(processor)] = self.registry.version
            known = set(await processor.list_tools())
            assert processor.registry is not None  # set by initialize()
            await self._register(processor.registry, [t for t in self.registry if t.name not in known])
            self._names = None
        return processor

    async def names(self, *, refresh: bool = False) -> frozenset[str]:
        """Tool names the processor can run (engine tools also as ``namespace.name``)."""
        if self.given is None:
            return frozenset(self.registry.names)
        if self._names is None or refresh:
            processor = await self.processor()
            assert processor.registry is not None  # set by initialize()
            infos = await processor.registry.list_tools()
            self._names = frozenset(
                [*self.registry.names, *(i.name for i in infos), *(f"{i.namespace}.{i.name}" for i in infos)]
            )
        return self._names

    # -- running -------------------------------------------------------------------------

    async def run(self, call: ToolInvocation, *, scope: str = "", timeout: float | None = None) -> Outcome:
        """Execute one call (``timeout``: the engine's, in seconds); every outcome is a
        result (cancellation propagates)."""
        processor = await self.processor()
        token = cache_scope.set(scope)
        started = time.perf_counter()
        try:
            results = await processor.execute(
                [EngineCall(id=call.id, tool=call.name, arguments=call.arguments)], timeout=timeout
            )
        finally:
            cache_scope.reset(token)
        if not results:
            raise ToolProcessingError(call.name, "the engine returned no result", call_id=call.id)
        done = outcome(results[0])
        # The call's whole time (every attempt and the waits between them), not the last attempt's.
        return dataclasses.replace(done, latency_ms=(time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        """Close the processors this executor built (the application closes its own)."""
        own, self._own = list(self._own.values()), weakref.WeakKeyDictionary()
        for processor in own:
            await processor.close()


def scope_key(session_id: str | None, turn: int, policy: CachePolicy | None) -> str:
    """The ``cache_scope`` of a call: its session, and its turn for turn-scoped caches."""
    if policy is None:
        return ""
    base = session_id or ""
    return base if policy.scope is ToolScope.SESSION else f"{base}#{turn}"


async def run_scheduled(
    engine: EngineExecutor, calls: list[ToolInvocation], schedule: ToolSchedule, *, scope: str
) -> dict[str, Outcome | str]:
    """Run ``calls`` in the stages ``schedule``'s scheduler plans: call id -> its outcome,
    or the reason it was skipped."""
    from chuk_tool_processor.scheduling import ToolCallSpec, ToolMetadata

    specs = [
        ToolCallSpec(
            call_id=call.id,
            tool_name=call.name,
            args=call.arguments,
            metadata=schedule.tools.get(call.name) or ToolMetadata(),
        )
        for call in calls
    ]
    plan = schedule.scheduler.plan(specs, schedule.constraints)
    by_id = {call.id: call for call in calls}
    done: dict[str, Outcome | str] = {}
    for reason in plan.skip_reasons:
        done[reason.call_id] = f"{reason.reason}: {reason.detail}" if reason.detail else reason.reason
    for call_id in plan.skip:
        done.setdefault(call_id, "skipped by the scheduler")
    for stage in plan.stages:
        timeouts = {cid: plan.per_call_timeout_ms.get(cid) for cid in stage}
        outcomes = await asyncio.gather(
            *(
                engine.run(by_id[cid], scope=scope, timeout=(t / 1000 if t else None))
                for cid, t in timeouts.items()
            )
        )
        done.update(zip(stage, outcomes, strict=True))
    return done
