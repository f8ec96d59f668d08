"""What ``SessionManager``'s public methods accept, checked and converted to the model's types.

Bad input raises ``InvalidSessionOperation`` / ``ToolProcessingError`` before anything is
recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.errors import InvalidSessionOperation, ToolProcessingError
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.messages import tool_result_text
from sessionware.core.session.models import MessageContent, SessionEvent, ToolCall
from sessionware.core.session.storable import unstorable

__all__ = ["as_tool_calls", "as_usage", "check_content", "check_storable", "context_message"]


def check_storable(operation: str, field: str, value: Any) -> None:
    """Refuse ``value`` (the argument ``field`` of ``operation``) if a store cannot hold it:
    ``InvalidSessionOperation`` naming the place, nothing recorded."""
    if value is None or (type(value) is str and value.isascii()):
        return
    problem = unstorable(value, field)
    if problem is not None:
        raise InvalidSessionOperation(operation, problem)


def as_usage(usage: TokenUsage | Mapping[str, int] | None) -> TokenUsage | None:
    """The provider's usage as a ``TokenUsage`` (a mapping is validated)."""
    if usage is None or isinstance(usage, TokenUsage):
        return usage
    try:
        return TokenUsage.model_validate(dict(usage))
    except ValueError as exc:
        raise InvalidSessionOperation("ai_responds", f"usage is not valid: {exc}") from exc


def as_tool_calls(calls: Sequence[ToolCall | Mapping[str, Any]] | None) -> tuple[ToolCall, ...]:
    """``ToolCall``s from models or OpenAI-shaped dicts (``{"id", "function": {...}}``)."""
    out = []
    for call in calls or ():
        if isinstance(call, ToolCall):
            out.append(call)
            continue
        function = call.get("function", call)
        arguments = function.get("arguments", "{}")
        try:
            out.append(
                ToolCall(
                    id=str(call["id"]),
                    name=str(function["name"]),
                    # Arguments are JSON text on the wire; a dict must not become its Python repr.
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments, default=str),
                )
            )
        except KeyError as exc:
            raise ToolProcessingError(
                str(function.get("name", "?")), f"tool call is missing {exc}", call_id=call.get("id")
            ) from None
    return tuple(out)


def context_message(event: SessionEvent) -> dict[str, Any]:
    """An event as the message that will be sent, for counting its tokens."""
    if event.type is EventType.TOOL_CALL:
        return {"role": "tool", "content": tool_result_text(event)}
    calls = [{"function": {"name": c.name, "arguments": c.arguments}} for c in event.tool_calls]
    return {"role": event.role or Role.USER, "content": event.content, "tool_calls": calls}


def check_content(operation: str, content: object) -> MessageContent:
    """``content`` when it is text or a list of content parts; refused otherwise."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    raise InvalidSessionOperation(
        operation, f"content must be a str or a list of content parts, got {type(content).__name__}"
    )
