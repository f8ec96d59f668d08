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
turns verbatim, pages recalled on earlier turns or by demand paging, then the
incoming turn.

>>> from sessionware.core.store import MemoryBackend, Store
>>> from sessionware.core.session.registry import registry_for
>>> from sessionware.core.session.enums import EventSource, EventType, Role
>>> state = registry_for(Store(MemoryBackend())).open_sync("doc")
>>> _ = state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="Hi")
>>> ctx = build(state, model="gpt-4o-mini", budget=2000)
>>> [m["role"] for m in ctx.messages], ctx.report.tokens <= 2000
(['system', 'user'], True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sessionware.core.accounting.tokens import REPLY_PRIMING_TOKENS, counter_for_model
from sessionware.core.defaults import default_price_book
from sessionware.core.errors import InvalidSessionOperation, StorageError, TokenLimitExceeded
from sessionware.core.memory.assemble import Assembly
from sessionware.core.memory.enums import Provider
from sessionware.core.memory.layout import is_compact, plan_for
from sessionware.core.memory.models import BuiltContext
from sessionware.core.memory.plan import Plan
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.memory.prompts import vm_tools
from sessionware.core.memory.vm import VirtualMemory
from sessionware.core.session.state import SessionState

__all__ = ["abuild", "build"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]


class _HasState(Protocol):
    @property
    def state(self) -> SessionState: ...


def _state_of(target: SessionState | _HasState) -> SessionState:
    return target if isinstance(target, SessionState) else target.state


def _answered_ids(messages: Sequence[Message], provider: Provider) -> tuple[str, ...]:
    ids: list[str] = []
    for msg in messages:
        if provider is Provider.OPENAI and msg.get("role") == "tool":
            ids.append(str(msg.get("tool_call_id", "")))
        content = msg.get("content")
        if provider is Provider.ANTHROPIC and isinstance(content, list):
            ids.extend(
                str(b.get("tool_use_id"))
                for b in content
                if isinstance(b, dict) and b.get("type") == "tool_result"
            )
    return tuple(ids)


def _opens_turn(messages: Sequence[Message], provider: Provider) -> bool:
    """True when ``messages`` hold a new user message (not only tool results)."""
    for msg in messages:
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if provider is Provider.OPENAI or not isinstance(content, list):
            return True
        if any(isinstance(b, dict) and b.get("type") != "tool_result" for b in content):
            return True
    return False


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
        vm.sync()
        run = _Build(
            vm, model=model, budget=budget, incoming=incoming, provider=provider, app_tools=app_tools
        )
        run.check()
        plan = run.plan()
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
        return run.run(plan, compactions)


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
    if fn is not None and not vm.pages_loaded:
        try:
            vm.restore(await state.store.load_pages(state.id))
        except StorageError:  # without them, summaries are written again
            logger.exception("could not load the persisted pages of session %s", state.id)
            vm.pages_loaded = True
    if fn is not None:
        with vm.lock:
            vm.sync()
            plan = _Build(
                vm, model=model, budget=budget, incoming=incoming_messages, provider=kind, app_tools=tools
            ).plan()
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


class _Build:
    def __init__(
        self,
        vm: VirtualMemory,
        *,
        model: str,
        budget: int | None,
        incoming: Sequence[Message] | None,
        provider: Provider,
        app_tools: Sequence[Message] | None,
    ) -> None:
        self.vm = vm
        self.model = model
        self.provider = provider
        self.counter = counter_for_model(model)
        self.counter_key = getattr(self.counter, "encoding_name", f"estimate:{model}")
        if budget is None:
            window = default_price_book().context_window(model, provider.value)
            budget = vm.policy.input_budget(context_window=window)
        self.budget = budget
        self.incoming = [dict(m) for m in incoming or ()]
        self.incoming_counts: list[int] = []
        self.app_tools = list(app_tools or ())
        self.prompt = vm.state.info.system_prompt or ""
        anthropic = provider is Provider.ANTHROPIC
        compact = is_compact(vm.policy, budget)
        self.vm_tools = vm_tools(anthropic=anthropic, compact=compact) if vm.policy.tools_enabled else []
        self.app_tools_tokens = self.counter.count_tools(self.app_tools) if self.app_tools else 0
        self.tools_tokens = self.app_tools_tokens
        if self.vm_tools:
            # The VM's schemas are constants: count them once per shape, not every build.
            key = (self.counter_key, anthropic, compact)
            known = vm.tool_tokens.get(key)
            if known is None:
                known = vm.tool_tokens[key] = self.counter.count_tools(self.vm_tools)
            self.tools_tokens += known
        # The prompt is the same on nearly every build: counted once per counter and shape.
        prompt_key = (self.counter_key, anthropic, self.prompt)
        known_prompt = vm.prompt_tokens.get(prompt_key)
        if known_prompt is None:
            if len(vm.prompt_tokens) >= 8:
                vm.prompt_tokens.clear()
            known_prompt = vm.prompt_tokens[prompt_key] = self._prompt_tokens(anthropic)
        self.system_tokens, self.block_overhead = known_prompt

    def _prompt_tokens(self, anthropic: bool) -> tuple[int, int]:
        """Tokens of the system prompt as sent (reply priming included), and of the framing
        of a system message of ours."""
        count = self.counter.count_text
        if anthropic:
            return REPLY_PRIMING_TOKENS + 3 + count("system") + count(self.prompt), 0
        prompt_msg = (
            self.counter.count_message({"role": "system", "content": self.prompt}) if self.prompt else 0
        )
        return REPLY_PRIMING_TOKENS + prompt_msg, 3 + count("system")

    def plan(self) -> Plan:
        return plan_for(
            self.vm,
            provider=self.provider,
            counter=self.counter,
            counter_key=self.counter_key,
            budget=self.budget,
            system_tokens=self.system_tokens,
            tools_tokens=self.tools_tokens,
            block_overhead=self.block_overhead,
        )

    def check(self) -> None:
        """Refuse bad input before anything is planned."""
        if self.provider is Provider.ANTHROPIC and any(m.get("role") == "system" for m in self.incoming):
            raise InvalidSessionOperation("build", "Anthropic incoming messages cannot have the system role")
        self.incoming_counts = [self.counter.count_message(m) for m in self.incoming]
        required = self.system_tokens + sum(self.incoming_counts) + self.app_tools_tokens
        if required > self.budget:
            raise TokenLimitExceeded(self.budget, required, what="system prompt + incoming messages")

    def run(self, plan: Plan, compactions: int) -> BuiltContext:
        incoming_counts = self.incoming_counts
        vm = self.vm
        opens = _opens_turn(self.incoming, self.provider)
        vm.turn_hint = len(vm.turns) if opens else vm.current_turn
        vm.counts["builds"] += 1
        assembly = Assembly(
            vm,
            plan,
            self,
            incoming=self.incoming,
            incoming_counts=incoming_counts,
            answered=_answered_ids(self.incoming, self.provider),
            query_text=self._query_text(opens),
        )
        return assembly.finish(compactions)

    def _query_text(self, opens: bool) -> str:
        """The user's latest words, for demand paging."""
        source: list[Message] = self.incoming if opens else []
        for msg in source:
            if msg.get("role") == "user":
                content = msg.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        if not self.incoming and self.vm.turns:
            events = self.vm.turns[-1].events
            if events and len(events) == 1:
                return events[0].text
        return ""
