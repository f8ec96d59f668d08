"""Managed mode: the wrapper sends a budgeted context and serves the model's memory calls.

``sessionware.wrap(client, mode="managed", context=ContextPolicy(budget=8000))`` keeps the
app's code as it is: it still sends its whole history. Per call, the wrapper

1. takes the app's arguments at the SDK's resource method, before the SDK prepares them
   (``resource``, ``arguments``: an iterable is read once and what was read is used), and
   records the messages the session has not seen (the latest turn included), so the
   virtual memory (``sessionware.core.memory``) knows the conversation up to now;
2. builds the context (``build`` / ``abuild``): the app's system prompt, the memory block,
   recent turns verbatim, the recall region, then the app's latest turn exactly as the
   app sent it (a trailing assistant message too: a prefill or a retry), inside the
   budget (``ContextPolicy.budget``, else the model's context window from the price data
   minus the reserved output, or the app's ``max_tokens`` when larger);
3. hands the SDK that instead of the app's messages (the app's list is never touched),
   with the VM tools ``page_fault`` / ``search_pages`` added to the app's tools;
4. serves the model's memory calls itself and re-sends (hidden rounds), so the app only
   ever receives an answer without them, streamed or not. What the calls recalled stays
   in the recall region for the rest of the user turn, through the app's own tool rounds.

Memory calls mixed with the app's own calls
-------------------------------------------
A response that calls a memory tool beside the app's own tools is a hidden round: the
memory calls are served, and the round is re-sent with the assistant message carrying
only those calls and their results. The app's calls in that message are left out (they
were never run; the API would refuse calls without results), and the model, now seeing
what it recalled, asks for them again in the next round, often with better arguments:
that response is handed over as the provider sent it. Two cases hand the app's call over
at once instead (the response without its memory calls, which are served all the same
and show in the turn's later rounds): when the re-sent round would have to be forced
(the memory-call limit is reached, so the model could not call anything), and when the
model, answering a mixed round, mixes again. ``benchmarks/managed_mixed_calls.py``
counts the extra rounds.

Limits
------
At most ``max_faults_per_turn`` memory calls per user turn are served (the VM counts
them); a call past the limit gets a tool result saying so, and that round is re-sent
with ``tool_choice`` set to none, so the model answers with what it has. Hidden rounds
are bounded by ``max_faults_per_turn + 1``. Should a response still carry a memory call
after that (a server ignoring ``tool_choice``), the app gets it without the call: a copy
of the response, or the stream with those chunks left out.

Streams read ahead until they show what the round is (see ``managed.live``): a memory
call makes it hidden, an answer is handed to the app from its first chunk once
``stream_holdback_chars`` of text arrived. A memory call that comes after that is
served, and the same stream goes on with the model's continuation: the app reads one
message, one finish and one usage. Time to first token is recorded for hidden rounds
(from their own send) and for the final one (the app's first token, from its call).

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

from sessionware.adapters.engine.config import HiddenRound, WrapConfig
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.record import request_drafts
from sessionware.adapters.engine.types import CallOutput
from sessionware.adapters.managed import live, resource
from sessionware.adapters.managed.run import Run
from sessionware.adapters.managed.sent import SENT_KEY, sent_context
from sessionware.adapters.managed.shapes import Served, Shape, shape_for
from sessionware.adapters.managed.streams import without_memory_calls
from sessionware.adapters.managed.tokens import AppTokens
from sessionware.core.accounting.tokens import counter_for_model
from sessionware.core.defaults import default_price_book
from sessionware.core.errors import InvalidSessionOperation, TokenLimitExceeded
from sessionware.core.memory import BuiltContext, ContextPolicy, VirtualMemory, abuild, build
from sessionware.core.memory.faults import handle_vm_tool_call, is_vm_tool
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.models import EventDraft as Draft
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
    hide_calls: bool


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

    # -- the client -----------------------------------------------------------------------------

    def attach(self, client: Any, config: WrapConfig, *, is_async: bool) -> None:
        """Take the client's managed calls at its resource methods (``managed.resource``)."""
        resource.attach(client, config, is_async=is_async)

    def detach(self, client: Any) -> None:
        resource.detach(client)

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

        def split() -> tuple[list[Draft], list[Draft], Any]:
            drafts = request_drafts(state, request)
            n_new = sum(1 for d in drafts if d[0] is EventType.MESSAGE)
            if 0 < n_latest <= n_new:
                return drafts[:-n_latest], drafts[-n_latest:], shape.incoming(latest)
            return drafts, [], None

        with state.lock:
            older, later, incoming = split()
            if older and not any(d[2].get("role") is Role.ASSISTANT for d in older):
                state.record_many(older)
                older = []
        if older:
            # An answer this process has not recorded: another worker answered the turn
            # before and may be recording it now. Read and append under the session's
            # lock, as recorders do (``record_call``), so the answer is stored once.
            with state.exclusive():
                state.follow()
                older, later, incoming = split()
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
        if not vm.pages_loaded:
            vm.load_pages()

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
        # Counted after the build: a memory restored from a checkpoint counted most of it.
        call.extra_fields["app_input_tokens"] = AppTokens.of(plan.state).count(
            call.request, plan.model, plan.state
        )
        call.extra_fields["metadata"] = {"managed": managed}
        call.hook_state = Run(
            shape=plan.shape,
            state=plan.state,
            body=wire,
            hide_calls=plan.hide_calls,
            model=plan.model,
            budget=plan.budget,
            managed=managed,
            later=plan.later,
            vm_tools=plan.shape.vm_tools(ctx),
        )
        return wire

    def adopted(self, call: HookedCall) -> Mapping[str, Any] | None:
        """The body of a call taken at the resource method, as the SDK prepared it from the
        built arguments, with the memory tools added."""
        run = call.hook_state
        if not isinstance(run, Run):
            return None
        body = call.body
        if run.vm_tools:
            body = {**body, "tools": [*(body.get("tools") or ()), *run.vm_tools]}
        run.body = body
        return body

    # -- after a round ----------------------------------------------------------------------

    def after_response(self, call: HookedCall, output: CallOutput) -> Mapping[str, Any] | None:
        run = call.hook_state
        if not isinstance(run, Run):
            return None
        body = self.next_body(call, run, output)
        if body is None and run.hide_calls and call.raw is None and call.last_response is not None:
            shown = without_memory_calls(call.endpoint.kind, call.last_response)
            if shown is not call.last_response:
                call.substitute = shown
        return body

    def next_body(self, call: HookedCall, run: Run, output: CallOutput) -> Mapping[str, Any] | None:
        """The hidden round after ``output``, or None when ``output`` is what the app gets."""
        memory = [c for c in output.calls if is_vm_tool(c.name)] if run.hide_calls else []
        if not memory or run.forced or run.rounds >= self.max_hidden_rounds:
            self.final(run, output)
            return None
        app_calls = len(output.calls) - len(memory)
        if app_calls and run.mixed:
            # The model asks again for its own call, beside more memory calls: the app gets
            # it now; the memory calls are served for the turn's later rounds.
            self.final(run, output, serve=True)
            return None
        served, refused = self._serve(run, memory)
        force = bool(refused) or run.rounds + 1 >= self.max_hidden_rounds
        if app_calls and force:
            # A forced round could not repeat the app's call: the app gets it now, and what
            # was recalled shows in the turn's later rounds.
            self.final(run, output, served=True)
            return None
        run.rounds += 1
        run.mixed = bool(app_calls)
        body: Mapping[str, Any] = run.shape.follow_up(run.body, output, served + refused)
        if refused and self._tokens(run, body) > run.budget:
            # The refusal does not fit the budget: the round goes without it, tools off.
            body = run.shape.follow_up(run.body, output, served) if served else run.body
        if force:
            body = run.shape.forced(body)
            run.forced = True
        run.body = body
        run.managed["hidden_rounds"] = run.rounds
        call.hidden_fields = {
            "metadata": {
                "managed": {
                    "round": run.rounds,
                    "memory_calls": [c.name for c in memory],
                    "refused": len(refused),
                    "app_calls_left_out": app_calls,
                    "next_forced": force,
                }
            }
        }
        return body

    def _serve(self, run: Run, memory: list[Any]) -> tuple[Served, Served]:
        """Serve memory calls: (served, refused over the per-turn limit), each with its result."""
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
        run.managed["memory_calls"] += len(memory)
        return served, refused

    def _tokens(self, run: Run, body: Mapping[str, Any]) -> int:
        counter = counter_for_model(run.model)
        messages = list(body.get("messages") or body.get("input") or ())
        system = body.get("system") or body.get("instructions")
        chat = run.shape.count_shape(messages)
        if system:
            chat.insert(0, {"role": "system", "content": system})
        return counter.count_messages(chat, list(body.get("tools") or ()))

    def final(self, run: Run, output: CallOutput, *, serve: bool = False, served: bool = False) -> None:
        """``output`` is what the app gets: the recorded answer has no memory calls either.

        ``serve``: its memory calls are served (for the turn's later rounds, where what they
        recalled shows) rather than left out; ``served``: they already were.
        """
        if not run.hide_calls:
            return
        kept = [c for c in output.calls if not is_vm_tool(c.name)]
        if len(kept) == len(output.calls):
            return
        memory = [c for c in output.calls if is_vm_tool(c.name)]
        if serve and not served:
            self._serve(run, memory)
            served = True
        if served:
            run.managed["memory_calls_served_aside"] = len(memory)
        else:
            run.managed["memory_calls_left_out"] = len(memory)
        output.calls = kept
        if not kept and output.finish_reason in _STOP_REASONS:
            output.finish_reason = _STOP_REASONS[output.finish_reason]

    # -- streams ----------------------------------------------------------------------------

    def after_stream(self, call: HookedCall, stream: Any) -> HiddenRound | None:
        return live.after_stream(self, call, stream)

    async def aafter_stream(self, call: HookedCall, stream: Any) -> HiddenRound | None:
        return await live.aafter_stream(self, call, stream)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)
