"""Infinite context: a conversation that rolls over into child segments.

When a segment passes ``token_threshold`` tokens (or ``max_turns_per_segment`` user
turns), the *next* user message starts a new segment: a child session (``parent_id`` =
the old one) that carries the rolling summary of every earlier segment as a ``SUMMARY``
event. The check runs only before a new user message and never while a tool call is
unanswered, so a turn and a tool call/result pair are never split. The whole history
stays available through ``chain`` and ``full_history``.

>>> policy = SegmentationPolicy(token_threshold=2000, max_turns_per_segment=10)
>>> policy.should_roll(tokens=2500, turns=3, open_tool_calls=False)
True
>>> policy.should_roll(tokens=2500, turns=3, open_tool_calls=True)
False
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.accounting.tokens import TokenCounter
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.messages import conversation_events
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.session.registry import SessionRegistry
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store

__all__ = [
    "SEGMENT_KEY",
    "SegmentationPolicy",
    "carried_summary",
    "chain",
    "full_history",
    "latest_segment",
    "open_tool_calls",
    "roll_over",
]

logger = logging.getLogger(__name__)

SEGMENT_KEY = "segment"
"""Header metadata of a segment: ``{"root": first segment id, "index": 0, 1, ...}``."""

SummarizeFn = Callable[[str, int], Awaitable[str]]


class SegmentationPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token_threshold: int = Field(default=4000, gt=0)
    max_turns_per_segment: int | None = Field(default=None, gt=0)
    """User turns per segment (turns, not messages)."""
    summary_max_tokens: int | None = Field(default=None, gt=0)
    """Size of the rolling summary; default a quarter of the threshold (at least 64)."""

    def should_roll(self, *, tokens: int, turns: int, open_tool_calls: bool) -> bool:
        if open_tool_calls or turns == 0:
            return False
        if tokens >= self.token_threshold:
            return True
        return self.max_turns_per_segment is not None and turns >= self.max_turns_per_segment

    @property
    def summary_tokens(self) -> int:
        return self.summary_max_tokens or max(self.token_threshold // 4, 64)


def open_tool_calls(state: SessionState) -> bool:
    """True when the last assistant tool calls still wait for results."""
    pending: set[str] = set()
    for event in conversation_events(state.events):
        if event.role is Role.ASSISTANT:
            pending = {c.id for c in event.tool_calls}
        elif event.tool_call_id:
            pending.discard(event.tool_call_id)
        elif event.role is Role.USER:
            pending = set()
    return bool(pending)


def carried_summary(state: SessionState) -> SessionEvent | None:
    """The rolling summary this segment carries from the earlier ones, if any."""
    for event in state.events:
        if event.type is EventType.SUMMARY and event.metadata.get("carried"):
            return event
    return None


def _transcript(state: SessionState) -> str:
    lines = []
    for event in conversation_events(state.events):
        role = (event.role or Role.USER).value
        text = event.text if event.type is EventType.MESSAGE else f"{event.tool_name}: {event.tool_result}"
        if text:
            lines.append(f"{role}: {text}")
    return "\n".join(lines)


async def roll_over(
    state: SessionState,
    registry: SessionRegistry,
    policy: SegmentationPolicy,
    counter: TokenCounter,
    summarize_fn: SummarizeFn | None = None,
) -> SessionState:
    """Close ``state``'s segment with a summary and open its child; return the child."""
    from sessionware.core.memory.compression import ExtractiveCompressor

    previous = carried_summary(state)
    source = "\n".join(p for p in ((previous.text if previous else ""), _transcript(state)) if p)
    limit = policy.summary_tokens
    summary = ""
    if summarize_fn is not None:
        try:
            summary = await summarize_fn(source, limit)
        except Exception:  # the extractive summary below is always available
            logger.exception("summarize_fn failed for segment %s; using the extractive summary", state.id)
    if not summary:
        summary = ExtractiveCompressor(counter).compress_text(source, limit)
    segment = dict(state.info.metadata.get(SEGMENT_KEY) or {"root": state.id, "index": 0})
    covers = [*(previous.metadata.get("covers", []) if previous else []), state.id]
    state.record(
        EventType.SUMMARY,
        EventSource.SYSTEM,
        role=Role.SYSTEM,
        content=summary,
        metadata={"segment_end": True, "covers": covers},
    )
    index = int(segment.get("index", 0)) + 1
    child = await registry.aopen(
        uuid.uuid4().hex,
        create=True,
        parent_id=state.id,
        system_prompt=state.info.system_prompt,
        metadata={
            **state.info.metadata,
            SEGMENT_KEY: {"root": segment.get("root", state.id), "index": index},
        },
    )
    child.record(
        EventType.SUMMARY,
        EventSource.SYSTEM,
        role=Role.SYSTEM,
        content=summary,
        metadata={"carried": True, "covers": covers, "page_id": f"seg_{index}"},
    )
    logger.info("segment %s rolled over into %s (segment %d)", state.id, child.id, index)
    return child


async def latest_segment(store: Store, info: SessionInfo) -> str:
    """The newest segment of the chain ``info`` belongs to (``info.id`` if none follows)."""
    current = info.id
    while True:
        children = [
            c for c in await store.alist_sessions(parent_id=current) if SEGMENT_KEY in (c.metadata or {})
        ]
        if not children:
            return current
        current = max(children, key=lambda c: int(c.metadata[SEGMENT_KEY].get("index", 0))).id


async def chain(store: Store, state: SessionState) -> list[SessionInfo]:
    """Headers of every segment up to ``state``'s, oldest first (the live header last)."""
    infos = [state.info]
    current: dict[str, Any] = {
        "parent": state.info.parent_id,
        "segment": state.info.metadata.get(SEGMENT_KEY),
    }
    while current["segment"] and current["parent"]:
        parent = await store.aload_info(current["parent"])
        infos.append(parent)
        current = {"parent": parent.parent_id, "segment": parent.metadata.get(SEGMENT_KEY)}
    return list(reversed(infos))


async def full_history(store: Store, state: SessionState) -> list[SessionEvent]:
    """Every conversation event of the chain, oldest segment first."""
    events: list[SessionEvent] = []
    for info in (await chain(store, state))[:-1]:
        events.extend(conversation_events(await store.aload_events(info.id)))
    events.extend(conversation_events(state.events))
    return events
