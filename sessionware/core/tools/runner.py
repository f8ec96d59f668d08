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
Anthropic ``tool_use`` blocks, ``ToolCall`` models); the assistant message is recorded
unless the session already has it; each call is screened (unknown tool, arguments not a
JSON object), checked by the guard chain (which may repair or block it) and looked up in
the cache; the rest run concurrently through the ``ToolExecutor``; numeric results get a
``$vN`` binding; every result is recorded as a ``TOOL_CALL`` event, in call order, in
one append. The session's ``ToolLedger`` folds those events into the state guards and
procedural memory read, so the same happens when the session is reloaded elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from typing import Any

from pydantic import BaseModel, ConfigDict

from sessionware.core.errors import InvalidSessionOperation, SessionwareError
from sessionware.core.session.enums import Durability
from sessionware.core.session.manager import SessionManager
from sessionware.core.session.state import SessionState
from sessionware.core.tools._loop import BackgroundLoop
from sessionware.core.tools.bindings import bindable
from sessionware.core.tools.cache import CachePolicy
from sessionware.core.tools.executor import RetryPolicy, ToolExecutor, refusal
from sessionware.core.tools.guards.base import Guard, GuardChain, GuardContext
from sessionware.core.tools.guards.defaults import default_guards
from sessionware.core.tools.ledger import ToolLedger, ledger_for
from sessionware.core.tools.models import ToolFormat, ToolInvocation, ToolResult, ToolStatus
from sessionware.core.tools.parsing import AssistantTurn, parse_assistant_message
from sessionware.core.tools.procedural.memory import ProceduralMemory
from sessionware.core.tools.recording import ensure_assistant_message, result_drafts
from sessionware.core.tools.records import record_from_result
from sessionware.core.tools.registry import Tool, ToolRegistry
from sessionware.core.tools.render import (
    anthropic_tool_result_blocks,
    anthropic_tool_result_message,
    openai_tool_messages,
)
from sessionware.core.tools.text import args_key

__all__ = ["SessionLike", "ToolRound", "ToolRunner"]

logger = logging.getLogger(__name__)

SessionLike = SessionManager | SessionState | None


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

    ``guards``: None for ``default_guards()``, an empty sequence for none, or your own
    chain. ``cache``: a ``CachePolicy`` to reuse successful results of identical calls
    (off by default). ``timeout``, ``retry`` and ``max_concurrency`` go to the
    ``ToolExecutor``. A runner holds no per-session state: that lives in each session.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        guards: GuardChain | Iterable[Guard] | None = None,
        cache: CachePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.executor = ToolExecutor(registry, timeout=timeout, retry=retry, max_concurrency=max_concurrency)
        if guards is None:
            self.guards = default_guards()
        else:
            self.guards = guards if isinstance(guards, GuardChain) else GuardChain(guards)
        self.cache = cache
        self._clock = clock
        # Calls run without a session still get guards, bindings and memory, in this ledger.
        self._detached = ToolLedger()
        self._detached_lock = threading.RLock()
        self._background = BackgroundLoop("sessionware-tools")

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
        raise InvalidSessionOperation(
            "run_tools",
            f"session must be a SessionManager, a SessionState or None, not {type(session).__name__}",
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
        """Execute the tool calls of ``message`` and log them in ``session`` (None: no log).

        Returns a ``ToolRound`` whose ``messages()`` go back to the model. Tool failures,
        timeouts, invalid arguments and guard blocks are results, not exceptions; a
        message whose calls cannot be read at all raises ``ToolProcessingError``.
        """
        turn = parse_assistant_message(message)
        state = await self._state(session)
        if not turn.calls:
            return ToolRound(format=turn.format, session_id=state.id if state else None)
        ledger, lock = self._ledger(state)
        with lock:
            if state is not None:
                self._announce(state, turn)
            planned = self._plan(turn, ledger)
        pending = [p for p in planned if isinstance(p, _Pending)]
        executed = iter(await self.executor.execute([p.call for p in pending]))
        results = [
            next(executed).model_copy(update={"warnings": p.warnings}) if isinstance(p, _Pending) else p
            for p in planned
        ]
        with lock:
            results = self._finish(results, ledger, state)
        if isinstance(session, SessionManager) and session.durability is Durability.SYNC:
            await session.flush()
        return ToolRound(format=turn.format, session_id=state.id if state else None, results=tuple(results))

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

    def _plan(self, turn: AssistantTurn, ledger: ToolLedger) -> list[ToolResult | _Pending]:
        planned: list[ToolResult | _Pending] = []
        accepted: list[ToolInvocation] = []
        for call in turn.calls:
            screened = self.executor.screen(call)
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
            accepted.append(outcome.call)
            hit = self._cached(ledger, outcome.call)
            if hit is not None:
                planned.append(
                    hit.model_copy(
                        update={
                            "call_id": call.id,
                            "cached": True,
                            "attempts": 0,
                            "latency_ms": 0.0,
                            "warnings": outcome.warnings,
                        }
                    )
                )
                continue
            planned.append(_Pending(call=outcome.call, warnings=outcome.warnings))
        return planned

    def _cache_key(self, tool_name: str, arguments: Any) -> tuple[str, str] | None:
        tool: Tool | None = self.registry.get(tool_name)
        if self.cache is None or tool is None or not tool.cacheable:
            return None
        return tool_name, args_key(arguments)

    def _cached(self, ledger: ToolLedger, call: ToolInvocation) -> ToolResult | None:
        key = self._cache_key(call.name, call.arguments)
        if key is None or self.cache is None:
            return None
        return ledger.cache.get(key, policy=self.cache, turn=ledger.turn, now=self._clock())

    def _finish(
        self, results: list[ToolResult], ledger: ToolLedger, state: SessionState | None
    ) -> list[ToolResult]:
        final: list[ToolResult] = []
        for result in results:
            if result.ok and not result.cached:
                key = self._cache_key(result.tool, result.arguments)
                if key is not None and self.cache is not None:
                    ledger.cache.put(key, result, policy=self.cache, turn=ledger.turn, now=self._clock())
            final.append(self._bind(result, ledger))
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
