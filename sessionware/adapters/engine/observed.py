"""Observe mode's calls: one round, recorded off the app's path.

An ``ObservedCall`` sends what the app built, once, and records nothing on the app's
path: what came back (the response object, the error, a stream's output) is captured by
reference with the end time, and the record is queued on the session
(``SessionState.defer``) for the recorder thread (``background``). Every read of the
session runs it first, in order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sessionware.adapters.engine import background, guard
from sessionware.adapters.engine.call import InterceptedCall
from sessionware.adapters.engine.types import CallOutput

__all__ = ["ObservedCall"]


class ObservedCall(InterceptedCall):
    """A call of a client without hooks (see the module docstring)."""

    __slots__ = ("captured",)

    captured: tuple[Any, CallOutput | None, BaseException | None, str | None, float | None] | None
    """What the deferred record reads: response, output, error, end, first token time
    (set by ``_defer``, taken by the record)."""

    def send_rounds(self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Any]) -> Any:
        """Send ``send`` and return what the app receives (an error is recorded, re-raised)."""
        result = self.send_once(send, send_cls, send_one)
        self.completed(result)
        return result

    async def asend_rounds(
        self, send: Any, send_cls: Any, send_one: Callable[[Any, Any], Awaitable[Any]]
    ) -> Any:
        result = await self.asend_once(send, send_cls, send_one)
        self.completed(result)  # no coroutine: nothing here waits
        return result

    def received_response(self, result: Any) -> None:
        self._defer(result=result)

    def received_stream(self, result: Any) -> None:
        return None  # the stream records itself (``finish_stream``)

    def failed(self, error: BaseException) -> None:
        try:
            self._defer(error=error)
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
            self._defer(output=output, error=error, end=end, first_token_at=first_token_at)
        except Exception as exc:
            guard.report("a stream", exc)

    def defer_outcome(self, result: Any, error: BaseException | None, ended: float) -> None:
        """Queue the record of a non-streamed call that ended at ``ended`` (a call resolved
        after it returned, see ``pending``)."""
        self._defer(result=result, error=error, ended=ended)

    def _defer(
        self,
        *,
        result: Any = None,
        output: CallOutput | None = None,
        error: BaseException | None = None,
        end: str | None = None,
        first_token_at: float | None = None,
        ended: float | None = None,
    ) -> None:
        """Capture what the record needs and queue the recording on the session."""
        self.ended = time.perf_counter() if ended is None else ended
        state = self.state
        if state is None:
            return
        self.captured = (result, output, error, end, first_token_at)
        if state.defer(self._record_captured):
            background.schedule(state)

    def _record_captured(self) -> None:
        """The deferred record (on the recorder thread, or wherever the session is settled)."""
        captured, self.captured = self.captured, None
        if captured is None:
            return
        result, output, error, end, first_token_at = captured
        try:
            if result is not None:
                output = self.output_of(result)
            self.record(output=output, error=error, end=end, first_token_at=first_token_at)
        except Exception as exc:
            guard.report("a call", exc)
