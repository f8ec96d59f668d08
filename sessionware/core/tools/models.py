"""The data of tool execution: a parsed call, its typed result, and their vocabulary.

A ``ToolInvocation`` is one call the model asked for, in provider-neutral form, keeping
the provider's call id (``call_...`` for OpenAI, ``toolu_...`` for Anthropic) so the
result can be linked back. A ``ToolResult`` is what became of it: success, an error of
the tool, a timeout, arguments that did not validate, an unknown tool, or a guard's
refusal. Every failure is a result the model can read, never an exception into the loop.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.errors import ToolProcessingError
from sessionware.core.session.models import ErrorInfo

__all__ = [
    "ErrorInfo",
    "ToolFormat",
    "ToolInvocation",
    "ToolResult",
    "ToolScope",
    "ToolStatus",
    "refusal",
    "result_text",
]


class ToolStatus(StrEnum):
    """What became of one tool call."""

    SUCCESS = "success"
    ERROR = "error"
    """The tool raised."""
    TIMEOUT = "timeout"
    """The tool did not finish within its timeout."""
    INVALID_ARGUMENTS = "invalid_arguments"
    """The arguments were not a JSON object or did not validate against the tool's schema."""
    UNKNOWN_TOOL = "unknown_tool"
    """No tool of that name is registered."""
    BLOCKED = "blocked"
    """A guard refused the call (the tool did not run) or its result (an output check)."""

    @property
    def failed(self) -> bool:
        """True when the tool ran (or tried to) and did not succeed; a block is not a failure."""
        return self not in (ToolStatus.SUCCESS, ToolStatus.BLOCKED)


class ToolFormat(StrEnum):
    """The wire format tool calls came in, and the one results are rendered for."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class ToolScope(StrEnum):
    """How long something tied to a session lasts: until the next user message, or for the session."""

    TURN = "turn"
    SESSION = "session"


class ToolInvocation(BaseModel):
    """One tool call the model asked for.

    ``arguments`` is the decoded JSON object; ``raw_arguments`` the text as the model
    produced it. When that text is not a JSON object, ``parse_error`` says why and the
    call is answered with an ``INVALID_ARGUMENTS`` result instead of running.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str = "{}"
    parse_error: str | None = None

    def with_arguments(self, arguments: dict[str, Any]) -> ToolInvocation:
        """The same call with other arguments (a guard's repair); the raw text stays the model's."""
        return self.model_copy(update={"arguments": arguments})


def result_text(result: Any, error: ErrorInfo | None) -> str:
    """The text the model receives for a result.

    It is the same text ``get_messages_for_llm`` rebuilds from the recorded event, so a
    wrapped client that diffs the app's next request against the log sees no change.
    """
    if error is not None:
        return f"Error: {error.message}"
    if isinstance(result, str):
        return result
    return json.dumps(result, default=str, ensure_ascii=False)


class ToolResult(BaseModel):
    """The outcome of one tool call, keeping the provider's ``call_id``.

    ``result`` is the tool's return value made JSON-compatible (what is logged and sent);
    ``arguments`` are the ones the tool ran with (after a guard's repair, such as a
    ``$v1`` reference replaced by its value). ``binding`` names the ``$vN`` a numeric
    result was bound to. ``content`` is the text for the model.

    >>> r = ToolResult(call_id="call_1", tool="add", status=ToolStatus.SUCCESS, result=4)
    >>> (r.ok, r.content)
    (True, '4')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: str
    tool: str
    status: ToolStatus
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    result: Any = None
    error: ErrorInfo | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    """How many times the tool ran: 0 when it did not (cached, blocked, invalid)."""
    cached: bool = False
    binding: str | None = None
    warnings: tuple[str, ...] = ()
    """Reasons of guards that let the call through with a warning."""
    guard: str | None = None
    """The guard that blocked the call, for ``BLOCKED`` results."""

    @property
    def ok(self) -> bool:
        return self.status is ToolStatus.SUCCESS

    @property
    def content(self) -> str:
        """The text the model receives for this call."""
        return result_text(self.result, self.error)

    def raise_for_error(self) -> None:
        """Raise ``ToolProcessingError`` unless the call succeeded."""
        if not self.ok:
            reason = self.error.message if self.error else self.status.value
            raise ToolProcessingError(self.tool, f"{self.status.value}: {reason}", call_id=self.call_id)


def refusal(
    call: ToolInvocation, status: ToolStatus, error_type: str, message: str, **fields: Any
) -> ToolResult:
    """A result for a call that did not run (unknown tool, invalid arguments, blocked)."""
    return ToolResult(
        call_id=call.id,
        tool=call.name,
        status=status,
        arguments=call.arguments if call.parse_error is None else call.raw_arguments,
        error=ErrorInfo(type=error_type, message=message),
        attempts=0,
        **fields,
    )
