"""``sessionware.wrap(tool_processor)``: every execution of a chuk ``ToolProcessor`` logged.

The seed's session-aware tool processor, as middleware: the application keeps its own
``ToolProcessor`` (its registry, MCP sources, strategy, retries, cache, rate limits) and
wraps it in one line; the same object comes back. Every call it executes, through
``process()`` (OpenAI ``tool_calls``, XML, JSON or function-call text) or ``execute()``,
becomes a ``TOOL_CALL`` event of the current session: the call id (the provider's, when
the calls came from a model's ``tool_calls``), the arguments, the result or the error,
the time it took, the attempts the engine's retry layer made and whether the cache
answered. Tools from MCP servers are logged like any other.

How: the engine runs every execution through one chain of layers (``executor``, built
by ``initialize()``); a recording layer goes in front of it, so it sees the calls and
the results whatever the entry point. ``process(..., return_order=...)`` is the one path
that skips that chain (the engine hands it to the strategy directly): the strategy's
``run`` is observed for it. Its ``stream_run`` (results as each call completes, a
streaming tool's item by item) is observed too: each call is logged once, when the
stream ends, its items as its value. Nothing is recorded twice.

Which session: ``session_id=`` when given; else the innermost
``with sessionware.session(...)``; else the session the last wrapped model call of this
context recorded into, which is where the model asked for these tools; else one session
per wrapped processor. The assistant message that asked is recorded too unless the
session has it, so the log stays a valid conversation.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from sessionware.adapters.engine import background, guard
from sessionware.adapters.scope import active_scope, current_session, note_session
from sessionware.core.defaults import default_store
from sessionware.core.errors import SessionwareError
from sessionware.core.session.registry import registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store
from sessionware.core.tools.engine import outcome, tame_logging
from sessionware.core.tools.models import ToolFormat, ToolInvocation, ToolResult
from sessionware.core.tools.parsing import AssistantTurn
from sessionware.core.tools.recording import ensure_assistant_message, result_drafts, runner_is_logging

__all__ = ["is_wrapped_processor", "unwrap_processor", "wrap_processor"]

logger = logging.getLogger(__name__)

_ATTR = "_sessionware_tools"

# True while the recording layer runs: the strategy below it must not record again.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("sessionware_tools_inside", default=False)


class _Recorder:
    """The wrapped processor's settings and its session choice."""

    def __init__(self, session_id: str | None, store: Store | None) -> None:
        self.session_id = session_id
        self.store = store
        self.fallback_id = f"tools-{uuid.uuid4().hex[:16]}"
        self.enabled = True
        self._last: tuple[tuple[Any, ...], SessionState] | None = None

    def _state(self) -> SessionState:
        scope = None
        if self.session_id is not None:
            target, store = self.session_id, self.store
        else:
            scope = active_scope()
            handle = scope.handle if scope is not None else current_session()
            if handle is not None:
                target, store = handle.id, self.store or handle.store
            else:
                target, store = self.fallback_id, self.store
        store = store if store is not None else default_store()
        registry = registry_for(store)
        # Most executions go where the previous one went: that state, while the registry
        # forgot nothing (a delete), without looking it up again.
        key = (target, store, scope, registry.generation)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        if scope is not None:
            scope.handle.bind(store)  # the scope's handle reads where its calls went
        state = registry.open(target)
        note_session(state)
        self._last = (key, state)
        return state

    def record(self, calls: Sequence[Any], results: Sequence[Any], elapsed_ms: float | None) -> None:
        """Log ``results`` (paired with their ``calls``) in the session; never raises.
        ``elapsed_ms``: the execution's whole time, or None to read each result's own.

        On the app's path only the session is chosen (it depends on the caller's context)
        and the record queued on it; the recorder thread writes it, and any read of the
        session writes it first, as for a wrapped client's calls.
        """
        if not self.enabled or not calls or runner_is_logging():
            return  # a ToolRunner logging into a session runs these calls: it logs them
        try:
            state = self._state()
            work = partial(self._write, state, list(calls), list(results), elapsed_ms)
            if state.defer(work):
                background.schedule(state)
        except SessionwareError as exc:
            logger.warning("tool executions were not recorded: %s", exc)
        except Exception as exc:
            guard.report("a tool execution", exc)

    def _write(
        self, state: SessionState, calls: list[Any], results: list[Any], elapsed_ms: float | None
    ) -> None:
        try:
            self._record(state, calls, results, elapsed_ms)
        except SessionwareError as exc:
            logger.warning("tool executions of session %s were not recorded: %s", state.id, exc)
        except Exception as exc:
            guard.report("a tool execution", exc)

    def _record(
        self, state: SessionState, calls: list[Any], results: list[Any], elapsed_ms: float | None
    ) -> None:
        invocations = [_invocation(call) for call in calls]
        ours = []
        for invocation, result in zip(invocations, _pair(calls, results), strict=True):
            if result is None:
                continue
            done = outcome(result)
            # One call's own time is the execution's (retries and waits included).
            latency = elapsed_ms if len(calls) == 1 and elapsed_ms is not None else done.latency_ms
            ours.append(
                ToolResult(
                    call_id=invocation.id,
                    tool=invocation.name,
                    status=done.status,
                    arguments=invocation.arguments,
                    result=done.value,
                    error=done.error,
                    latency_ms=latency,
                    attempts=done.attempts,
                    cached=done.cached,
                )
            )
        if not ours:
            return
        with state.lock:
            turn = AssistantTurn(format=ToolFormat.OPENAI, calls=tuple(invocations))
            ensure_assistant_message(state, turn, recorded_by="tool_processor")
            state.record_many(result_drafts(ours))


def _invocation(call: Any) -> ToolInvocation:
    arguments = dict(call.arguments or {})
    return ToolInvocation(
        id=str(call.id),
        name=str(call.tool),
        arguments=arguments,
        raw_arguments=json.dumps(arguments, default=str, ensure_ascii=False),
    )


def _pair(calls: Sequence[Any], results: Sequence[Any]) -> list[Any | None]:
    """The result of each call: by call id where the engine kept it (strategies return in
    completion order), else by position among the rest (cache hits carry no call id)."""
    ids = {call.id for call in calls}
    by_id = {r.call_id: r for r in results if getattr(r, "call_id", None) in ids}
    rest = iter([r for r in results if getattr(r, "call_id", None) not in ids])
    return [by_id.get(call.id) or next(rest, None) for call in calls]


def _streamed(calls: Sequence[Any], results: Sequence[Any]) -> list[Any]:
    """One result per call of a ``stream_run``, whose results come in completion order, a
    streaming tool's as one result per item: the items of a call become its value (a
    list, or the item when there is one), its first failure its error, its time from the
    first start to the last end. A result without a call id (the subprocess strategy
    leaves it out) goes to the first call of its tool that has none yet."""
    by_call: dict[str, list[Any]] = {}
    ids = {call.id for call in calls}
    for result in results:
        call_id = getattr(result, "call_id", None)
        if call_id not in ids:
            match = next((c for c in calls if c.tool == result.tool and c.id not in by_call), None)
            if match is None:
                continue
            call_id = match.id
        by_call.setdefault(str(call_id), []).append(result)
    merged = []
    for call in calls:
        parts = by_call.get(call.id)
        if not parts:
            continue
        update: dict[str, Any] = {"call_id": call.id, "end_time": parts[-1].end_time}
        failed = next((p for p in parts if p.error is not None), None)
        if failed is not None:
            update.update(result=None, error=failed.error)
        elif len(parts) > 1:
            update["result"] = [p.result for p in parts]
        merged.append(parts[0].model_copy(update=update))
    return merged


class RecordingExecutor:
    """The head of a wrapped processor's chain: runs the chain, then logs what it did.

    ``executor`` is the layer below, under the name the engine's own layers use, so its
    ``close()`` still finds the cache to clear.
    """

    def __init__(self, executor: Any, recorder: _Recorder) -> None:
        self.executor = executor
        self.recorder = recorder
        # ToolProcessor.execute() passes use_cache= to the head of its chain, which a bare
        # strategy (no retry or cache layer) refuses: only pass it on to a layer that takes it.
        self._takes_cache_flag = "use_cache" in inspect.signature(executor.execute).parameters

    def __getattr__(self, name: str) -> Any:
        # Anything else an app reads on ``processor.executor`` is the layer below's, as
        # before the wrap (``stream_run`` of a bare strategy, a cache, ``close``).
        below = self.__dict__.get("executor")
        if below is None:  # not built yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(below, name)

    async def execute(
        self, calls: list[Any], *, timeout: float | None = None, use_cache: bool = True
    ) -> list[Any]:
        started = time.perf_counter()
        token = _inside.set(True)
        try:
            if self._takes_cache_flag:
                results = await self.executor.execute(calls, timeout=timeout, use_cache=use_cache)
            else:
                results = await self.executor.execute(calls, timeout=timeout)
        finally:
            _inside.reset(token)
        self.recorder.record(calls, results or [], (time.perf_counter() - started) * 1000)
        return results  # type: ignore[no-any-return]


def _recorded_stream(original: Any, recorder: _Recorder) -> Any:
    """A strategy's ``stream_run`` that logs each call once its stream ends (read to the
    end, closed or dropped early: what came by then)."""

    async def stream_run(calls: list[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        seen: list[Any] = []
        results = original(calls, *args, **kwargs).__aiter__()
        try:
            while True:
                # Only the strategy's own steps count as inside (a ``run`` it calls is this
                # stream's); the app's loop body between items does not.
                token = _inside.set(True)
                try:
                    result = await results.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    _inside.reset(token)
                seen.append(result)
                yield result
        finally:
            if not _inside.get():
                recorder.record(calls, _streamed(calls, seen), None)
            close = getattr(results, "aclose", None)
            if close is not None:
                await close()

    return stream_run


class _Installed:
    """What ``wrap`` changed on one processor, to undo it."""

    def __init__(self, processor: Any, recorder: _Recorder) -> None:
        self.processor = processor
        self.recorder = recorder
        self.initialize = processor.initialize
        self.run: Any = None
        self.stream_run: Any = None

    def attach(self) -> None:
        """Put the recording layer in front of the chain ``initialize()`` built (once)."""
        processor = self.processor
        if processor.executor is not None and not isinstance(processor.executor, RecordingExecutor):
            processor.executor = RecordingExecutor(processor.executor, self.recorder)
        strategy = processor.strategy
        if strategy is not None and self.run is None and hasattr(strategy, "run"):
            self.run = strategy.run
            original, recorder = strategy.run, self.recorder

            async def run(calls: list[Any], *args: Any, **kwargs: Any) -> Any:
                if _inside.get():
                    return await original(calls, *args, **kwargs)
                started = time.perf_counter()
                results = await original(calls, *args, **kwargs)
                recorder.record(calls, results or [], (time.perf_counter() - started) * 1000)
                return results

            strategy.__dict__["run"] = run
        if strategy is not None and self.stream_run is None and hasattr(strategy, "stream_run"):
            self.stream_run = strategy.stream_run
            strategy.__dict__["stream_run"] = _recorded_stream(strategy.stream_run, self.recorder)

    def detach(self) -> None:
        processor = self.processor
        processor.__dict__.pop("initialize", None)
        if isinstance(processor.executor, RecordingExecutor):
            processor.executor = processor.executor.executor
        if processor.strategy is not None:
            for name in ("run", "stream_run"):
                if getattr(self, name) is not None:
                    processor.strategy.__dict__.pop(name, None)
                    setattr(self, name, None)


def wrap_processor(processor: Any, *, session_id: str | None = None, store: Store | None = None) -> Any:
    """Log every execution of ``processor`` (see the module docstring); the same object back.

    Wrapping again only updates the settings.
    """
    installed: _Installed | None = processor.__dict__.get(_ATTR)
    if installed is not None:
        installed.recorder.session_id, installed.recorder.store = session_id, store
        installed.recorder.enabled = True
        return processor
    tame_logging()  # the application imported the engine: its logs follow the app's configuration
    installed = _Installed(processor, _Recorder(session_id, store))
    initialize = installed.initialize

    async def initialize_and_attach() -> None:
        await initialize()
        installed.attach()
        if processor.executor is not None:  # attached for good: process() calls initialize() every time
            processor.__dict__.pop("initialize", None)

    processor.__dict__[_ATTR] = installed
    if processor.executor is not None:
        installed.attach()  # a processor initialized before it was wrapped
    else:
        processor.__dict__["initialize"] = initialize_and_attach
    return processor


def unwrap_processor(processor: Any) -> Any:
    """Undo ``wrap_processor`` (a no-op on a processor that is not wrapped)."""
    installed: _Installed | None = processor.__dict__.pop(_ATTR, None)
    if installed is not None:
        installed.recorder.enabled = False
        installed.detach()
    return processor


def is_wrapped_processor(processor: Any) -> bool:
    installed: _Installed | None = processor.__dict__.get(_ATTR)
    return installed is not None and installed.recorder.enabled
