"""Sessions and events, the ``SessionManager`` facade, and the one-call helpers."""

from __future__ import annotations

from sessionware.core.session.enums import Durability, EventSource, EventType, Role, RunStatus
from sessionware.core.session.manager import SessionManager
from sessionware.core.session.models import (
    ErrorInfo,
    Session,
    SessionEvent,
    SessionInfo,
    SessionRun,
    SessionTotals,
    ToolCall,
)
from sessionware.core.session.stats import SessionStats

__all__ = [
    "Durability",
    "ErrorInfo",
    "EventSource",
    "EventType",
    "Role",
    "RunStatus",
    "Session",
    "SessionEvent",
    "SessionInfo",
    "SessionManager",
    "SessionRun",
    "SessionStats",
    "SessionTotals",
    "ToolCall",
]
