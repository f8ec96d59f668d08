"""``with_streaming_response``: recording a body the app reads itself, without consuming it.

The app gets an unread HTTP body and may read it any way (``json()``, ``parse()``,
``iter_lines()``, ``iter_bytes()``...). The body's byte stream is replaced by a tee that
copies the bytes as the app reads them; when the response closes, the copy is parsed
(JSON, or server-sent events fed to the endpoint's accumulator) and the call recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.messages import wrap_json
from sessionware.adapters.engine.streams import StreamOwner
from sessionware.adapters.engine.types import CallOutput, Endpoint

__all__ = ["tee_body"]


class _TeeBody:
    """A response body whose bytes are copied to a sink as the app reads them, however it
    reads them; everything else is the original body's."""

    def __init__(self, inner: Any, sink: _TeeSink) -> None:
        self._inner = inner
        self._sink = sink

    def __iter__(self) -> Iterator[bytes]:
        feed = self._sink.feed
        for chunk in self._inner:
            feed(chunk)
            yield chunk

    async def _aiter(self) -> AsyncIterator[bytes]:
        feed = self._sink.feed
        async for chunk in self._inner:
            feed(chunk)
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._aiter()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._sink.close()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._sink.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("_inner", "_sink"):
            raise AttributeError(name)  # before __init__ ran (copies): no recursion
        return getattr(self._inner, name)


_tee_classes: dict[type, type] = {}
_BODY_BASES = ("SyncByteStream", "AsyncByteStream")


def _tee_class(original: type) -> type:
    """``_TeeBody`` made to subclass the byte-stream base classes of ``original``, which
    the HTTP client checks with ``isinstance`` before reading or closing a body."""
    found = _tee_classes.get(original)
    if found is None:
        bases = tuple(c for c in original.__mro__ if c.__name__ in _BODY_BASES)
        found = _tee_classes[original] = type(f"TeeBodyFor{original.__name__}", (_TeeBody, *bases), {})
    return found


class _TeeSink:
    """Collects a teed body and finishes the call from it when the body closes."""

    def __init__(self, owner: StreamOwner, endpoint: Endpoint, *, sse: bool) -> None:
        self.owner = owner
        self.endpoint = endpoint
        self.sse = sse
        self.parts: list[bytes] = []
        self.first_at: float | None = None
        self.done = False
        self.lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        if self.first_at is None and chunk:
            self.first_at = time.perf_counter()
        self.parts.append(chunk)

    def close(self) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        output: CallOutput | None = None
        end: str | None = None
        try:
            body = b"".join(self.parts)
            if self.sse:
                acc = self.endpoint.accumulator(hide_usage_chunk=False)
                for data in _sse_data(body):
                    acc.add(wrap_json(data))
                output = acc.result()
            elif body:
                output = self.endpoint.read_response(wrap_json(json.loads(body)))
            else:
                end = "closed"
        except Exception as exc:
            guard.report("a streamed response body", exc)
        self.owner.finish_stream(
            output, error=None, end=end, first_token_at=self.first_at if self.sse else None
        )


def _sse_data(body: bytes) -> Iterator[Any]:
    """The JSON ``data`` of each server-sent event in ``body``."""
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            continue
        data = b"\n".join(lines)
        if data.startswith(b"[DONE]"):
            continue
        try:
            yield json.loads(data)
        except ValueError:
            continue


def tee_body(http_response: Any, owner: StreamOwner, endpoint: Endpoint, *, sse: bool) -> None:
    """Copy ``http_response``'s body as the app reads it; finish ``owner`` when it closes."""
    sink = _TeeSink(owner, endpoint, sse=sse)
    if getattr(http_response, "is_closed", False) or "_content" in vars(http_response):
        # Already read (a body given in full, as mocks do): record it as it is.
        sink.feed(http_response.content)
        sink.close()
        return
    body = getattr(http_response, "stream", None)
    if body is not None:
        http_response.stream = _tee_class(type(body))(body, sink)
