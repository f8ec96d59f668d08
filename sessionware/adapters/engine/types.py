"""Provider-neutral shapes of one intercepted call, and what each provider supplies.

A provider adapter (``openai/spec.py``, ``anthropic/spec.py``) gives a client's
``ProviderSpec``, which maps request URLs to ``Endpoint`` readers (the client method
every request goes through is the provider's row in ``providers``). An endpoint turns
the JSON body into a ``CallRequest`` (the conversation as provider-neutral
``WireMessage`` tuples) and a response, or a stream of chunks fed to a
``StreamAccumulator``, into a ``CallOutput``. Nothing here imports a provider SDK: the
readers use attribute access on whatever the SDK built (or on ``AttrDict`` payloads
when only raw bytes were seen), so SDK objects are never converted or copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.session.enums import Role

__all__ = [
    "CallOutput",
    "CallRequest",
    "Endpoint",
    "EndpointKind",
    "ProviderSpec",
    "StreamAccumulator",
    "WireCall",
    "WireMessage",
]


class EndpointKind(StrEnum):
    """The provider endpoints the adapters understand."""

    CHAT = "chat.completions"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"
    MESSAGES = "messages"


class WireCall(NamedTuple):
    """A tool call as it appears in a conversation: id, function name, JSON arguments."""

    id: str
    name: str
    arguments: str


class WireMessage(NamedTuple):
    """One conversation message of a request, in the shape events are recorded in.

    ``content`` is text or a list of content parts, kept as the request had them.
    """

    role: Role
    content: str | list[dict[str, Any]] | None
    calls: tuple[WireCall, ...] = ()
    call_id: str | None = None
    name: str | None = None


class CallRequest:
    """What the app asked for, read from the request body before it is sent.

    A reader may give ``keys`` (the identity of each message, see ``message_key``) and a
    ``build(start)`` function instead of ``messages``: messages are then only built when
    something needs them, which on most calls is just the few the session has not seen.
    ``keys`` may itself be a function, called on first use: what threads a call into a
    session (``model``, ``system``, ``first_user``, ``continues``) is read when the call is
    made, the conversation itself only when it is recorded, off the app's path.
    """

    __slots__ = (
        "_build",
        "_keys",
        "_messages",
        "continues",
        "conversational",
        "first_user",
        "inputs",
        "model",
        "system",
        "tools",
    )

    def __init__(
        self,
        *,
        model: str | None,
        system: str | None,
        messages: list[WireMessage] | None = None,
        build: Callable[[int], list[WireMessage]] | None = None,
        keys: list[int] | Callable[[], list[int]] | None = None,
        first_user: Any = None,
        continues: str | None = None,
        tools: list[Mapping[str, Any]] | None = None,
        conversational: bool = True,
        inputs: int = 0,
    ) -> None:
        self.model = model
        self.system = system
        """Leading system/developer text (or Anthropic ``system``, Responses ``instructions``)."""
        self._messages = messages
        self._build = build
        self._keys = keys
        self.first_user = (
            first_user
            if messages is None
            else next((m.content for m in messages if m.role is Role.USER), None)
        )
        """The content of the first user message (what conversations are threaded on)."""
        self.continues = continues
        """A server-side conversation this request continues (Responses ``previous_response_id``):
        its messages are all new, there is no history to diff."""
        self.tools = tools or []
        self.conversational = conversational
        """False for calls without a conversation (embeddings): only usage and cost are recorded."""
        self.inputs = inputs
        """Number of inputs of a non-conversational call (embedded texts)."""

    @property
    def keys(self) -> list[int] | None:
        """The identity of each message (``message_key``), when the reader gave them."""
        keys = self._keys
        if keys is None or isinstance(keys, list):
            return keys
        read = self._keys = keys()
        return read

    @property
    def messages(self) -> list[WireMessage]:
        """The conversation after the leading system text, as ``WireMessage`` tuples."""
        if self._messages is None:
            self._messages = self._build(0) if self._build is not None else []
        return self._messages

    def messages_from(self, start: int) -> list[WireMessage]:
        """``messages[start:]``, building only those."""
        if self._messages is None and self._build is not None:
            return self._build(start)
        return self.messages[start:]


@dataclass(slots=True)
class CallOutput:
    """What the model produced, read from a response or accumulated from a stream."""

    text: str | None = None
    calls: list[WireCall] = field(default_factory=list)
    refusal: str | None = None
    usage: TokenUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    complete: bool = True
    """False when a stream ended before the provider's final event."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider details worth keeping in the event's metadata (service tier...)."""


class StreamAccumulator(Protocol):
    """Collects a stream's chunks as they pass to the app. One per streamed call.

    ``add`` runs once per chunk on the app's iteration path, so it must stay cheap
    (attribute reads and list appends). It returns True for a chunk the app must not
    see (the usage-only chunk sessionware asked for on the app's behalf).
    """

    first_token_at: float | None
    """``time.perf_counter()`` when the first output token arrived."""

    def add(self, chunk: Any) -> bool: ...

    def result(self) -> CallOutput: ...


class Endpoint(Protocol):
    """How to read one provider endpoint."""

    kind: EndpointKind

    def read_request(self, body: Mapping[str, Any]) -> CallRequest: ...

    def read_response(self, response: Any) -> CallOutput: ...

    def accumulator(self, *, hide_usage_chunk: bool, single_choice: bool = False) -> StreamAccumulator:
        """A stream's accumulator; ``single_choice``: the request asked for one choice."""
        ...

    def with_stream_usage(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """A copy of ``body`` that asks for usage in the stream, or None when the
        endpoint already reports it (or cannot be asked)."""
        ...


class ProviderSpec(Protocol):
    """How to read one client's endpoints."""

    name: str
    """Provider id for pricing (``openai``, ``azure``, ``anthropic``)."""

    def endpoint(self, method: str, url: str) -> Endpoint | None:
        """The reader for a request, or None for calls that are not recorded."""
        ...
