"""``SessionManager``: the async facade for tracking a conversation by hand.

>>> import asyncio
>>> async def demo():
...     sm = SessionManager(system_prompt="You are terse.")
...     await sm.user_says("What is 2+2?")
...     await sm.ai_responds("4", model="gpt-4o-mini")
...     return (await sm.get_stats()).total_messages
>>> asyncio.run(demo())
2
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sessionware.core.accounting.tokens import REPLY_PRIMING_TOKENS, counter_for_model
from sessionware.core.accounting.usage import TokenSource, TokenUsage
from sessionware.core.defaults import default_price_book, resolve_store
from sessionware.core.errors import InvalidSessionOperation
from sessionware.core.session.enums import Durability, EventSource, EventType, Role, RunStatus
from sessionware.core.session.inputs import (
    as_tool_calls,
    as_usage,
    check_content,
    check_storable,
    context_message,
)
from sessionware.core.session.messages import conversation_events, events_to_messages
from sessionware.core.session.models import (
    ErrorInfo,
    SessionEvent,
    SessionInfo,
    SessionRun,
    ToolCall,
    utcnow,
)
from sessionware.core.session.registry import SessionRegistry, registry_for
from sessionware.core.session.state import SessionState
from sessionware.core.session.stats import SessionStats
from sessionware.core.session.storable import check_session_id
from sessionware.core.store.base import DeleteSession
from sessionware.core.store.url import StoreLike

if TYPE_CHECKING:
    from sessionware.core.memory.enums import VMMode
    from sessionware.core.memory.models import BuiltContext, VMMetrics
    from sessionware.core.memory.policy import ContextPolicy, SummarizeFn
    from sessionware.core.session.segmentation import SegmentationPolicy

__all__ = ["SessionManager"]

DEFAULT_MODEL = "gpt-4o-mini"

# Enum members read once per recorded message: module constants (an Enum attribute lookup
# costs about as much as a dict lookup on the instance of a small class, twice over).
_MESSAGE, _USER_SOURCE, _LLM = EventType.MESSAGE, EventSource.USER, EventSource.LLM
_USER, _ASSISTANT, _SYNC = Role.USER, Role.ASSISTANT, Durability.SYNC


class SessionManager:
    """Track one conversation: messages, tool calls, tokens and cost, in a store.

    ``session_id`` given: that session is loaded, or created under that id if the store
    does not have it. Use ``await SessionManager.load(id)`` to require that it exists and
    ``await SessionManager.create(...)`` to require that it does not. Nothing touches the
    store until the first awaited call.

    ``store`` is a URL (``sqlite:///chat.db``), a ``Store`` or a backend; by default the
    process's default store. With ``durability="sync"`` each recording call returns only
    once the store has the event; by default writes are queued and land within a bounded
    delay (``await flush()`` waits for them).

    ``enable_vm=True`` keeps what ``get_messages_for_llm`` returns inside a token budget
    (``vm_config``, a ``ContextPolicy``; ``vm_mode`` and ``summarize_fn`` override its
    fields): recent turns verbatim, older ones summarised and recallable through the VM
    tools (``handle_vm_tool_call``). ``infinite_context=True`` rolls the conversation
    into child segments past ``token_threshold`` tokens or ``max_turns_per_segment``
    turns, each carrying a rolling summary of the earlier ones; ``session_id`` then
    follows the chain to its newest segment.

    Several processes may track one session at once: every read (``get_messages_for_llm``,
    ``build_context``, ``get_stats``...) first takes in what the others appended.
    Arguments a store cannot hold (a session id that is empty, unprintable or longer
    than 256 characters; text with lone surrogates; objects JSON cannot hold) raise
    ``InvalidSessionOperation`` naming the argument, and nothing is recorded.
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        store: StoreLike = None,
        system_prompt: str | None = None,
        parent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        default_model: str = DEFAULT_MODEL,
        durability: Durability | str = Durability.WRITE_BEHIND,
        enable_vm: bool = False,
        vm_mode: VMMode | str | None = None,
        vm_config: ContextPolicy | None = None,
        infinite_context: bool = False,
        token_threshold: int = 4000,
        max_turns_per_segment: int | None = None,
        summarize_fn: SummarizeFn | None = None,
    ) -> None:
        if session_id is not None:
            check_session_id(session_id, "SessionManager")
        if parent_id is not None:
            check_session_id(parent_id, "SessionManager")
        check_storable("SessionManager", "system_prompt", system_prompt)
        check_storable("SessionManager", "metadata", dict(metadata) if metadata else None)
        self._session_id = session_id or uuid.uuid4().hex
        self._explicit_id = session_id is not None
        self._store = resolve_store(store)
        self._registry: SessionRegistry = registry_for(self._store)
        self._pending_header: dict[str, Any] = {
            "parent_id": parent_id,
            "metadata": dict(metadata or {}),
            "system_prompt": system_prompt,
        }
        self._system_prompt_arg = system_prompt
        self.default_model = default_model
        self.durability = Durability(durability)
        self._state: SessionState | None = None
        # Tokens of the conversation so far, for estimates when a call reports no usage.
        # Events are counted only when an estimate needs them: with provider usage (every
        # wrapped call) nothing is tokenized or kept on the recording path.
        self._counted_tokens = 0
        self._counted_events = 0
        self._summarize_fn = summarize_fn
        self._vm_policy: ContextPolicy | None = None
        if enable_vm or vm_config is not None:
            from sessionware.core.memory.enums import VMMode as _Mode
            from sessionware.core.memory.policy import ContextPolicy as _Policy

            updates: dict[str, Any] = {}
            if vm_mode is not None:
                updates["mode"] = _Mode(vm_mode)
            if summarize_fn is not None:
                updates["summarize_fn"] = summarize_fn
            self._vm_policy = (vm_config or _Policy()).model_copy(update=updates)
        self._segmentation: SegmentationPolicy | None = None
        if infinite_context:
            from sessionware.core.session.segmentation import SegmentationPolicy as _Segments

            self._segmentation = _Segments(
                token_threshold=token_threshold, max_turns_per_segment=max_turns_per_segment
            )

    # -- construction -----------------------------------------------------------------

    @classmethod
    async def load(cls, session_id: str, *, store: StoreLike = None, **kwargs: Any) -> SessionManager:
        """Open an existing session; ``SessionNotFound`` if the store has no such id."""
        manager = cls(session_id, store=store, **kwargs)
        await manager._open(create=False)
        return manager

    @classmethod
    async def create(
        cls, session_id: str | None = None, *, store: StoreLike = None, **kwargs: Any
    ) -> SessionManager:
        """Create a new session; ``SessionAlreadyExists`` if the id is taken."""
        manager = cls(session_id, store=store, **kwargs)
        await manager._open(create=True)
        return manager

    @staticmethod
    async def list_sessions(
        *, store: StoreLike = None, parent_id: str | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        """Headers and totals of the store's sessions, newest first."""
        return await resolve_store(store).alist_sessions(parent_id=parent_id, limit=limit)

    async def _open(self, *, create: bool | None = None) -> SessionState:
        if self._state is None:
            state = await self._registry.aopen(self._session_id, create=create, **self._pending_header)
            if self._segmentation is not None and create is not True:
                from sessionware.core.session.segmentation import latest_segment

                latest = await latest_segment(self._store, state.info)
                if latest != state.id:
                    state = await self._registry.aopen(latest, create=False)
                    self._session_id = latest
            self._adopt(state)
        return self._require_state()

    def _adopt(self, state: SessionState) -> None:
        self._state = state
        if self._system_prompt_arg is not None and state.info.system_prompt != self._system_prompt_arg:
            self._set_prompt(state, self._system_prompt_arg)
        self._counted_tokens = self._counted_events = 0
        if self._vm_policy is not None:
            from sessionware.core.memory.vm import VirtualMemory

            VirtualMemory.attach(state, self._vm_policy)

    @property
    def _context_tokens(self) -> int:
        events = self._require_state().events
        if self._counted_events < len(events):
            count = counter_for_model(self.default_model).count_message
            self._counted_tokens += sum(
                count(context_message(e))
                for e in events[self._counted_events :]
                if e.type in (EventType.MESSAGE, EventType.TOOL_CALL)
            )
            self._counted_events = len(events)
        return self._counted_tokens

    async def _read(self) -> SessionState:
        """The open state, with what other writers appended taken in."""
        state = self._state or await self._open()
        await state.afollow()
        return state

    def _require_state(self) -> SessionState:
        assert self._state is not None
        return self._state

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def store(self) -> Any:
        return self._store

    @property
    def system_prompt(self) -> str | None:
        if self._state is not None:
            return self._state.info.system_prompt
        return self._system_prompt_arg

    @property
    def state(self) -> SessionState:
        """The live session state (after the first awaited call)."""
        if self._state is None:
            raise InvalidSessionOperation("state", "the session is not open yet; await any method first")
        return self._state

    async def _after_record(self) -> None:
        if self.durability is Durability.SYNC:
            await self._store.aflush()

    # -- recording --------------------------------------------------------------------

    async def user_says(self, message: str | list[dict[str, Any]], **metadata: Any) -> SessionEvent:
        """Record a user message. Keyword arguments are kept as event metadata."""
        content = check_content("user_says", message)
        if not (type(content) is str and content.isascii()):
            check_storable("user_says", "message", content)
        if metadata:
            check_storable("user_says", "metadata", metadata)
        state = self._state or await self._open()  # no coroutine per call once open
        if self._segmentation is not None:
            state = await self._maybe_roll_over(state)
        event = state.record(_MESSAGE, _USER_SOURCE, role=_USER, content=content, metadata=metadata)
        if self.durability is _SYNC:
            await self._store.aflush()
        return event

    async def _maybe_roll_over(self, state: SessionState) -> SessionState:
        """Start a new segment before this user message if the current one is full."""
        from sessionware.core.session.segmentation import open_tool_calls, roll_over

        assert self._segmentation is not None
        turns = state.info.totals.messages_by_role.get(Role.USER, 0)
        if not self._segmentation.should_roll(
            tokens=self._context_tokens, turns=turns, open_tool_calls=open_tool_calls(state)
        ):
            return state
        counter = counter_for_model(self.default_model)
        child = await roll_over(state, self._registry, self._segmentation, counter, self._summarize_fn)
        self._session_id = child.id
        self._adopt(child)
        return child

    async def ai_responds(
        self,
        response: str | list[dict[str, Any]] | None,
        *,
        model: str | None = None,
        provider: str | None = None,
        usage: TokenUsage | Mapping[str, int] | None = None,
        tool_calls: Sequence[ToolCall | Mapping[str, Any]] | None = None,
        finish_reason: str | None = None,
        latency_ms: float | None = None,
        **metadata: Any,
    ) -> SessionEvent:
        """Record an assistant message with the call's usage and cost.

        Pass the provider's reported ``usage`` when you have it. Without it, input is
        estimated as the conversation so far and output as the response, both counted
        locally and labelled ``TokenSource.ESTIMATE``.
        """
        content = check_content("ai_responds", response)
        if not (type(content) is str and content.isascii()):
            check_storable("ai_responds", "response", content)
        calls = as_tool_calls(tool_calls)
        if calls:
            check_storable("ai_responds", "tool_calls", calls)
        if (
            (model and not model.isascii())
            or (provider and not provider.isascii())
            or (finish_reason and not finish_reason.isascii())
        ):
            for field, value in (("model", model), ("provider", provider), ("finish_reason", finish_reason)):
                check_storable("ai_responds", field, value)
        if metadata:
            check_storable("ai_responds", "metadata", metadata)
        if content is None and not calls:
            raise InvalidSessionOperation("ai_responds", "a response needs text or tool calls")
        state = self._state or await self._open()  # no coroutine per call once open
        model = model or self.default_model
        reported = as_usage(usage)
        message_tokens: int | None = None
        if reported is None:
            counter = counter_for_model(model)
            message_tokens = counter.count_message(
                {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls],
                }
            )
            reported = TokenUsage(
                input_tokens=self._context_tokens + REPLY_PRIMING_TOKENS + self._prompt_tokens(state),
                # Only the reply's own tokens: its message framing is billed in the prompt.
                output_tokens=message_tokens - counter.count_message({"role": "assistant"}),
                source=TokenSource.ESTIMATE,
            )
        cost = default_price_book().cost(model, reported, provider)
        event = state.record(
            _MESSAGE,
            _LLM,
            role=_ASSISTANT,
            content=content,
            tool_calls=calls,
            usage=reported,
            cost=cost,
            model=model,
            provider=provider,
            finish_reason=finish_reason,
            latency_ms=latency_ms,
            metadata=metadata,
        )
        if message_tokens is not None and self._counted_events == event.seq - 1:
            self._counted_tokens += message_tokens  # counted already, for the estimate
            self._counted_events = event.seq
        if self.durability is _SYNC:
            await self._store.aflush()
        return event

    def _prompt_tokens(self, state: SessionState) -> int:
        prompt = state.info.system_prompt
        if not prompt:
            return 0
        return counter_for_model(self.default_model).count_message({"role": "system", "content": prompt})

    async def tool_used(
        self,
        tool_name: str,
        arguments: Any,
        result: Any,
        error: str | BaseException | None = None,
        *,
        call_id: str | None = None,
        latency_ms: float | None = None,
        **metadata: Any,
    ) -> SessionEvent:
        """Record a tool execution. ``call_id`` links it to the assistant's tool call."""
        if not tool_name:
            raise InvalidSessionOperation("tool_used", "tool_name must not be empty")
        for field, value in (
            ("tool_name", tool_name),
            ("tool_arguments", arguments),
            ("tool_result", result),
            ("error", error if error is None or isinstance(error, str) else str(error)),
            ("call_id", call_id),
            ("metadata", metadata or None),
        ):
            check_storable("tool_used", field, value)
        state = await self._open()
        info = None
        if error is not None:
            info = ErrorInfo(
                type=type(error).__name__ if isinstance(error, BaseException) else "ToolError",
                message=str(error),
            )
        event = state.record(
            EventType.TOOL_CALL,
            EventSource.TOOL,
            role=Role.TOOL,
            tool_name=tool_name,
            tool_arguments=arguments,
            tool_result=result,
            error=info,
            tool_call_id=call_id,
            latency_ms=latency_ms,
            metadata=metadata,
        )
        await self._after_record()
        return event

    async def set_system_prompt(self, prompt: str | None) -> None:
        """Set or change the system prompt; it is persisted with the session."""
        check_storable("set_system_prompt", "prompt", prompt)
        state = await self._open()
        self._system_prompt_arg = prompt
        self._set_prompt(state, prompt)
        await self._after_record()

    update_system_prompt = set_system_prompt

    @staticmethod
    def _set_prompt(state: SessionState, prompt: str | None) -> None:
        state.save_header(system_prompt=prompt)
        state.record(EventType.SYSTEM_PROMPT, EventSource.SYSTEM, role=Role.SYSTEM, content=prompt)

    # -- reading ----------------------------------------------------------------------

    @staticmethod
    def _messages(state: SessionState) -> list[dict[str, Any]]:
        return events_to_messages(state.events, system_prompt=None)

    async def get_conversation(self) -> list[SessionEvent]:
        """Message and tool events of the conversation (current branch), in order."""
        state = await self._read()
        return conversation_events(state.events)

    async def get_messages_for_llm(self, include_system: bool = True) -> list[dict[str, Any]]:
        """The conversation as an OpenAI chat message list, valid for the API.

        With the VM on, this is the budgeted context (``build_context``); in infinite
        context, the current segment preceded by the summary of the earlier ones.
        """
        state = await self._read()
        prompt = state.info.system_prompt if include_system else None
        if self._vm_policy is not None:
            messages = (await self.build_context()).messages
            own_prompt = {"role": "system", "content": state.info.system_prompt}
            if not include_system and messages and messages[0] == own_prompt:
                messages = messages[1:]
            return messages
        messages = events_to_messages(state.events, system_prompt=prompt)
        if self._segmentation is not None:
            from sessionware.core.session.segmentation import carried_summary

            carried = carried_summary(state)
            if carried is not None and carried.text:
                note = {"role": "system", "content": f"Summary of the earlier conversation: {carried.text}"}
                messages.insert(1 if prompt and prompt.strip() else 0, note)
        return messages

    async def build_context(
        self,
        *,
        model: str | None = None,
        budget: int | None = None,
        incoming_messages: Sequence[Mapping[str, Any]] | None = None,
        provider: str = "openai",
    ) -> BuiltContext:
        """The VM's budgeted context for the next call (see ``sessionware.core.memory.build``)."""
        from sessionware.core.memory.builder import abuild

        state = await self._read()
        return await abuild(
            state,
            model=model or self.default_model,
            budget=budget,
            incoming_messages=[dict(m) for m in incoming_messages] if incoming_messages else None,
            provider=provider,
            policy=self._vm_policy,
        )

    async def handle_vm_tool_call(self, name: str, arguments: str | Mapping[str, Any]) -> str:
        """Serve a ``page_fault`` / ``search_pages`` call; returns the tool-result text."""
        from sessionware.core.memory.faults import handle_vm_tool_call
        from sessionware.core.memory.vm import VirtualMemory

        state = await self._read()
        VirtualMemory.attach(state, self._vm_policy)
        result = handle_vm_tool_call(
            state, name, arguments if isinstance(arguments, str) else dict(arguments)
        )
        await self._after_record()
        return result

    async def vm_metrics(self) -> VMMetrics:
        """Figures of the session's virtual memory (attached on first use)."""
        from sessionware.core.memory.vm import VirtualMemory

        return VirtualMemory.attach(await self._read(), self._vm_policy).metrics()

    async def get_full_history(self) -> list[SessionEvent]:
        """Conversation events of every segment of the chain, oldest first."""
        from sessionware.core.session.segmentation import full_history

        return await full_history(self._store, await self._read())

    async def get_stats(self) -> SessionStats:
        """Figures of the session; in infinite context, of the whole segment chain."""
        state = await self._read()
        if self._segmentation is not None:
            from sessionware.core.session.segmentation import chain

            return SessionStats.from_infos(await chain(self._store, state), infinite_context=True)
        return SessionStats.from_infos([state.info])

    async def get_events(self) -> list[SessionEvent]:
        """Every event of the session, in order."""
        return list((await self._read()).events)

    # -- hierarchy --------------------------------------------------------------------

    async def create_child(self, session_id: str | None = None, **kwargs: Any) -> SessionManager:
        """A new session whose parent is this one."""
        await self._open()
        kwargs.setdefault("default_model", self.default_model)
        kwargs.setdefault("durability", self.durability)
        return await SessionManager.create(
            session_id, store=self._store, parent_id=self._session_id, **kwargs
        )

    async def children(self) -> list[str]:
        await self._open()
        return [i.id for i in reversed(await self._store.alist_sessions(parent_id=self._session_id))]

    async def ancestors(self) -> list[str]:
        """Parent ids from the closest to the root."""
        state = await self._open()
        chain: list[str] = []
        parent = state.info.parent_id
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = (await self._store.aload_info(parent)).parent_id
        return chain

    # -- runs -------------------------------------------------------------------------

    @asynccontextmanager
    async def run(self, **metadata: Any) -> Any:
        """A unit of work: ``async with sm.run(task="x") as run:`` marks it running, then
        completed, or failed if the block raises (the exception propagates)."""
        state = await self._open()
        run = SessionRun(id=uuid.uuid4().hex, status=RunStatus.RUNNING, metadata=metadata)
        state.save_header(runs=[*state.info.runs, run])
        try:
            yield run
        except BaseException as exc:
            self._end_run(state, run, RunStatus.FAILED, reason=repr(exc))
            raise
        self._end_run(state, run, RunStatus.COMPLETED)
        await self._after_record()

    @staticmethod
    def _end_run(state: SessionState, run: SessionRun, status: RunStatus, reason: str | None = None) -> None:
        run.status = status
        run.ended_at = utcnow()
        if reason:
            run.metadata["failure_reason"] = reason
        state.save_header(runs=[run if r.id == run.id else r for r in state.info.runs])

    # -- lifecycle ----------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every recorded event is in the store."""
        await self._store.aflush()

    async def delete(self) -> None:
        """Delete the session, its events and pages from the store."""
        await self._open()
        self._store.submit([DeleteSession(self._session_id)])
        await self._store.aflush()
        self._registry.forget(self._session_id)
        self._state = None

    @property
    def total_cost(self) -> Decimal:
        return self._state.info.totals.cost if self._state else Decimal(0)
