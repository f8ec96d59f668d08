"""The vocabulary of sessions: roles, event types, sources, run statuses."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Durability", "EventSource", "EventType", "Role", "RunStatus"]


class Role(StrEnum):
    """Who a message is from, in provider terms."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class EventType(StrEnum):
    """What an event records."""

    MESSAGE = "message"
    """A user, assistant or tool-result message of the conversation."""
    TOOL_CALL = "tool_call"
    """A tool execution: name, arguments, result or error."""
    SYSTEM_PROMPT = "system_prompt"
    """The system prompt was set or changed."""
    SUMMARY = "summary"
    """A summary of earlier events (segment rollover or compaction)."""
    LLM_CALL = "llm_call"
    """A provider call that produced no message of its own (error, embedding, hidden round)."""
    PAGE_FAULT = "page_fault"
    """The model recalled evicted memory through a VM tool (served by sessionware)."""
    COMPACTION = "compaction"
    """The context builder compacted the working set into a new summary."""
    BRANCH = "branch"
    """The app edited earlier history; later events continue from ``branch_of``."""


class EventSource(StrEnum):
    """Which party produced an event."""

    USER = "user"
    LLM = "llm"
    TOOL = "tool"
    SYSTEM = "system"


class RunStatus(StrEnum):
    """Lifecycle of a ``SessionRun``."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Durability(StrEnum):
    """When an append reaches the store."""

    WRITE_BEHIND = "write_behind"
    """Buffered and written by the store's writer within a bounded delay (default)."""
    SYNC = "sync"
    """Written before the recording call returns."""
