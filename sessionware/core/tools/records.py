"""``ToolRecord``: one executed tool call as read back from a session's ``TOOL_CALL`` event.

Guards and procedural memory work from these records, which are folded from the
session's event log. Events recorded by a ``ToolRunner`` (or a wrapped tool processor)
carry the status, attempts, cached flag and binding in their metadata; events recorded
some other way (``SessionManager.tool_used``, ``track_tool_use``) are read as success or
error from their ``error`` field. A tool the application ran itself shows up as the
assistant's tool call and the app's tool message answering it (``record_from_message``):
read as a failure when its text reads as one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sessionware.core.session.models import ErrorInfo, SessionEvent
from sessionware.core.tools.models import ToolResult, ToolStatus
from sessionware.core.tools.text import args_key

__all__ = ["ToolRecord", "decode_arguments", "record_from_event", "record_from_message", "record_from_result"]

# Keys of a TOOL_CALL event's metadata written by the runner.
META_STATUS = "tool_status"
META_ATTEMPTS = "attempts"
META_CACHED = "cached"
META_BINDING = "binding"
META_WARNINGS = "guard_warnings"
META_GUARD = "blocked_by"


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """An executed (or refused) tool call of a session.

    ``turn`` counts the user messages before the call (0 before the first one).
    ``novel`` is True when the call succeeded and either was not made before in its turn
    or returned a result not seen before in it: the runaway guard reads a row of calls
    that are not novel (failures, repeats) as no progress.
    """

    seq: int
    turn: int
    call_id: str | None
    tool: str
    arguments: Any
    args_key: str
    status: ToolStatus
    result: Any = None
    error: ErrorInfo | None = None
    latency_ms: float | None = None
    attempts: int = 1
    cached: bool = False
    binding: str | None = None
    novel: bool = True


def decode_arguments(arguments: Any) -> Any:
    """Arguments as logged: JSON text becomes the object it encodes, anything else stays."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _status(event: SessionEvent) -> ToolStatus:
    raw = event.metadata.get(META_STATUS)
    if isinstance(raw, str):
        try:
            return ToolStatus(raw)
        except ValueError:
            pass
    return ToolStatus.ERROR if event.error is not None else ToolStatus.SUCCESS


def record_from_event(event: SessionEvent, *, turn: int, novel: bool) -> ToolRecord:
    arguments = decode_arguments(event.tool_arguments)
    attempts = event.metadata.get(META_ATTEMPTS)
    binding = event.metadata.get(META_BINDING)
    return ToolRecord(
        seq=event.seq,
        turn=turn,
        call_id=event.tool_call_id,
        tool=event.tool_name or "",
        arguments=arguments,
        args_key=args_key(arguments),
        status=_status(event),
        result=event.tool_result,
        error=event.error,
        latency_ms=event.latency_ms,
        attempts=attempts if isinstance(attempts, int) else 1,
        cached=event.metadata.get(META_CACHED) is True,
        binding=binding if isinstance(binding, str) else None,
        novel=novel,
    )


def record_from_result(result: ToolResult, *, seq: int, turn: int, novel: bool) -> ToolRecord:
    """The record of a result that is not logged in a session (a runner used without one)."""
    return ToolRecord(
        seq=seq,
        turn=turn,
        call_id=result.call_id,
        tool=result.tool,
        arguments=result.arguments,
        args_key=args_key(result.arguments),
        status=result.status,
        result=result.result,
        error=result.error,
        latency_ms=result.latency_ms,
        attempts=result.attempts,
        cached=result.cached,
        binding=result.binding,
        novel=novel,
    )


def event_metadata(result: ToolResult) -> dict[str, Any]:
    """The metadata a runner writes on a ``TOOL_CALL`` event (read back by ``record_from_event``)."""
    meta: dict[str, Any] = {
        META_STATUS: result.status.value,
        META_ATTEMPTS: result.attempts,
        META_CACHED: result.cached,
    }
    if result.binding:
        meta[META_BINDING] = result.binding
    if result.warnings:
        meta[META_WARNINGS] = list(result.warnings)
    if result.guard:
        meta[META_GUARD] = result.guard
    return meta


_FAILURE_TEXT = re.compile(r"^\s*(?:error|exception|traceback|failed)\b", re.IGNORECASE)
_TYPED = re.compile(r"^\s*(?:Error:\s*)?([A-Z]\w*(?:Error|Exception|Timeout)):\s*(.*)$", re.DOTALL)


def _failure(text: str, value: Any) -> ErrorInfo | None:
    """The error an app's tool message reports, if it reads as one."""
    if isinstance(value, dict):
        error = value.get("error")
        if error or value.get("success") is False or value.get("status") == "error":
            message = error if isinstance(error, str) else text
            return ErrorInfo(type="ToolError", message=message[:500])
        return None
    if not _FAILURE_TEXT.match(text) and not _TYPED.match(text):
        return None
    typed = _TYPED.match(text)
    if typed:
        return ErrorInfo(type=typed.group(1), message=typed.group(2).strip()[:500])
    message = re.sub(r"^\s*error\s*:\s*", "", text, flags=re.IGNORECASE)
    return ErrorInfo(type="ToolError", message=message[:500])


def record_from_message(
    event: SessionEvent, *, tool: str, arguments: Any, turn: int, novel: bool
) -> ToolRecord:
    """The record of a tool the app ran itself: the tool message answering the
    assistant's call of ``tool`` with ``arguments`` (a JSON text is read as its value)."""
    text = event.text
    value = decode_arguments(text)
    error = _failure(text, value)
    return ToolRecord(
        seq=event.seq,
        turn=turn,
        call_id=event.tool_call_id,
        tool=tool,
        arguments=arguments,
        args_key=args_key(arguments),
        status=ToolStatus.ERROR if error is not None else ToolStatus.SUCCESS,
        result=None if error is not None else value,
        error=error,
        latency_ms=None,
        attempts=1,
        novel=novel and error is None,
    )
