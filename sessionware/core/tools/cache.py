"""A result cache for tool calls, with a scope and a time to live, that never keeps errors.

The seed cached error results forever, so one transient failure answered every later
identical call. Here only ``SUCCESS`` results are stored, entries expire after
``ttl_s``, and a ``TURN``-scoped entry is only served within the user turn that
produced it. Each session has its own cache (see ``ToolLedger``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.tools.models import ToolResult, ToolScope, ToolStatus

__all__ = ["CachePolicy", "ResultCache"]


class CachePolicy(BaseModel):
    """How a runner reuses results of identical calls (same tool, same arguments).

    ``ttl_s=None`` keeps entries until they fall out of the ``max_entries`` LRU or their
    scope ends.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: ToolScope = ToolScope.TURN
    ttl_s: float | None = Field(default=300.0, gt=0)
    max_entries: int = Field(default=256, ge=1)


@dataclass(frozen=True, slots=True)
class _Entry:
    result: ToolResult
    turn: int
    stored_at: float


class ResultCache:
    """Successful results keyed by ``(tool, canonical arguments)``; least recently used go first."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def get(self, key: tuple[str, str], *, policy: CachePolicy, turn: int, now: float) -> ToolResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expired = policy.ttl_s is not None and now - entry.stored_at >= policy.ttl_s
        if expired or (policy.scope is ToolScope.TURN and entry.turn != turn):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.result

    def put(
        self, key: tuple[str, str], result: ToolResult, *, policy: CachePolicy, turn: int, now: float
    ) -> None:
        """Store ``result`` if it is a success; anything else is ignored."""
        if result.status is not ToolStatus.SUCCESS:
            return
        self._entries[key] = _Entry(result, turn, now)
        self._entries.move_to_end(key)
        while len(self._entries) > policy.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
