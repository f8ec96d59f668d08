"""``ToolRunner``: execute an assistant message's tool calls, guarded, cached and logged in the session.

>>> import asyncio
>>> from sessionware import SessionManager
>>> registry = ToolRegistry()
>>> @registry.tool
... def add(a: float, b: float) -> float:
...     '''Add two numbers.'''
...     return a + b
>>> async def demo():
...     sm = SessionManager(store="memory://")
...     await sm.user_says("What is 2 + 2?")
...     function = {"name": "add", "arguments": '{"a": 2, "b": 2}'}
...     call = {"id": "call_1", "type": "function", "function": function}
...     reply = {"role": "assistant", "content": None, "tool_calls": [call]}
...     done = await ToolRunner(registry).run(sm, reply)
...     return done.openai_messages(), (await sm.get_stats()).tool_calls
>>> asyncio.run(demo())
([{'role': 'tool', 'tool_call_id': 'call_1', 'content': '4.0'}], 1)

One round, step by step: the calls are read from the message (OpenAI ``tool_calls``,
Anthropic ``tool_use`` blocks, ``ToolCall`` models, or tool calls written as XML, JSON or
function-call text, read by the engine's parsers); the assistant message is recorded
unless the session already has it; each call is screened (unknown tool, arguments not a
JSON object), checked by the guard chain (which may repair or block it) and validated
against its tool's schema; the rest run concurrently through the engine,
chuk-tool-processor's ``ToolProcessor`` (see ``execution``), whose layers retry
transient failures and answer identical calls from the cache; numeric results get a
``$vN`` binding; every result is recorded as a ``TOOL_CALL`` event, in call order, in
one append. The session's ``ToolLedger`` folds those events into the state guards and
procedural memory read, so the same happens when the session is reloaded elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from sessionware.core.errors import InvalidSessionOperation, SessionwareError
from sessionware.core.session.enums import Durability
from sessionware.core.session.manager import SessionManager
from sessionware.core.session.models import ErrorInfo
from sessionware.core.session.state import SessionState
from sessionware.core.tools._loop import BackgroundLoop
from sessionware.core.tools.bindings import bindable
from sessionware.core.tools.guards.base import Guard, GuardContext, GuardVerdict
from sessionware.core.tools.guards.chain import GuardChain
from sessionware.core.tools.guards.defaults import default_guards
from sessionware.core.tools.ledger import ToolLedger, ledger_for
from sessionware.core.tools.models import ToolFormat, ToolInvocation, ToolResult, ToolStatus, refusal
from sessionware.core.tools.parsing import AssistantTurn, parse_assistant_message, parse_text_calls
from sessionware.core.tools.policies import CachePolicy, RetryPolicy, ToolSchedule
from sessionware.core.tools.procedural.memory import ProceduralMemory
from sessionware.core.tools.recording import ensure_assistant_message, logged_by_runner, result_drafts
from sessionware.core.tools.records import record_from_result
from sessionware.core.tools.registry import ToolRegistry
from sessionware.core.tools.render import (
    anthropic_tool_result_blocks,
    anthropic_tool_result_message,
    openai_tool_messages,
)
from sessionware.core.tools.text import args_key

if TYPE_CHECKING:
    from chuk_tool_processor import ToolProcessor

    from sessionware.core.tools.engine import Outcome
    from sessionware.core.tools.execution import EngineExecutor, ToolIsolation

__all__ = ["LiveSession", "SessionLike", "ToolRound", "ToolRunner"]

logger = logging.getLogger(__name__)


class LiveSession(Protocol):
    """A session named by its live state: what ``sessionware.current_session()`` returns,
    the session a wrapped client records into."""

    @property
    def state(self) -> SessionState: ...


SessionLike = SessionManager | SessionState | LiveSession | None


class ToolRound(BaseModel):
    """The results of one assistant message's tool calls, ready to send back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: ToolFormat
    session_id: str | None = None
    results: tuple[ToolResult, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every call succeeded."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[ToolResult]:
        return [r for r in self.results if not r.ok]

    def openai_messages(self) -> list[dict[str, Any]]:
        """``tool`` messages to append after the assistant message (OpenAI chat)."""
        return openai_tool_messages(self.results)

    def anthropic_blocks(self) -> list[dict[str, Any]]:
        return anthropic_tool_result_blocks(self.results)

    def anthropic_message(self) -> dict[str, Any]:
        """The ``user`` message of ``tool_result`` blocks (Anthropic Messages)."""
        return anthropic_tool_result_message(self.results)

    def messages(self) -> list[dict[str, Any]]:
        """What to append to the conversation in the format the calls came in."""
        if self.format is ToolFormat.ANTHROPIC:
            return [self.anthropic_message()] if self.results else []
        return self.openai_messages()

    def raise_for_errors(self) -> None:
        """Raise ``ToolProcessingError`` for the first call that did not succeed."""
        for result in self.results:
            result.raise_for_error()


class _Pending(BaseModel):
    model_config = ConfigDict(frozen=True)

    call: ToolInvocation
    warnings: tuple[str, ...] = ()


class ToolRunner:
    """Tool execution with session logging, guards, a result cache and procedural memory.

    Tools come from ``registry`` (functions with typed signatures) and, with
    ``processor``, from an application's own ``chuk_tool_processor.ToolProcessor`` (MCP
    servers, its registry, its strategy and resilience settings, which then apply; the
    registry's tools are added to its registry). Without one, the runner builds its own:
    ``timeout`` per call in seconds (a tool's own ``timeout`` wins; None: no limit),
    ``retry`` for transient failures (``RetryPolicy``; once by default), ``cache`` to
    reuse successful results of identical calls (``CachePolicy``; off by default),
    ``max_concurrency`` calls at once, and ``isolation`` in process or in worker
    processes. ``schedule`` plans each batch with the engine's scheduler (pools,
    deadlines, budgets; ``ToolSchedule``). ``guards``: None for ``default_guards()``, an
    empty sequence for none, or your own chain (the engine's guards fit in it too). A
    runner holds no per-session state: that lives in each session. The engine is
    imported on the first run.
    """

    def __init__(
        self,
        registry: ToolRegistry | None = None,
        *,
        processor: ToolProcessor | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        isolation: ToolIsolation | str = "in_process",
        guards: GuardChain | Iterable[Guard] | None = None,
        cache: CachePolicy | None = None,
        schedule: ToolSchedule | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1:
            raise InvalidSessionOperation(
                "ToolRunner", f"max_concurrency must be >= 1, got {max_concurrency}"
            )
        if timeout is not None and timeout <= 0:
            raise InvalidSessionOperation("ToolRunner", f"timeout must be positive or None, got {timeout}")
        if registry is None and processor is None:
            raise InvalidSessionOperation("ToolRunner", "give it a ToolRegistry, a ToolProcessor, or both")
        self.registry = registry if registry is not None else ToolRegistry()
        self.processor = processor
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_concurrency = max_concurrency
        self.isolation = str(isolation)
        if guards is None:
            self.guards = default_guards()
        else:
            self.guards = guards if isinstance(guards, GuardChain) else GuardChain(guards)
        self.cache = cache
        self.schedule = schedule
        self._clock = clock
        self._engine: EngineExecutor | None = None
        # Calls run without a session still get guards, bindings and memory, in this
        # ledger; each message is a turn of its own there.
        self._detached = ToolLedger()
        self._detached_lock = threading.RLock()
        self._background = BackgroundLoop("sessionware-tools")

    def engine(self) -> EngineExecutor:
        """The runner's way into the engine (imports it on first use)."""
        if self._engine is None:
            from sessionware.core.tools.execution import EngineExecutor, ToolIsolation

            self._engine = EngineExecutor(
                self.registry,
                processor=self.processor,
                timeout=self.timeout,
                retry=self.retry,
                cache=self.cache,
                max_concurrency=self.max_concurrency,
                isolation=ToolIsolation(self.isolation),
                clock=self._clock,
            )
        return self._engine

    # -- sessions ---------------------------------------------------------------------

    @staticmethod
    async def _state(session: SessionLike) -> SessionState | None:
        if session is None or isinstance(session, SessionState):
            return session
        if isinstance(session, SessionManager):
            try:
                return session.state
            except InvalidSessionOperation:
                await session.get_stats()  # the cheapest public call that opens the session
                return session.state
        state = getattr(session, "state", None)
        if isinstance(state, SessionState):
            return state
        raise InvalidSessionOperation(
            "run_tools",
            "session must be a SessionManager, a SessionState, a wrapped client's session "
            f"(sessionware.current_session()) or None, not {type(session).__name__}",
        )

    def _ledger(self, state: SessionState | None) -> tuple[ToolLedger, AbstractContextManager[Any]]:
        if state is None:
            return self._detached, self._detached_lock
        return ledger_for(state), state.lock

    async def ledger(self, session: SessionLike) -> ToolLedger:
        """The tool ledger of ``session`` (the runner's own when None)."""
        return self._ledger(await self._state(session))[0]

    async def memory(self, session: SessionLike) -> ProceduralMemory:
        """The procedural memory of ``session``."""
        return (await self.ledger(session)).memory

    async def hints(
        self,
        session: SessionLike,
        tools: Collection[str] | None = None,
        *,
        max_recent: int = 3,
        max_errors: int = 3,
        max_values: int = 20,
    ) -> str:
        """Context for the model before its next call: the ``<procedural_memory>`` block of
        ``tools`` (all with history by default) and the ``<tool_values>`` bindings, joined
        by a blank line; "" when there is nothing to say."""
        ledger, lock = self._ledger(await self._state(session))
        with lock:
            blocks = [
                ledger.memory.format_hints(tools, max_recent=max_recent, max_errors=max_errors),
                ledger.bindings.format_block(limit=max_values),
            ]
        return "\n\n".join(b for b in blocks if b)

    # -- running ----------------------------------------------------------------------

    async def run(self, session: SessionLike, message: Any) -> ToolRound:
        """Execute the tool calls of ``message`` and log them in ``session``: a
        ``SessionManager``, a wrapped client's ``sessionware.current_session()``, or None
        for no log (the runner's own ledger then keeps guards, bindings and memory, each
        message a turn).

        ``message`` is an assistant message in any provider shape, or text with tool
        calls written as XML, JSON or a function call (read by the engine's parsers).
        Returns a ``ToolRound`` whose ``messages()`` go back to the model. Tool failures,
        timeouts, invalid arguments and guard blocks are results, not exceptions; a
        message whose calls cannot be read at all raises ``ToolProcessingError``.
        """
        engine = self.engine()
        turn = (
            await parse_text_calls(message) if isinstance(message, str) else parse_assistant_message(message)
        )
        state = await self._state(session)
        if not turn.calls:
            return ToolRound(format=turn.format, session_id=state.id if state else None)
        names = await engine.names()
        if any(call.name not in names for call in turn.calls):
            names = await engine.names(refresh=True)  # an MCP server may have added tools
        ledger, lock = self._ledger(state)
        with lock:
            if state is not None:
                self._announce(state, turn)
            else:
                # No session, no user turns to see: each message is a turn of its own, or
                # the per-turn budget and loop checks would run out for good.
                ledger.start_turn()
            planned = self._plan(turn, ledger, names)
            scope = self._scope(state, ledger)
        if state is None:
            results = await self._execute(engine, planned, scope)
        else:
            with logged_by_runner():  # an app's wrapped processor must not log them again
                results = await self._execute(engine, planned, scope)
        with lock:
            results = self._finish(results, ledger, state)
        if isinstance(session, SessionManager) and session.durability is Durability.SYNC:
            await session.flush()
        return ToolRound(format=turn.format, session_id=state.id if state else None, results=tuple(results))

    async def _execute(
        self, engine: EngineExecutor, planned: list[ToolResult | _Pending], scope: str
    ) -> list[ToolResult]:
        """Run the planned calls through the engine: each one's result, in call order."""
        pending = [p for p in planned if isinstance(p, _Pending)]
        if self.schedule is not None and pending:
            from sessionware.core.tools.execution import run_scheduled

            done = await run_scheduled(engine, [p.call for p in pending], self.schedule, scope=scope)
            return [
                self._scheduled(p, done.get(p.call.id)) if isinstance(p, _Pending) else p for p in planned
            ]
        if len(pending) == 1:  # the usual message: no task to start for one call
            outcomes = iter([await engine.run(pending[0].call, scope=scope)])
        else:
            outcomes = iter(await asyncio.gather(*(engine.run(p.call, scope=scope) for p in pending)))
        return [self._result(p, next(outcomes)) if isinstance(p, _Pending) else p for p in planned]

    def _scope(self, state: SessionState | None, ledger: ToolLedger) -> str:
        from sessionware.core.tools.execution import scope_key

        if state is None:  # the runner's own cache, its turns aside (each message is one)
            return scope_key(f"runner-{id(self)}", 0, self.cache)
        return scope_key(state.id, ledger.turn, self.cache)

    def _scheduled(self, pending: _Pending, done: Outcome | str | None) -> ToolResult:
        if isinstance(done, str) or done is None:
            reason = done or "not in the scheduler's plan"
            return refusal(pending.call, ToolStatus.BLOCKED, "Blocked", reason, guard="scheduler")
        return self._result(pending, done)

    def _result(self, pending: _Pending, done: Outcome) -> ToolResult:
        call = pending.call
        status, value, error, guard = done.status, done.value, done.error, None
        warnings = list(pending.warnings)
        if status is ToolStatus.SUCCESS:
            value, decisions = self.guards.check_output(call, value)
            warnings.extend(
                f"{d.guard}: {d.reason}" for d in decisions if d.verdict is not GuardVerdict.BLOCK
            )
            blocked = next((d for d in decisions if d.verdict is GuardVerdict.BLOCK), None)
            if blocked is not None:
                status, value, guard = ToolStatus.BLOCKED, None, blocked.guard
                error = ErrorInfo(type="Blocked", message=blocked.reason)
        return ToolResult(
            call_id=call.id,
            tool=call.name,
            status=status,
            arguments=call.arguments,
            result=value,
            error=error,
            latency_ms=done.latency_ms,
            attempts=done.attempts,
            cached=done.cached,
            warnings=tuple(warnings),
            guard=guard,
        )

    def run_sync(self, session: SessionLike, message: Any) -> ToolRound:
        """The blocking twin of ``run``, for sync apps (a sync SDK client, a script).

        Tools run on the runner's own event-loop thread, started on first use (``close``
        stops it); calling this inside a running event loop raises
        ``InvalidSessionOperation``: await ``run`` there instead.
        """
        return self._background.run("run_sync", self.run(session, message))

    def close(self) -> None:
        """Stop the event-loop thread ``run_sync`` started, if any (the runner stays usable)."""
        self._background.close()

    async def aclose(self) -> None:
        """Close the processors the runner built (worker processes of ``isolation="subprocess"``
        included); an application's own processor is the application's to close."""
        if self._engine is not None:
            await self._engine.aclose()

    def _plan(
        self, turn: AssistantTurn, ledger: ToolLedger, names: frozenset[str]
    ) -> list[ToolResult | _Pending]:
        planned: list[ToolResult | _Pending] = []
        accepted: list[ToolInvocation] = []
        for call in turn.calls:
            screened = self._screen(call, names)
            if screened is not None:
                planned.append(screened)
                continue
            outcome = self.guards.check(call, GuardContext(ledger, accepted))
            blocked = outcome.blocked_by
            if blocked is not None:
                planned.append(
                    refusal(
                        outcome.call,
                        ToolStatus.BLOCKED,
                        "Blocked",
                        blocked.reason,
                        guard=blocked.guard,
                        warnings=outcome.warnings,
                    )
                )
                continue
            invalid = self._validate(outcome.call)
            if invalid is not None:
                planned.append(invalid.model_copy(update={"warnings": outcome.warnings}))
                continue
            accepted.append(outcome.call)
            planned.append(_Pending(call=outcome.call, warnings=outcome.warnings))
        return planned

    def _screen(self, call: ToolInvocation, names: frozenset[str]) -> ToolResult | None:
        """The answer to a call that cannot run at all (unknown tool, arguments not a JSON
        object): screened before guards see it, and never handed to the engine, which
        would retry a tool it cannot find."""
        if call.name not in names:
            own = self.registry.names
            others = sorted(n for n in names if "." not in n and n not in own)
            available = ", ".join([*own, *others]) or "none"
            return refusal(
                call,
                ToolStatus.UNKNOWN_TOOL,
                "UnknownTool",
                f"unknown tool {call.name!r}; available tools: {available}",
            )
        if call.parse_error is not None:
            return refusal(call, ToolStatus.INVALID_ARGUMENTS, "InvalidArguments", call.parse_error)
        return None

    def _validate(self, call: ToolInvocation) -> ToolResult | None:
        """Arguments that do not fit a registry tool's schema never reach the engine."""
        tool = self.registry.get(call.name)
        if tool is None:
            return None  # an engine tool: its own schema checks apply
        try:
            tool.validate(call.arguments)
        except ValidationError as exc:
            from sessionware.core.tools.execution import validation_message

            return refusal(
                call, ToolStatus.INVALID_ARGUMENTS, "InvalidArguments", validation_message(tool, exc)
            )
        return None

    def _finish(
        self, results: list[ToolResult], ledger: ToolLedger, state: SessionState | None
    ) -> list[ToolResult]:
        final = [self._bind(result, ledger) for result in results]
        if state is not None and self._record(state, final):
            return final
        for result in final:
            novel = result.ok and ledger.is_novel(result.tool, args_key(result.arguments), result.result)
            ledger.apply(record_from_result(result, seq=ledger.next_seq(), turn=ledger.turn, novel=novel))
        return final

    @staticmethod
    def _bind(result: ToolResult, ledger: ToolLedger) -> ToolResult:
        """Name a numeric result ``$vN``; an identical call with the same value keeps its name."""
        if not (result.ok and bindable(result.result)):
            return result
        same = ledger.bindings.find(result.tool, args_key(result.arguments), result.result)
        return result.model_copy(update={"binding": same.id if same else ledger.bindings.allocate()})

    @staticmethod
    def _announce(state: SessionState, turn: AssistantTurn) -> None:
        """Log the assistant message unless the session has it; a refusal does not stop the tools."""
        try:
            ensure_assistant_message(state, turn)
        except SessionwareError as exc:
            logger.warning("assistant message of session %s was not recorded: %s", state.id, exc)

    @staticmethod
    def _record(state: SessionState, results: list[ToolResult]) -> bool:
        """Log the results; on failure keep going (the model still gets its answers)."""
        try:
            state.record_many(result_drafts(results))
        except SessionwareError as exc:
            logger.warning("tool results of session %s were not recorded: %s", state.id, exc)
            return False
        return True
