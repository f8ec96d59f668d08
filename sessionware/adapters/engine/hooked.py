"""Calls of a client with ``CallHooks``: the seam a wrapping mode (managed mode) plugs into.

A ``HookedCall`` asks the hooks what to send (``before_send``; ``abefore_send`` for
async clients), records inline on the caller's thread (so what the hooks read next
includes it), and after each response asks them for a hidden follow-up round
(``after_response``; for streams ``after_stream`` / ``aafter_stream``), up to
``WrapConfig.max_rounds``. See ``funnel`` for the contract of each hook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.call import InterceptedCall, one_choice
from sessionware.adapters.engine.config import CallHooks, HiddenRound
from sessionware.adapters.engine.record import record_hidden
from sessionware.adapters.engine.streams import StreamRecording
from sessionware.adapters.engine.types import CallOutput
from sessionware.core.errors import TokenLimitExceeded
from sessionware.core.session.models import EventFields

__all__ = ["HookedCall", "UNASKED"]

logger = logging.getLogger(__name__)

# ``prepare``'s argument when an async caller has not asked the hooks yet.
UNASKED: Any = object()


class HookedCall(InterceptedCall):
    """A call of a client with hooks (see the module docstring)."""

    __slots__ = ("hidden_fields", "hook_state", "hooks", "last_response", "rounds", "sender", "substitute")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hooks = self.config.hooks
        assert hooks is not None
        self.hooks: CallHooks[HookedCall] = hooks
        self.rounds = 0
        self.hook_state: Any = None
        """What the wrapping mode keeps about this call between its hooks."""
        self.hidden_fields: EventFields = {}
        """Fields of the next hidden event (``extra_fields`` belong to the app's call)."""
        self.substitute: Any = None
        """When set, returned to the app instead of the SDK's last response."""
        self.last_response: Any = None
        """The SDK's response of the round being read (non-streamed calls)."""
        self.sender: tuple[Callable[[Any, Any], Any], Any] | None = None
        """How the rounds are sent (``send_one`` and the stream class): a round sent later,
        from inside the app's reading of a stream, goes the same way (``funnel.resend``)."""

    def adopt(self, options: Any, stream: bool) -> Mapping[str, Any] | None:
        """Take over the SDK's request of a call taken early (at the resource method, see
        ``funnel.hand_over``); return the body to send instead of the one the SDK prepared
        (the optional hook ``adopted(call)``; None: the SDK's as it is)."""
        self.options = options
        self.body = options.json_data
        self.stream = stream
        adopted = getattr(self.hooks, "adopted", None)
        if adopted is None:
            return None
        try:
            body: Mapping[str, Any] | None = adopted(self)
            return body
        except Exception as exc:
            guard.report("a request", exc)
            return None

    # -- before the send ----------------------------------------------------------------

    def replacement(self) -> Mapping[str, Any] | None:
        """The body the hooks send instead (None: the app's). ``TokenLimitExceeded`` is the
        one error that reaches the app; any other is reported and the app's body is sent."""
        try:
            return self.hooks.before_send(self)
        except TokenLimitExceeded:
            raise
        except Exception as exc:
            guard.report("a request", exc)
            return None

    async def areplacement(self) -> Mapping[str, Any] | None:
        """``replacement`` for async clients (``abefore_send`` when the hooks have it)."""
        before = getattr(self.hooks, "abefore_send", None)
        if before is None:
            return self.replacement()
        try:
            replaced: Mapping[str, Any] | None = await before(self)
            return replaced
        except TokenLimitExceeded:
            raise
        except Exception as exc:
            guard.report("a request", exc)
            return None

    # -- the rounds ---------------------------------------------------------------------

    def send_rounds(self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Any]) -> Any:
        """Send ``send``, then every hidden round the hooks ask for; return what the app
        receives. Errors are recorded and re-raised."""
        self.sender = (send_one, send_cls)
        while True:
            result = self.send_once(send, send_cls, send_one)
            send = self.completed(result)
            if send is None:
                return result if self.substitute is None else self.substitute

    async def asend_rounds(
        self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Awaitable[Any]]
    ) -> Any:
        """``send_rounds`` for async clients (a streamed round is read with ``aafter_stream``)."""
        self.sender = (send_one, send_cls)
        while True:
            result = await self.asend_once(send, send_cls, send_one)
            send = await self.acompleted(result)
            if send is None:
                return result if self.substitute is None else self.substitute

    async def acompleted(self, result: Any) -> Any:
        """``completed`` for async clients: a streamed round is read with ``aafter_stream``."""
        after = getattr(self.hooks, "aafter_stream", None)
        if self.receive != self.received_stream or after is None or self.recording is None:
            return self.completed(result)
        try:
            return self._next_round(await after(self, result))
        except Exception as exc:
            guard.report("a stream", exc)
        return None

    # -- after the send -----------------------------------------------------------------

    def received_response(self, result: Any) -> Any:
        output = self.output_of(result)
        self.last_response = result
        follow_up = self._follow_up(output)
        if follow_up is not None:
            return follow_up
        self.record(output=output)
        return None

    def received_stream(self, result: Any) -> Any:
        after = getattr(self.hooks, "after_stream", None)
        if after is None or self.recording is None:
            return None
        return self._next_round(after(self, result))

    def _follow_up(self, output: CallOutput) -> Any:
        body = self.hooks.after_response(self, output)
        if body is None:
            return None
        if self.rounds >= self.config.max_rounds:
            logger.warning("hidden rounds stopped at max_rounds=%d", self.config.max_rounds)
            return None
        return self._next_round(HiddenRound(body, output))

    def hidden_round(self, hidden: HiddenRound) -> Any:
        """Record ``hidden`` (a round the app did not see, or saw part of) and return the
        options of the round after it, to send with ``funnel.resend``."""
        return self._next_round(hidden)

    def _next_round(self, hidden: HiddenRound | None) -> Any:
        """Record ``hidden`` and return the options of the round after it (None: no round)."""
        if hidden is None:
            return None
        self.rounds += 1
        assert self.state is not None
        facts = self.facts(
            first_token_at=hidden.first_token_at, since=self.round_started, extra_fields=self.hidden_fields
        )
        record_hidden(self.state, facts, hidden.output, self.prices())
        self.hidden_fields = {}
        self.round_started = time.perf_counter()
        if self.recording is not None:
            acc = self.endpoint.accumulator(
                hide_usage_chunk=self.hide_usage, single_choice=one_choice(hidden.body)
            )
            self.recording = StreamRecording(self, acc, is_async=self.is_async)
        body = hidden.body
        if self.hide_usage:  # the round after asks for the stream's usage as the first did
            body = self.endpoint.with_stream_usage(body) or body
        return self.options.model_copy(update={"json_data": body})

    def failed(self, error: BaseException) -> None:
        try:
            # What the app asked to send was not billed: no tokens were saved either.
            self.extra_fields.pop("app_input_tokens", None)
            self.record(error=error)
        except Exception as exc:
            guard.report("a failed call", exc)

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None:
        try:
            self.record(output=output, error=error, end=end, first_token_at=first_token_at)
        except Exception as exc:
            guard.report("a stream", exc)
