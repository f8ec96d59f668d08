"""``with_streaming_response``: recording a body the app reads itself, without consuming it.

The app gets an unread HTTP body and may read it any way (``json()``, ``parse()``,
``iter_lines()``, ``iter_bytes()``...). The body's byte stream is replaced by a tee that
copies the bytes as the app reads them; when the response closes, the copy is parsed
(JSON, or server-sent events fed to the endpoint's accumulator) and the call recorded.

The copy is of the bytes on the wire, so it is decoded first as the HTTP client decodes
them for the app (``Content-Encoding``: gzip, deflate, and brotli when the ``brotli``
package is there, as in httpx). A body the app could not read in full (the connection
was lost) records the error the app saw; a body that cannot be decoded or parsed is the
provider's business, not a failure of ours: the call is recorded without output.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from sessionware.adapters.engine import guard
from sessionware.adapters.engine.messages import wrap_json
from sessionware.adapters.engine.streams import StreamOwner
from sessionware.adapters.engine.types import CallOutput, Endpoint

__all__ = ["decode_body", "tee_body"]

logger = logging.getLogger(__name__)


def _gunzip(data: bytes) -> bytes:
    # Several gzip members may follow one another, as zlib's own streaming allows.
    out, rest = [], data
    while rest:
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out.append(decoder.decompress(rest))
        rest = decoder.unused_data
        if not decoder.eof:
            raise ValueError("truncated gzip body")
    return b"".join(out)


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)  # raw deflate, as some servers send


def _unbrotli(data: bytes) -> bytes:
    import brotli  # type: ignore[import-not-found,unused-ignore]

    decoded: bytes = brotli.decompress(data)
    return decoded


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
    "identity": bytes,
}


def decode_body(data: bytes, content_encoding: str | None) -> bytes:
    """``data`` as sent with ``content_encoding`` (a comma-separated list, applied in
    order), decoded; raises ``ValueError`` (or the codec's error) when it cannot be."""
    if not content_encoding:
        return data
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise ValueError(f"unknown content encoding {coding!r}")
        data = decoder(data)
    return data


class _TeeBody:
    """A response body whose bytes are copied to a sink as the app reads them, however it
    reads them; everything else is the original body's."""

    def __init__(self, inner: Any, sink: _TeeSink) -> None:
        self._inner = inner
        self._sink = sink

    def __iter__(self) -> Iterator[bytes]:
        feed = self._sink.feed
        try:
            for chunk in self._inner:
                feed(chunk)
                yield chunk
        except Exception as exc:
            self._sink.error = exc  # the app sees it; the record says what it saw
            raise

    async def _aiter(self) -> AsyncIterator[bytes]:
        feed = self._sink.feed
        try:
            async for chunk in self._inner:
                feed(chunk)
                yield chunk
        except Exception as exc:
            self._sink.error = exc
            raise

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

    def __init__(
        self, owner: StreamOwner, endpoint: Endpoint, *, sse: bool, content_encoding: str | None = None
    ) -> None:
        self.owner = owner
        self.endpoint = endpoint
        self.sse = sse
        self.content_encoding = content_encoding
        self.error: BaseException | None = None
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
        output, end = self._read()
        self.owner.finish_stream(
            output, error=self.error, end=end, first_token_at=self.first_at if self.sse else None
        )

    def _read(self) -> tuple[CallOutput | None, str | None]:
        """The output the body carries, and how it ended (None: complete)."""
        if self.error is not None:
            return self._events() if self.sse else None, "error"
        try:
            body = decode_body(b"".join(self.parts), self.content_encoding)
        except Exception as exc:
            logger.info("sessionware could not decode a response body (%r); recorded without output", exc)
            return None, "undecodable"
        if self.sse:
            return self._events(body), None
        if not body:
            return None, "closed"
        try:
            data = json.loads(body)
        except ValueError:
            return None, "undecodable"
        try:
            return self.endpoint.read_response(wrap_json(data)), None
        except Exception as exc:
            guard.report("a streamed response body", exc)
            return None, None

    def _events(self, body: bytes | None = None) -> CallOutput | None:
        """The accumulated server-sent events of ``body`` (or of what arrived decodably)."""
        try:
            if body is None:
                body = decode_body(b"".join(self.parts), self.content_encoding)
        except Exception:
            return None  # a compressed body cut off: what arrived cannot be told apart
        try:
            acc = self.endpoint.accumulator(hide_usage_chunk=False)
            for data in _sse_data(body):
                acc.add(wrap_json(data))
            return acc.result()
        except Exception as exc:
            guard.report("a streamed response body", exc)
            return None


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
    if getattr(http_response, "is_closed", False) or "_content" in vars(http_response):
        # Already read (a body given in full, as mocks do): record it as it is, decoded.
        sink = _TeeSink(owner, endpoint, sse=sse)
        sink.feed(http_response.content)
        sink.close()
        return
    headers = getattr(http_response, "headers", None)
    encoding = headers.get("content-encoding") if headers is not None else None
    sink = _TeeSink(owner, endpoint, sse=sse, content_encoding=encoding)
    body = getattr(http_response, "stream", None)
    if body is not None:
        http_response.stream = _tee_class(type(body))(body, sink)
