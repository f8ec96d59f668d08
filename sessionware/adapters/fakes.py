"""Offline stand-ins for the OpenAI and Anthropic HTTP APIs.

They answer the real SDKs through the SDKs' own HTTP clients (``httpx.MockTransport``
for ``openai``, ``httpx2.MockTransport`` for ``anthropic``) with payloads and
server-sent event streams in the shapes the providers document, including tool calls,
streamed tool-call deltas, the usage-only chunk of ``stream_options.include_usage`` and
Anthropic's cache usage. Examples, tests and benchmarks run against them offline.

>>> import httpx, openai
>>> api = FakeOpenAI()
>>> client = openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=api.transport()))
>>> reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
>>> reply.choices[0].message.content
'You said: hi'
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeAnthropic", "FakeOpenAI", "Reply", "sse"]


@dataclass
class Reply:
    """What the fake model answers to one request."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """``(function name, arguments)`` pairs."""
    refusal: str | None = None
    model: str | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    status: int = 200
    """A non-200 status answers with the provider's error body instead."""
    error: str = "The fake API was told to fail this request."


Script = Callable[[Mapping[str, Any]], Reply]


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p["text"]) for p in content if isinstance(p, Mapping) and "text" in p)
    return ""


def _echo(body: Mapping[str, Any]) -> Reply:
    messages = body.get("messages")
    if messages is None:
        data = body.get("input")
        messages = [{"role": "user", "content": data}] if isinstance(data, str) else list(data or ())
    last = next((m for m in reversed(messages) if isinstance(m, Mapping) and m.get("role") == "user"), None)
    said = _text_of(last.get("content")) if last else ""
    return Reply(text=f"You said: {said}")


def sse(events: Iterable[Mapping[str, Any]], *, named: bool = False, done: bool = False) -> bytes:
    """Server-sent events: ``data:`` lines (with ``event:`` names when ``named``)."""
    out: list[str] = []
    for event in events:
        if named:
            out.append(f"event: {event['type']}\n")
        out.append(f"data: {json.dumps(event)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


class _FakeAPI:
    default_model = "fake"

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or _echo
        self.requests: list[dict[str, Any]] = []
        """Every JSON body received, in order."""
        self.queue: deque[Reply | Callable[[Any], Any]] = deque()
        """One-off replies (or raw handlers returning an HTTP response), used before ``script``."""

    def push(self, *replies: Reply | Callable[[Any], Any]) -> None:
        self.queue.extend(replies)

    def _next(self, body: Mapping[str, Any]) -> Reply | Callable[[Any], Any]:
        return self.queue.popleft() if self.queue else self.script(body)


class FakeOpenAI(_FakeAPI):
    """``/chat/completions``, ``/responses`` and ``/embeddings`` of the OpenAI API."""

    default_model = "gpt-4o-mini-2024-07-18"

    def transport(self) -> Any:
        import httpx

        return httpx.MockTransport(self.handle)

    def handle(self, request: Any) -> Any:
        import httpx

        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        reply = self._next(body)
        if callable(reply):
            return reply(request)
        if reply.status != 200:
            error = {"error": {"message": reply.error, "type": "server_error", "param": None, "code": None}}
            return httpx.Response(reply.status, json=error)
        path = request.url.path
        if path.endswith("/embeddings"):
            return _json_response(httpx, self._embeddings(body))
        if path.endswith("/responses"):
            if body.get("stream"):
                return _sse_response(httpx, self._responses_events(body, reply), named=True)
            return _json_response(httpx, self._response(body, reply))
        if body.get("stream"):
            return _sse_response(httpx, self._chat_chunks(body, reply), done=True)
        return _json_response(httpx, self._chat(body, reply))

    def _usage(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        prompt = sum(_tokens(_text_of(m.get("content"))) + 4 for m in body.get("messages") or ())
        prompt += _tokens(body["input"]) if isinstance(body.get("input"), str) else 0
        completion = _tokens(reply.text or reply.refusal or "") + sum(
            _tokens(json.dumps(args)) + 4 for _, args in reply.tool_calls
        )
        prompt = max(prompt, reply.cached_tokens)  # cached tokens are a part of the prompt
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0},
        }

    def _chat(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        calls = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": reply.refusal}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": reply.model or self.default_model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}],
            "usage": self._usage(body, reply),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _chat_chunks(self, body: Mapping[str, Any], reply: Reply) -> list[dict[str, Any]]:
        model = reply.model or self.default_model

        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [choice],
            }

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        chunks += [chunk({"content": piece}) for piece in _pieces(reply.text or "") if piece]
        if reply.refusal:
            chunks.append(chunk({"refusal": reply.refusal}))
        for i, (name, args) in enumerate(reply.tool_calls):
            head = {
                "index": i,
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            chunks.append(chunk({"tool_calls": [head]}))
            text = json.dumps(args)
            for part in (text[: len(text) // 2], text[len(text) // 2 :]):
                chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]}))
        chunks.append(chunk({}, _finish(reply)))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            for c in chunks:
                c["usage"] = None
            chunks.append({**chunk(None), "choices": [], "usage": self._usage(body, reply)})
        return chunks

    def _response(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if reply.text is not None or reply.refusal is not None:
            part = (
                {"type": "output_text", "text": reply.text, "annotations": []}
                if reply.text is not None
                else {"type": "refusal", "refusal": reply.refusal}
            )
            output.append(
                {
                    "type": "message",
                    "id": "msg_fake",
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        for i, (name, args) in enumerate(reply.tool_calls):
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{i}",
                    "call_id": f"call_{i}",
                    "name": name,
                    "arguments": json.dumps(args),
                    "status": "completed",
                }
            )
        usage = self._usage(body, reply)
        return {
            "id": f"resp_fake_{len(self.requests)}",
            "object": "response",
            "created_at": 1_700_000_000,
            "status": "completed",
            "model": reply.model or self.default_model,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": usage["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": reply.cached_tokens},
                "output_tokens": usage["completion_tokens"],
                "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
                "total_tokens": usage["total_tokens"],
            },
        }

    def _responses_events(self, body: Mapping[str, Any], reply: Reply) -> list[dict[str, Any]]:
        final = self._response(body, reply)
        started = {**final, "status": "in_progress", "output": [], "usage": None}
        events: list[dict[str, Any]] = [{"type": "response.created", "response": started}]
        for index, item in enumerate(final["output"]):
            empty = {**item, "content": []} if item["type"] == "message" else {**item, "arguments": ""}
            events.append({"type": "response.output_item.added", "output_index": index, "item": empty})
            if item["type"] == "message" and reply.text is not None:
                events += self._text_events(item, index)
            elif item["type"] == "function_call":
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "delta": item["arguments"],
                    }
                )
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        events.append({"type": "response.completed", "response": final})
        return [{**e, "sequence_number": n} for n, e in enumerate(events)]

    @staticmethod
    def _text_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
            *(
                {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                for piece in _pieces(part["text"])
            ),
            {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []},
            {"type": "response.content_part.done", **where, "part": part},
        ]

    def _embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data = body.get("input")
        texts = [data] if isinstance(data, str) else list(data or [])
        tokens = sum(_tokens(str(t)) for t in texts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(texts))
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _finish(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


_chunk_classes: dict[str, type] = {}


def _chunked(http: Any, chunks: list[bytes]) -> Any:
    """A body delivered in ``chunks``, readable by sync and async clients, and not read
    in advance (as a body given as ``content=`` would be): like one off the network."""
    cls = _chunk_classes.get(http.__name__)
    if cls is None:

        class Chunks(http.SyncByteStream, http.AsyncByteStream):  # type: ignore[misc]
            def __init__(self, parts: list[bytes]) -> None:
                self.parts = parts

            def __iter__(self) -> Iterator[bytes]:
                yield from self.parts

            async def __aiter__(self) -> AsyncIterator[bytes]:
                for part in self.parts:
                    yield part

        cls = _chunk_classes[http.__name__] = Chunks
    return cls(chunks)


def _sse_response(http: Any, events: list[dict[str, Any]], *, named: bool = False, done: bool = False) -> Any:
    chunks = [sse([event], named=named) for event in events]
    if done:
        chunks.append(b"data: [DONE]\n\n")
    return http.Response(200, stream=_chunked(http, chunks), headers={"content-type": "text/event-stream"})


def _json_response(http: Any, payload: dict[str, Any]) -> Any:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    return http.Response(200, stream=_chunked(http, [body]), headers=headers)


class FakeAnthropic(_FakeAPI):
    """``/v1/messages`` of the Anthropic API (also ``?beta=true``)."""

    default_model = "claude-haiku-4-5-20251001"

    def transport(self) -> Any:
        import httpx2

        return httpx2.MockTransport(self.handle)

    def handle(self, request: Any) -> Any:
        import httpx2

        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        reply = self._next(body)
        if callable(reply):
            return reply(request)
        if reply.status != 200:
            error = {"type": "error", "error": {"type": "api_error", "message": reply.error}}
            return httpx2.Response(reply.status, json=error)
        if body.get("stream"):
            return _sse_response(httpx2, self._events(body, reply), named=True)
        return _json_response(httpx2, self._message(body, reply))

    def _usage(self, body: Mapping[str, Any], reply: Reply) -> dict[str, int]:
        prompt = sum(_tokens(_text_of(m.get("content"))) + 4 for m in body.get("messages") or ())
        prompt += _tokens(_text_of(body.get("system")))
        return {
            "input_tokens": max(prompt - reply.cached_tokens - reply.cache_write_tokens, 1),
            "cache_read_input_tokens": reply.cached_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "output_tokens": _tokens(reply.text or "")
            + sum(_tokens(json.dumps(a)) + 4 for _, a in reply.tool_calls),
        }

    def _content(self, reply: Reply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        content += [
            {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
        return content

    def _stop(self, reply: Reply) -> str:
        return "refusal" if reply.refusal is not None else ("tool_use" if reply.tool_calls else "end_turn")

    def _message(self, body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": reply.model or self.default_model,
            "content": self._content(reply),
            "stop_reason": self._stop(reply),
            "stop_sequence": None,
            "usage": self._usage(body, reply),
        }

    def _events(self, body: Mapping[str, Any], reply: Reply) -> list[dict[str, Any]]:
        usage = self._usage(body, reply)
        start = {**self._message(body, reply), "content": [], "stop_reason": None}
        start["usage"] = {**usage, "output_tokens": 1}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
        for index, block in enumerate(self._content(reply)):
            empty = {"type": "text", "text": ""} if block["type"] == "text" else {**block, "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": empty})
            if block["type"] == "text":
                events += [
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    }
                    for piece in _pieces(block["text"])
                ]
            else:
                text = json.dumps(block["input"])
                events += [
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    }
                    for part in (text[: len(text) // 2], text[len(text) // 2 :])
                ]
            events.append({"type": "content_block_stop", "index": index})
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop(reply), "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            }
        )
        events.append({"type": "message_stop"})
        return events
