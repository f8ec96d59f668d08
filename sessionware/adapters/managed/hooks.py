"""Managed mode: the wrapper sends a budgeted context and serves the model's memory calls.

``sessionware.wrap(client, mode="managed", context=ContextPolicy(budget=8000))`` keeps the
app's code as it is: it still sends its whole history. Per call, the wrapper

1. records the messages the session has not seen (the latest turn included), so the
   virtual memory (``sessionware.core.memory``) knows the conversation up to now;
2. builds the context (``build`` / ``abuild``): the app's system prompt, the memory block,
   recent turns verbatim, then the app's latest turn exactly as the app sent it, inside
   the budget (``ContextPolicy.budget``, else the model's context window from the price
   data minus the reserved output, or the app's ``max_tokens`` when larger);
3. sends that instead of the app's messages (a new body; the app's list is never
   touched), with the VM tools ``page_fault`` / ``search_pages`` added to the app's tools;
4. serves the model's memory calls itself and re-sends (hidden rounds), so the app only
   ever receives an answer without them, streamed or not.

Memory calls mixed with the app's own calls
-------------------------------------------
A response that calls a memory tool is a hidden round, whatever else it calls: the
memory calls are served, and the round is re-sent with the assistant message carrying
only those calls and their results. The app's calls in that message are left out (they
were never run; the API would refuse calls without results), and the model, now seeing
what it recalled, asks for them again in the next round, usually with better arguments.
The app then receives a genuine response from the provider, never one edited by us.

Limits
------
At most ``max_faults_per_turn`` memory calls per user turn are served (the VM counts
them); a call past the limit gets a tool result saying so, and that round is re-sent
with ``tool_choice`` set to none, so the model answers with what it has. Hidden rounds
are bounded by ``max_faults_per_turn + 1``. Should a response still carry a memory call
after that (a server ignoring ``tool_choice``), the app gets it without the call: a copy
of the response, or the stream with those chunks left out.

Streams read ahead until they show what the round is (see ``managed.streams``): a
memory call makes it hidden, an answer is handed to the app from its first chunk once
``stream_holdback_chars`` of text arrived. Time to first token is recorded for hidden
rounds (from their own send) and for the final one (from the app's call).

Accounting: the final event of a call carries ``app_input_tokens`` (what the app asked
to send, counted locally) beside the provider's usage of what was sent, and
``metadata["managed"]`` (budget, built tokens, prefix version, compactions, hidden
rounds, memory calls); hidden rounds are ``hidden`` events with their own usage and cost.

Bad input: an app turn that is invalid for the provider (tool results that answer no
call, calls left unanswered) is sent untouched, so the provider answers with its own
error; a budget too small for the system prompt and the latest turn raises
``TokenLimitExceeded`` before anything is sent. Calls on server-side state (Responses
``previous_response_id``) and raw streams (``with_streaming_response``) are sent with
the context rewritten where possible and no memory tools, whose calls could not be hidden.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from sessionware.adapters.engine.config import HiddenRound
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.record import request_drafts
from sessionware.adapters.engine.streams import StreamOwner
from sessionware.adapters.engine.types import CallOutput
from sessionware.adapters.managed.sent import SENT_KEY, sent_context
from sessionware.adapters.managed.shapes import Served, Shape, shape_for
from sessionware.adapters.managed.streams import (
    Capture,
    Peek,
    Verdict,
    VisibleStream,
    anothing,
    aplay,
    araising,
    play,
    raising,
    without_memory_calls,
)
from sessionware.adapters.managed.tokens import AppTokens
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.defaults import default_price_book
from sessionware.core.errors import InvalidSessionOperation, StorageError, TokenLimitExceeded
from sessionware.core.memory import BuiltContext, ContextPolicy, VirtualMemory, abuild, build
from sessionware.core.memory.faults import handle_vm_tool_call, is_vm_tool
from sessionware.core.session.enums import EventType
from sessionware.core.session.state import SessionState

__all__ = ["ManagedHooks", "summarizing_for"]

logger = logging.getLogger(__name__)

_STOP_REASONS = {"tool_calls": "stop", "tool_use": "end_turn"}

_summary_target: contextvars.ContextVar[SessionState | None] = contextvars.ContextVar(
    "sessionware_summary_target", default=None
)


def summarizing_for() -> SessionState | None:
    """The session whose context is being built (for summarisers that record their cost)."""
    return _summary_target.get()


# -- one managed call -------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """What a call's context is built from."""

    shape: Shape
    state: SessionState
    latest: list[dict[str, Any]]
    incoming: list[dict[str, Any]] | None
    later: list[Any]
    """Drafts of the latest turn: recorded with the answer, or before a hidden round."""
    model: str
    budget: int
    app_tools: list[dict[str, Any]]
    app_tokens: int
    hide_calls: bool


@dataclass(slots=True)
class _Run:
    """A managed call between its hooks (``HookedCall.hook_state``)."""

    shape: Shape
    state: SessionState
    body: Mapping[str, Any]
    """What was sent last."""
    hide_calls: bool
    """Whether memory tools were offered (their calls are then served and hidden)."""
    model: str
    budget: int
    managed: dict[str, Any]
    """``metadata["managed"]`` of the call's final event (updated in place)."""
    later: list[Any]
    """The latest turn's drafts until recorded (the answer's record takes them otherwise)."""
    rounds: int = 0
    forced: bool = False


class _FinalOwner(StreamOwner):
    """Owner of the streamed round the app reads: records it without memory calls."""

    __slots__ = ("call", "hooks", "run")

    def __init__(self, hooks: ManagedHooks, call: HookedCall, run: _Run) -> None:
        self.hooks, self.call, self.run = hooks, call, run

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None:
        if output is not None:
            self.hooks.final(self.run, output)
        self.call.finish_stream(output, error=error, end=end, first_token_at=first_token_at)


def _drive(coro: Coroutine[Any, Any, BuiltContext]) -> BuiltContext | None:
    """Run ``coro`` to its end on this thread if it never waits (None if it would)."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: BuiltContext = done.value
        return result
    coro.close()
    return None


class ManagedHooks:
    """The ``CallHooks`` of managed mode (see the module docstring)."""

    def __init__(self, policy: ContextPolicy) -> None:
        self.policy = policy
        self.max_hidden_rounds = policy.max_faults_per_turn + 1
        self._warned: set[str] = set()

    # -- before the send ----------------------------------------------------------------------

    def before_send(self, call: HookedCall) -> Mapping[str, Any] | None:
        plan = self._plan(call)
        if plan is None:
            return None
        token = _summary_target.set(plan.state)
        try:
            ctx = self._build_now(plan)
        except TokenLimitExceeded as exc:
            self._refuse(call, plan, exc)
        except InvalidSessionOperation as exc:
            self._untouched(exc)
            return None
        finally:
            _summary_target.reset(token)
        return self._send(call, plan, ctx)

    async def abefore_send(self, call: HookedCall) -> Mapping[str, Any] | None:
        plan = self._plan(call)
        if plan is None:
            return None
        token = _summary_target.set(plan.state)
        try:
            ctx = await abuild(
                plan.state,
                model=plan.model,
                budget=plan.budget,
                incoming_messages=plan.incoming,
                provider=plan.shape.provider,
                tools=plan.app_tools,
                policy=self.policy,
            )
        except TokenLimitExceeded as exc:
            self._refuse(call, plan, exc)
        except InvalidSessionOperation as exc:
            self._untouched(exc)
            return None
        finally:
            _summary_target.reset(token)
        return self._send(call, plan, ctx)

    def _plan(self, call: HookedCall) -> _Plan | None:
        """Record what the session lacks before the latest turn; None: send the app's body."""
        shape = shape_for(call.endpoint.kind)
        request = call.request
        if shape is None or call.state is None or request.continues is not None or not request.conversational:
            return None
        # Every call recorded before this one (observe-mode clients of the session too).
        state = call.settled_state()
        body = call.body
        latest = shape.latest(body)
        if not latest:
            return None
        problem = shape.unanswered(body, latest)
        if problem:
            # The provider's own error is the right answer to an invalid history.
            logger.debug("managed mode sends an invalid turn untouched: %s", problem)
            return None
        n_latest = len(call.endpoint.read_request(shape.alone(latest)).messages)
        with state.lock:
            drafts = request_drafts(state, request)
            n_new = sum(1 for d in drafts if d[0] is EventType.MESSAGE)
            if 0 < n_latest <= n_new:
                older, later, incoming = drafts[:-n_latest], drafts[-n_latest:], shape.incoming(latest)
            else:
                older, later, incoming = drafts, [], None
            if older:
                state.record_many(older)
        model = str(request.model or "")
        # Raw streams hand the app bytes sessionware cannot take memory calls out of.
        hide = call.raw is None or (call.raw != "stream" and not call.stream)
        clash = shape.vm_tool_names(body)
        if clash:
            self._warn_once("clash", "the app has tools named %s: managed mode offers no memory tools", clash)
        return _Plan(
            shape=shape,
            state=state,
            latest=latest,
            incoming=incoming,
            later=later,
            model=model,
            budget=self._budget(call, body, model),
            app_tools=shape.app_tools(body),
            app_tokens=AppTokens.of(state).count(request, model),
            hide_calls=hide and not clash and shape.can_hide_calls(body),
        )

    def _budget(self, call: HookedCall, body: Mapping[str, Any], model: str) -> int:
        policy = self.policy
        if policy.budget is not None:
            return policy.budget
        prices = call.config.prices or default_price_book()
        window = prices.context_window(model, call.config.spec.name) or prices.context_window(model)
        asked = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
        reserved = max(policy.reserved_output_tokens, asked if isinstance(asked, int) else 0)
        window = window or policy.fallback_context_window
        return max(int(window * policy.budget_fraction) - reserved, 1)

    def _build_now(self, plan: _Plan) -> BuiltContext:
        kwargs: dict[str, Any] = {
            "model": plan.model,
            "budget": plan.budget,
            "incoming_messages": plan.incoming,
            "provider": plan.shape.provider,
            "tools": plan.app_tools,
            "policy": self.policy,
        }
        if self.policy.summarize_fn is not None:
            # A sync client has no loop to await the summariser on: run ``abuild`` to its
            # end here, which it reaches without waiting when the summariser does not
            # wait (a sync client's ``ClientSummarizer``) and the pages are loaded.
            self._load_pages(plan.state)
            built = _drive(abuild(plan.state, **kwargs))
            if built is not None:
                return built
            self._warn_once("summaries", "summarize_fn waits on I/O: sync clients keep extractive summaries")
        return build(plan.state, **kwargs)

    @staticmethod
    def _load_pages(state: SessionState) -> None:
        vm = VirtualMemory.attach(state)
        if vm.pages_loaded:
            return
        try:
            vm.restore(state.store.load_pages(state.id))
        except StorageError:
            logger.exception("could not load the persisted pages of session %s", state.id)
            vm.pages_loaded = True

    def _refuse(self, call: HookedCall, plan: _Plan, exc: TokenLimitExceeded) -> None:
        call.extra_fields["metadata"] = {"managed": {"budget": plan.budget, "refused": "budget"}}
        call.failed(exc)
        raise exc

    @staticmethod
    def _untouched(exc: InvalidSessionOperation) -> None:
        logger.debug("managed mode sends the app's request untouched: %s", exc.reason)

    def _send(self, call: HookedCall, plan: _Plan, ctx: BuiltContext) -> Mapping[str, Any]:
        if not plan.hide_calls and ctx.tools:
            ctx = ctx.model_copy(update={"tools": []})
        wire = plan.shape.wire(call.body, ctx, plan.latest)
        report = ctx.report
        managed: dict[str, Any] = {"budget": plan.budget, "hidden_rounds": 0, "memory_calls": 0}
        if report is not None:
            managed.update(
                built_tokens=report.tokens,
                prefix_version=report.prefix_version,
                stable_prefix_tokens=report.stable_prefix_tokens,
                cacheable_prefix_tokens=report.cacheable_prefix_tokens,
                compactions=report.compactions,
                pages_evicted=report.pages_evicted,
            )
            managed[SENT_KEY] = sent_context(plan.state, ctx, len(plan.later))
        call.extra_fields["app_input_tokens"] = plan.app_tokens
        call.extra_fields["metadata"] = {"managed": managed}
        call.hook_state = _Run(
            shape=plan.shape,
            state=plan.state,
            body=wire,
            hide_calls=plan.hide_calls,
            model=plan.model,
            budget=plan.budget,
            managed=managed,
            later=plan.later,
        )
        return wire

    # -- after a round ----------------------------------------------------------------------

    def after_response(self, call: HookedCall, output: CallOutput) -> Mapping[str, Any] | None:
        run = call.hook_state
        if not isinstance(run, _Run):
            return None
        body = self._next_body(call, run, output)
        if body is None and run.hide_calls and call.raw is None and call.last_response is not None:
            shown = without_memory_calls(call.endpoint.kind, call.last_response)
            if shown is not call.last_response:
                call.substitute = shown
        return body

    def _next_body(self, call: HookedCall, run: _Run, output: CallOutput) -> Mapping[str, Any] | None:
        """The hidden round after ``output``, or None when ``output`` is what the app gets."""
        memory = [c for c in output.calls if is_vm_tool(c.name)] if run.hide_calls else []
        if not memory or run.forced or run.rounds >= self.max_hidden_rounds:
            self.final(run, output)
            return None
        if run.later:  # the turn goes in the log before the memory calls it caused
            run.state.record_many(run.later)
            run.later = []
        vm = VirtualMemory.attach(run.state)
        served: Served = []
        refused: Served = []
        for memory_call in memory:
            before = vm.counts["refused"]
            text = handle_vm_tool_call(run.state, memory_call.name, memory_call.arguments)
            (refused if vm.counts["refused"] > before else served).append((memory_call, text))
        run.rounds += 1
        force = bool(refused) or run.rounds >= self.max_hidden_rounds
        body: Mapping[str, Any] = run.shape.follow_up(run.body, output, served + refused)
        if refused and self._tokens(run, body) > run.budget:
            # The refusal does not fit the budget: the round goes without it, tools off.
            body = run.shape.follow_up(run.body, output, served) if served else run.body
        if force:
            body = run.shape.forced(body)
            run.forced = True
        run.body = body
        run.managed["hidden_rounds"] = run.rounds
        run.managed["memory_calls"] += len(memory)
        call.hidden_fields = {
            "metadata": {
                "managed": {
                    "round": run.rounds,
                    "memory_calls": [c.name for c in memory],
                    "refused": len(refused),
                    "app_calls_left_out": len(output.calls) - len(memory),
                    "next_forced": force,
                }
            }
        }
        return body

    def _tokens(self, run: _Run, body: Mapping[str, Any]) -> int:
        counter = counter_for_model(run.model)
        messages = list(body.get("messages") or body.get("input") or ())
        system = body.get("system") or body.get("instructions")
        chat = run.shape.count_shape(messages)
        if system:
            chat.insert(0, {"role": "system", "content": system})
        return counter.count_messages(chat, list(body.get("tools") or ()))

    def final(self, run: _Run, output: CallOutput) -> None:
        """``output`` is what the app gets: the recorded answer has no memory calls either."""
        if not run.hide_calls:
            return
        kept = [c for c in output.calls if not is_vm_tool(c.name)]
        if len(kept) != len(output.calls):
            run.managed["memory_calls_left_out"] = len(output.calls) - len(kept)
            output.calls = kept
            if not kept and output.finish_reason in _STOP_REASONS:
                output.finish_reason = _STOP_REASONS[output.finish_reason]

    # -- streams ----------------------------------------------------------------------------

    def _stream_started(self, call: HookedCall) -> tuple[_Run, Any, Capture, Peek] | None:
        """What reading a streamed round ahead needs (None: the app reads it as it is)."""
        run = call.hook_state
        recording = call.recording
        if not isinstance(run, _Run) or recording is None or not run.hide_calls:
            return None
        capture = Capture()
        recording.owner = capture
        return run, recording, capture, Peek(call.endpoint.kind, self.policy.stream_holdback_chars)

    def after_stream(self, call: HookedCall, stream: Any) -> HiddenRound | None:
        started = self._stream_started(call)
        if started is None:
            return None
        run, recording, capture, peek = started
        rest = stream._iterator
        buffered: list[Any] = []
        verdict = Verdict.UNDECIDED
        try:
            for chunk in rest:
                buffered.append(chunk)
                if verdict is Verdict.UNDECIDED:
                    verdict = peek.feed(chunk)
                    if verdict is Verdict.LIVE:
                        break
        except Exception as exc:  # the provider's error: the app meets it where it would have
            self._deliver(call, run, capture)
            stream.__dict__["_iterator"] = play(buffered, raising(exc), VisibleStream(call.endpoint.kind))
            return None
        if verdict is Verdict.LIVE:
            recording.owner = _FinalOwner(self, call, run)
            stream.__dict__["_iterator"] = play(buffered, rest, VisibleStream(call.endpoint.kind))
            return None
        return self._stream_read(call, run, stream, buffered, capture, is_async=False)

    async def aafter_stream(self, call: HookedCall, stream: Any) -> HiddenRound | None:
        started = self._stream_started(call)
        if started is None:
            return None
        run, recording, capture, peek = started
        rest = stream._iterator
        buffered: list[Any] = []
        verdict = Verdict.UNDECIDED
        try:
            async for chunk in rest:
                buffered.append(chunk)
                if verdict is Verdict.UNDECIDED:
                    verdict = peek.feed(chunk)
                    if verdict is Verdict.LIVE:
                        break
        except Exception as exc:
            self._deliver(call, run, capture)
            visible = VisibleStream(call.endpoint.kind)
            stream.__dict__["_iterator"] = aplay(buffered, araising(exc), visible)
            return None
        if verdict is Verdict.LIVE:
            recording.owner = _FinalOwner(self, call, run)
            stream.__dict__["_iterator"] = aplay(buffered, rest, VisibleStream(call.endpoint.kind))
            return None
        return self._stream_read(call, run, stream, buffered, capture, is_async=True)

    def _stream_read(
        self,
        call: HookedCall,
        run: _Run,
        stream: Any,
        buffered: list[Any],
        capture: Capture,
        *,
        is_async: bool,
    ) -> HiddenRound | None:
        """A round read to its end: hidden, or handed to the app whole."""
        output = capture.output
        if output is not None:
            body = self._next_body(call, run, output)
            if body is not None:
                return HiddenRound(body, output, capture.first_token_at)
        self._deliver(call, run, capture, finalised=True)
        visible = VisibleStream(call.endpoint.kind)
        if is_async:
            stream.__dict__["_iterator"] = aplay(buffered, anothing(), visible)
        else:
            stream.__dict__["_iterator"] = play(buffered, (), visible)
        return None

    def _deliver(self, call: HookedCall, run: _Run, capture: Capture, *, finalised: bool = False) -> None:
        """Record the round the app gets, as the stream's recording would have."""
        if capture.output is not None and not finalised:
            self.final(run, capture.output)
        call.finish_stream(
            capture.output, error=capture.error, end=capture.end, first_token_at=capture.first_token_at
        )

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)
