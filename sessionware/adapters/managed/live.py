"""Managed mode's streamed rounds: read ahead, hidden, handed over, or continued.

``after_stream`` decides on a streamed round before the app reads it (``streams.Peek``):

* a memory call first (or only a short preamble before one): the round is read to its
  end, served and re-sent by the funnel (a hidden round; the app never sees it);
* an answer (text past ``stream_holdback_chars``): the app reads it live, from the first
  chunk, through a ``LiveRound``;
* the round ends: handed over whole.

A ``LiveRound`` is the owner of the round's recording. When a memory call comes after
the app already read text, its ``VisibleStream`` takes the call out of the app's sight;
at the round's end the call is served, the round is recorded as a hidden round, and the
next round is sent from inside the app's iteration (``funnel.resend``): its chunks follow
on the same stream, joined as one message (see ``visible``). The final round is recorded
as the call's answer with every round's visible text, and the time to the first token
the app read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from sessionware.adapters.engine.config import HiddenRound
from sessionware.adapters.engine.funnel import aresend, resend
from sessionware.adapters.engine.hooked import HookedCall
from sessionware.adapters.engine.streams import StreamOwner
from sessionware.adapters.engine.types import CallOutput
from sessionware.adapters.managed.run import Run
from sessionware.adapters.managed.streams import Capture, Peek, Verdict, anothing, araising, raising
from sessionware.adapters.managed.visible import VisibleStream
from sessionware.core.memory.policy import ContextPolicy

__all__ = ["LiveRound", "Rounds", "aafter_stream", "after_stream"]


class Rounds(Protocol):
    """What the streamed rounds ask of managed mode's hooks."""

    policy: ContextPolicy
    max_hidden_rounds: int

    def next_body(self, call: HookedCall, run: Run, output: CallOutput) -> Mapping[str, Any] | None: ...

    def final(self, run: Run, output: CallOutput, *, serve: bool = False, served: bool = False) -> None: ...


Following = Callable[[], "tuple[Any, VisibleStream, Any] | None"]


class LiveRound(StreamOwner):
    """Owner of a streamed round the app reads live (see the module docstring)."""

    __slots__ = ("call", "first_token_at", "next_options", "rounds", "run", "text", "visible")

    def __init__(
        self,
        rounds: Rounds,
        call: HookedCall,
        run: Run,
        *,
        after: LiveRound | None = None,
    ) -> None:
        self.rounds, self.call, self.run = rounds, call, run
        self.visible: VisibleStream = VisibleStream(
            call.endpoint.kind,
            continuable=run.can_go_on(rounds.max_hidden_rounds),
            after=after.visible if after is not None else None,
        )
        self.text: str = after.text if after is not None else ""
        """The text the app read in earlier rounds (the answer's record starts with it)."""
        self.first_token_at: float | None = after.first_token_at if after is not None else None
        self.next_options: Any = None

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None:
        if self.first_token_at is None:
            self.first_token_at = first_token_at
        call, run = self.call, self.run
        if output is not None and error is None and end is None and self.visible.continuing:
            body = self.rounds.next_body(call, run, output)
            if body is not None:
                self.text += output.text or ""
                self.next_options = call.hidden_round(HiddenRound(body, output, first_token_at))
                return
        if output is not None:
            if self.text:
                output.text = self.text + (output.text or "")
            # A memory call the app was not shown (after its own call): served for later rounds.
            self.rounds.final(run, output, serve=run.can_go_on(self.rounds.max_hidden_rounds))
        call.finish_stream(output, error=error, end=end, first_token_at=self.first_token_at)

    def _next(self) -> LiveRound | None:
        options, self.next_options = self.next_options, None
        if options is None or self.call.recording is None:
            return None
        following = LiveRound(self.rounds, self.call, self.run, after=self)
        self.call.recording.owner = following
        following.next_options = options
        return following

    def next_round(self) -> tuple[Any, VisibleStream, Following] | None:
        """The next round's SDK stream, sent now, when this round asked for one."""
        following = self._next()
        if following is None:
            return None
        options, following.next_options = following.next_options, None
        return resend(self.call, options), following.visible, following.next_round

    async def anext_round(self) -> tuple[Any, VisibleStream, Any] | None:
        following = self._next()
        if following is None:
            return None
        options, following.next_options = following.next_options, None
        return await aresend(self.call, options), following.visible, following.anext_round


# -- what the app iterates ----------------------------------------------------------------------


def play(
    buffered: list[Any], rest: Iterable[Any], visible: VisibleStream, following: Following | None = None
) -> Iterator[Any]:
    """The chunks read ahead, then the rest, then each round that continues the stream."""
    keep = visible.pass_chunk
    for chunk in buffered:
        shown = keep(chunk)
        if shown is not None:
            yield shown
    for chunk in rest:
        shown = keep(chunk)
        if shown is not None:
            yield shown
    while following is not None:
        nxt = following()
        if nxt is None:
            return
        stream, visible, following = nxt
        keep = visible.pass_chunk
        try:
            for chunk in stream:
                shown = keep(chunk)
                if shown is not None:
                    yield shown
        except GeneratorExit:
            stream.close()  # the app stopped reading: release this round's response
            raise


async def aplay(
    buffered: list[Any], rest: AsyncIterator[Any], visible: VisibleStream, following: Any = None
) -> AsyncIterator[Any]:
    keep = visible.pass_chunk
    for chunk in buffered:
        shown = keep(chunk)
        if shown is not None:
            yield shown
    async for chunk in rest:
        shown = keep(chunk)
        if shown is not None:
            yield shown
    while following is not None:
        nxt = await following()
        if nxt is None:
            return
        stream, visible, following = nxt
        keep = visible.pass_chunk
        try:
            async for chunk in stream:
                shown = keep(chunk)
                if shown is not None:
                    yield shown
        except GeneratorExit:
            await stream.close()
            raise


# -- deciding on a round --------------------------------------------------------------------------


def _started(rounds: Rounds, call: HookedCall) -> tuple[Run, Any, Capture, Peek] | None:
    """What reading a streamed round ahead needs (None: the app reads it as it is)."""
    run = call.hook_state
    recording = call.recording
    if not isinstance(run, Run) or recording is None or not run.hide_calls:
        return None
    capture = Capture()
    recording.owner = capture
    return run, recording, capture, Peek(call.endpoint.kind, rounds.policy.stream_holdback_chars)


def after_stream(rounds: Rounds, call: HookedCall, stream: Any) -> HiddenRound | None:
    started = _started(rounds, call)
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
        _deliver(rounds, call, run, capture)
        stream.__dict__["_iterator"] = play(buffered, raising(exc), VisibleStream(call.endpoint.kind))
        return None
    if verdict is Verdict.LIVE:
        live = LiveRound(rounds, call, run)
        recording.owner = live
        stream.__dict__["_iterator"] = play(buffered, rest, live.visible, live.next_round)
        return None
    return _read(rounds, call, run, stream=stream, buffered=buffered, capture=capture, is_async=False)


async def aafter_stream(rounds: Rounds, call: HookedCall, stream: Any) -> HiddenRound | None:
    started = _started(rounds, call)
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
        _deliver(rounds, call, run, capture)
        stream.__dict__["_iterator"] = aplay(buffered, araising(exc), VisibleStream(call.endpoint.kind))
        return None
    if verdict is Verdict.LIVE:
        live = LiveRound(rounds, call, run)
        recording.owner = live
        stream.__dict__["_iterator"] = aplay(buffered, rest, live.visible, live.anext_round)
        return None
    return _read(rounds, call, run, stream=stream, buffered=buffered, capture=capture, is_async=True)


def _read(
    rounds: Rounds,
    call: HookedCall,
    run: Run,
    *,
    stream: Any,
    buffered: list[Any],
    capture: Capture,
    is_async: bool,
) -> HiddenRound | None:
    """A round read to its end: hidden, or handed to the app whole."""
    output = capture.output
    if output is not None:
        body = rounds.next_body(call, run, output)
        if body is not None:
            return HiddenRound(body, output, capture.first_token_at)
    _deliver(rounds, call, run, capture, finalised=True)
    visible = VisibleStream(call.endpoint.kind)
    if is_async:
        stream.__dict__["_iterator"] = aplay(buffered, anothing(), visible)
    else:
        stream.__dict__["_iterator"] = play(buffered, (), visible)
    return None


def _deliver(
    rounds: Rounds, call: HookedCall, run: Run, capture: Capture, *, finalised: bool = False
) -> None:
    """Record the round the app gets, as the stream's recording would have."""
    if capture.output is not None and not finalised:
        rounds.final(run, capture.output)
    call.finish_stream(
        capture.output, error=capture.error, end=capture.end, first_token_at=capture.first_token_at
    )
