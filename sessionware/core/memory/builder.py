"""The context builder: what a managed call sends, inside a hard token budget.

``build(state, model=..., budget=..., incoming_messages=...)`` returns the message list
(and, for Anthropic, the system blocks), the VM tools to add and a typed report.

``incoming_messages`` is the latest turn the app is sending now and the session has
not recorded yet: usually one user message, or the tool results answering the last
assistant tool calls in the log (then that assistant message is kept verbatim just
before them). It is in the provider's own shape, never includes the app's system
prompt (that comes from the session), and is always sent verbatim and last. Pass
``None`` when the log already holds the latest turn.

The layout, in order: the app's system prompt (verbatim), the memory block (rules,
manifest, summaries, pinned items; it only changes on compaction or pins), the recent
turns verbatim (append-only between compactions), the recall region (the pages that
best match the incoming message, and pages recalled by memory calls on earlier turns;
``ContextPolicy.recall``), then the incoming turn. Everything before the recall region
is what the next call sends again, so a provider's prompt cache reads it; the region
sits right before the incoming message, or before the latest turn when the incoming
messages are tool results (never between a tool call and its results). An OpenAI
request carries the region as a system message; an Anthropic one as the first text
block of the user message it precedes.

>>> from sessionware.core.store import MemoryBackend, Store
>>> from sessionware.core.session.registry import registry_for
>>> from sessionware.core.session.enums import EventSource, EventType, Role
>>> state = registry_for(Store(MemoryBackend())).open("doc")
>>> _ = state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="Hi")
>>> ctx = build(state, model="gpt-4o-mini", budget=2000)
>>> [m["role"] for m in ctx.messages], ctx.report.tokens <= 2000
(['system', 'user'], True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sessionware.core.memory import checkpoint
from sessionware.core.memory.assemble import Assembly
from sessionware.core.memory.enums import Provider
from sessionware.core.memory.models import BuiltContext
from sessionware.core.memory.plan import Plan, plan_for
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.memory.request import BuildRequest, Message, answered_ids, opens_turn
from sessionware.core.memory.vm import VirtualMemory
from sessionware.core.session.state import SessionState

__all__ = ["abuild", "build"]

logger = logging.getLogger(__name__)


class _HasState(Protocol):
    @property
    def state(self) -> SessionState: ...


def _state_of(target: SessionState | _HasState) -> SessionState:
    return target if isinstance(target, SessionState) else target.state


def build(
    target: SessionState | _HasState,
    *,
    model: str,
    budget: int | None = None,
    incoming_messages: Sequence[Message] | None = None,
    provider: Provider | str = Provider.OPENAI,
    tools: Sequence[Message] | None = None,
    policy: ContextPolicy | None = None,
) -> BuiltContext:
    """Build the context for the next call of ``target``'s session (see the module doc).

    ``tools`` are the app's own tool schemas: they are not returned, but they count
    against the budget. ``policy`` replaces the session's memory policy. Raises
    ``TokenLimitExceeded`` when the system prompt, the app's tools and the incoming turn
    alone exceed the budget, and ``InvalidSessionOperation`` for incoming tool results
    that answer no tool call of the session.

    Summaries made here are always the offline extractive ones: an async
    ``summarize_fn`` cannot be awaited from sync code without an event loop per call, so
    it is used only by ``abuild`` (a warning says so once per session when one is set).
    """
    return _build(
        _state_of(target),
        policy,
        model=model,
        budget=budget,
        incoming=incoming_messages,
        provider=Provider(provider),
        app_tools=tools,
        summaries_awaited=False,
    )


def _build(
    state: SessionState,
    policy: ContextPolicy | None,
    *,
    model: str,
    budget: int | None,
    incoming: Sequence[Message] | None,
    provider: Provider,
    app_tools: Sequence[Message] | None,
    summaries_awaited: bool,
) -> BuiltContext:
    vm = VirtualMemory.attach(state, policy)
    with vm.lock:
        if checkpoint.wanted(vm):
            vm.load_pages()
        checkpoint.take(vm)
        vm.sync()
        if vm.pages_wanted():
            vm.load_pages()
        request = BuildRequest(
            vm, model=model, budget=budget, incoming=incoming, provider=provider, app_tools=app_tools
        )
        request.check()
        plan = _plan(request)
        compactions = plan.advance()
        if plan.pending_llm and not summaries_awaited:
            # Sync code cannot await the app's summariser: keep the extractive summaries.
            plan.pending_llm.clear()
            if not vm.warned_sync_summaries:
                vm.warned_sync_summaries = True
                logger.warning(
                    "session %s: summarize_fn is async and only used by abuild; build() keeps the "
                    "offline extractive summaries",
                    state.id,
                )
        built = _run(request, plan, compactions)
        vm.sync()  # the compactions this build recorded
        if checkpoint.write_due(vm):
            checkpoint.write(vm)
        return built


async def abuild(
    target: SessionState | _HasState,
    *,
    model: str,
    budget: int | None = None,
    incoming_messages: Sequence[Message] | None = None,
    provider: Provider | str = Provider.OPENAI,
    tools: Sequence[Message] | None = None,
    policy: ContextPolicy | None = None,
) -> BuiltContext:
    """``build`` for async code: summaries are written by the policy's ``summarize_fn``
    (awaited here, outside the memory's lock) instead of the offline extractive compressor.

    A summary the function fails to write keeps its extractive text; written summaries
    are persisted with the session's pages, so a reloaded session sends the same prefix.
    """
    state = _state_of(target)
    vm = VirtualMemory.attach(state, policy)
    kind = Provider(provider)
    fn = vm.policy.summarize_fn
    with vm.lock:
        fresh = checkpoint.wanted(vm)
    if fresh:
        await vm.aload_pages()
    with vm.lock:
        checkpoint.take(vm)
        vm.sync()
        wanted = vm.pages_wanted()
    if wanted:
        await vm.aload_pages()
    if fn is not None:
        with vm.lock:
            vm.sync()
            plan = _plan(
                BuildRequest(
                    vm, model=model, budget=budget, incoming=incoming_messages, provider=kind, app_tools=tools
                )
            )
            plan.advance()
            pending, plan.pending_llm = plan.pending_llm, []
        for page_id, source, max_tokens in pending:
            try:
                text = await fn(source, max_tokens)
            except Exception:  # a failing summariser keeps the extractive summary
                logger.exception("summarize_fn failed for %s; keeping the extractive summary", page_id)
                continue
            with vm.lock:
                plan.replace_summary(page_id, text, max_tokens)
    return _build(
        state,
        None,
        model=model,
        budget=budget,
        incoming=incoming_messages,
        provider=kind,
        app_tools=tools,
        summaries_awaited=True,
    )


def _plan(request: BuildRequest) -> Plan:
    return plan_for(
        request.vm,
        provider=request.provider,
        counter=request.counter,
        counter_key=request.counter_key,
        budget=request.budget,
        system_tokens=request.system_tokens,
        tools_tokens=request.tools_tokens,
        block_overhead=request.block_overhead,
    )


def _run(request: BuildRequest, plan: Plan, compactions: int) -> BuiltContext:
    vm = request.vm
    opens = opens_turn(request.incoming, request.provider)
    vm.turn_hint = len(vm.turns) if opens else vm.current_turn
    query, vm.call_key = request.query()
    vm.counts["builds"] += 1
    assembly = Assembly(
        vm,
        plan,
        request,
        answered=answered_ids(request.incoming, request.provider),
        query_text=query,
    )
    return assembly.finish(compactions)
