"""Streams that stay the SDK's own streams, recorded as they are read.

The request funnel receives the ``stream_cls`` the SDK will build the stream from
(``Stream[ChatCompletionChunk]``, ``AsyncStream[RawMessageStreamEvent]``...). The adapter
passes a subclass of it instead, made once per chunk type, whose ``__stream__`` feeds
each chunk to the call's ``StreamAccumulator`` on its way to the app. The app therefore
gets a genuine SDK stream (``isinstance``, ``.response``, ``close()``, context managers,
and the SDK helpers built on top: ``MessageStream``, ``ChatCompletionStream``...).

Recording finishes exactly once, whichever comes first:

* the chunks run out (complete, or cut short when the provider's last event is missing);
* iteration raises (the provider's error is recorded, then re-raised untouched);
* the HTTP response is closed while chunks remain (``close()``, ``with`` exit, the SDK
  helpers' own ``close``): noticed by wrapping that response's ``close``/``aclose``;
* the stream is garbage collected unread (``__del__``): recorded as abandoned, by the
  next read of its session or else the recorder thread (``background``).

``with_streaming_response`` hands the app an unread body instead of a stream: see ``tee``.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import types
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.background import collecting, defer, watch_collector
from sessionware.adapters.engine.types import CallOutput, StreamAccumulator
from sessionware.core.session.state import SessionState

__all__ = ["StreamOwner", "StreamRecording", "pending_stream", "recording_stream_class", "register_response"]

_ATTR = "_sessionware_recording"


class StreamOwner(Protocol):
    """What a stream's recording reports to when the stream ends, once: the intercepted
    call, or a wrapping mode standing in front of it (managed mode's final round)."""

    __slots__ = ()

    def finish_stream(
        self,
        output: CallOutput | None,
        *,
        error: BaseException | None,
        end: str | None,
        first_token_at: float | None,
    ) -> None: ...


class StreamRecording:
    """Bookkeeping of one streamed call. ``finish`` acts once; later calls do nothing."""

    __slots__ = ("abandoned", "acc", "claimed", "done", "gen", "is_async", "lock", "owner", "stream_id")

    def __init__(self, owner: StreamOwner, acc: StreamAccumulator, *, is_async: bool) -> None:
        self.owner = owner
        self.acc = acc
        self.is_async = is_async
        self.gen: Any = None
        self.claimed = False
        self.abandoned = False
        self.stream_id = 0
        """``id()`` of the stream object the app holds (the SDK may iterate a copy)."""
        self.done = False
        self.lock = threading.Lock()

    def finish(self, *, error: BaseException | None = None, end: str | None = None) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        if sys.is_finalizing():
            return
        try:
            output = self.acc.result()
        except Exception as exc:
            guard.report("a stream's output", exc)
            output = None
        self.owner.finish_stream(output, error=error, end=end, first_token_at=self.acc.first_token_at)

    def abandon(self) -> None:
        self.finish(end="abandoned")

    def abandon_soon(self) -> None:
        """Record the stream as abandoned soon (safe in ``__del__``: only queues work).

        The abandonment joins its store's queue of work that reads settle first, so a
        read of the session right after the collector dropped the stream includes it;
        the recorder thread runs it otherwise. The queued work must not keep the
        stream's generator, which keeps the SDK's and its HTTP response: the app let go
        of the stream, so the collector has to be able to free them (and so close the
        response, releasing its connection) now, not after the queue ran.
        """
        if self.abandoned:
            return
        self.abandoned = True
        self.gen = None
        state = getattr(self.owner, "state", None)  # the call's session (a stand-in owner has none)
        if not isinstance(state, SessionState):
            defer(self.abandon)
            return
        # In the store's queue it may run on any thread holding another session's lock:
        # it only defers onto its own session, whose settle records it under that lock.
        abandon = self.abandon

        def join_session() -> None:
            state.defer(abandon)

        state.store.barrier.defer_unresolved(join_session)
        defer(state.store.barrier.settle)

    def on_closed(self) -> None:
        gen = self.gen
        # Closing from inside our own generator (the SDK and the HTTP client close the
        # response when the chunks run out) is the normal end, recorded by the generator.
        if gen is not None and (gen.ag_running if self.is_async else gen.gi_running):
            return
        if self.abandoned:
            return  # the SDK closing the response of a stream being torn down
        if collecting():
            self.abandon_soon()  # the collector closing an unreachable stream's response
        else:
            self.finish(end="closed")

    def broken(self, exc: Exception) -> None:
        """An accumulator failure: report it, stop accumulating, keep the app's stream."""
        guard.report("a stream chunk", exc)


def _never_hide(chunk: Any) -> bool:
    return False


# The recording waiting for the stream object the SDK is about to build inside the
# funnel call; raw responses build theirs later, found through their HTTP response.
pending_stream: contextvars.ContextVar[StreamRecording | None] = contextvars.ContextVar(
    "sessionware_pending_stream", default=None
)
_by_response: weakref.WeakKeyDictionary[Any, StreamRecording] = weakref.WeakKeyDictionary()


def register_response(http_response: Any, recording: StreamRecording) -> None:
    """Let a stream built later from ``http_response`` (``.parse()`` of a raw response) record."""
    _by_response[http_response] = recording


def _claim(response: Any) -> StreamRecording | None:
    recording = pending_stream.get()
    if recording is None or recording.claimed:
        recording = _by_response.pop(response, None) if response is not None else None
    if recording is not None:
        recording.claimed = True
    return recording


def _attach(stream: Any, response: Any) -> None:
    try:
        recording = _claim(response)
        if recording is None:
            return
        stream.__dict__[_ATTR] = recording
        recording.stream_id = id(stream)
        if response is not None:
            _notify_close(response, recording)
    except Exception as exc:
        guard.report("a stream", exc)


def _notify_close(response: Any, recording: StreamRecording) -> None:
    """Have ``response.close()`` / ``aclose()`` tell ``recording``: every way of closing an
    SDK stream (its ``close``, context exit, the helpers' ``close``) ends there, even
    when the body was already read to the end by the transport."""
    close = response.close
    aclose = getattr(response, "aclose", None)

    def closing() -> None:
        try:
            close()
        finally:
            recording.on_closed()

    async def aclosing() -> None:
        try:
            if aclose is not None:
                await aclose()
        finally:
            recording.on_closed()

    response.__dict__["close"] = closing
    if aclose is not None:
        response.__dict__["aclose"] = aclosing


def _record(inner: Iterator[Any], recording: StreamRecording) -> Iterator[Any]:
    add: Callable[[Any], bool] = recording.acc.add
    try:
        for item in inner:
            try:
                hide = add(item)
            except Exception as exc:
                recording.broken(exc)
                add, hide = _never_hide, False
            if not hide:
                yield item
    except GeneratorExit:
        recording.abandon_soon()
        raise
    except BaseException as exc:
        recording.finish(error=exc, end="error")
        raise
    recording.finish()


async def _arecord(inner: AsyncIterator[Any], recording: StreamRecording) -> AsyncIterator[Any]:
    add: Callable[[Any], bool] = recording.acc.add
    try:
        async for item in inner:
            try:
                hide = add(item)
            except Exception as exc:
                recording.broken(exc)
                add, hide = _never_hide, False
            if not hide:
                yield item
    except GeneratorExit:
        recording.abandon_soon()
        raise
    except BaseException as exc:
        recording.finish(error=exc, end="error")
        raise
    recording.finish()


def _abandon(stream: Any) -> None:
    recording = stream.__dict__.get(_ATTR)
    # Copies made for iteration die when their chunks run out; only the app's object counts.
    if recording is not None and not recording.done and recording.stream_id == id(stream):
        recording.abandon_soon()


_classes: dict[Any, type] = {}
_classes_lock = threading.Lock()


def recording_stream_class(stream_cls: Any, *, is_async: bool) -> Any:
    """The recording subclass of the SDK's ``stream_cls`` (made once per chunk type)."""
    found = _classes.get(stream_cls)
    if found is not None:
        return found
    watch_collector()
    with _classes_lock:
        found = _classes.get(stream_cls)
        if found is None:
            found = _classes[stream_cls] = _make_class(stream_cls, is_async=is_async)
        return found


def _make_class(stream_cls: Any, *, is_async: bool) -> Any:
    klass: Any = None

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # Before the SDK's __init__, which may already call __stream__.
        _attach(self, kwargs.get("response"))
        super(klass, self).__init__(*args, **kwargs)

    def __stream__(self: Any) -> Any:
        inner = super(klass, self).__stream__()
        recording = self.__dict__.get(_ATTR)
        if recording is None:
            return inner
        gen = _arecord(inner, recording) if is_async else _record(inner, recording)
        recording.gen = gen
        return gen

    def __del__(self: Any) -> None:
        _abandon(self)

    origin = getattr(stream_cls, "__origin__", stream_cls)
    namespace = {"__init__": __init__, "__stream__": __stream__, "__del__": __del__, "__module__": __name__}
    klass = types.new_class(
        f"Recorded{origin.__name__}", (stream_cls,), exec_body=lambda ns: ns.update(namespace)
    )
    return klass
