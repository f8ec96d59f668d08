"""How a ``ToolRunner`` configures the engine: when to retry, what to cache.

Both are applied by the engine's own layers (``RetryableToolExecutor``,
``CachingToolExecutor``); these models only choose their settings, where the engine's
defaults do worse for a conversation:

* the engine retries every failure three times by default, "tool not found" and a
  division by zero included, with one to four seconds between attempts; here only
  transient failures (``retry_on``: a dropped connection, a timeout) are retried, once;
* the engine's cache is on by default yet stores nothing (no tool is declared
  cacheable), so an identical second call runs again; here every tool registered
  ``cacheable`` is, when a ``CachePolicy`` is given, in a cache scoped to the session
  (and by default to the user turn), with a time to live. Errors are never cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.tools.models import ToolScope

__all__ = ["NO_RETRY", "CachePolicy", "RetryPolicy", "ToolSchedule"]


def _names(types: tuple[type[BaseException], ...]) -> frozenset[str]:
    """The names of ``types`` and of every subclass of them loaded so far."""
    found: set[str] = set()
    stack = list(types)
    while stack:
        cls = stack.pop()
        if cls.__name__ not in found:
            found.add(cls.__name__)
            stack.extend(cls.__subclasses__())
    return frozenset(found)


class RetryPolicy(BaseModel):
    """When a failed call runs again: ``max_attempts`` in all (1 = never), only for
    exceptions of the ``retry_on`` types (a tool's timeout counts as ``TimeoutError``),
    after ``backoff_s``, doubling per attempt (the engine's backoff), capped at
    ``max_backoff_s``; ``jitter`` spreads each delay over 0.5-1.5 times its value.

    >>> RetryPolicy().transient("ConnectionResetError"), RetryPolicy().transient("ValueError")
    (True, False)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_attempts: int = Field(default=2, ge=1)
    backoff_s: float = Field(default=0.1, ge=0)
    max_backoff_s: float = Field(default=2.0, ge=0)
    jitter: bool = False
    retry_on: tuple[type[Exception], ...] = (ConnectionError, TimeoutError)

    def transient(self, error_type: str) -> bool:
        """Whether a failure of this exception type (by name) is worth another attempt."""
        return error_type in _names(self.retry_on)

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1`` (without jitter)."""
        return float(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))


NO_RETRY = RetryPolicy(max_attempts=1)


class CachePolicy(BaseModel):
    """How a runner reuses results of identical calls (same tool, same arguments).

    ``scope``: for the user turn (default) or the whole session; ``ttl_s=None`` keeps
    entries until they fall out of the ``max_entries`` least-recently-used bound.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: ToolScope = ToolScope.TURN
    ttl_s: float | None = Field(default=300.0, gt=0)
    max_entries: int = Field(default=256, ge=1)


class ToolSchedule(BaseModel):
    """A batch of calls planned by the engine's scheduler before it runs.

    ``scheduler`` is a ``chuk_tool_processor.scheduling`` policy (``GreedyDagScheduler()``),
    ``constraints`` its ``SchedulingConstraints`` (a deadline, a cost budget, per-pool
    concurrency limits), ``tools`` the ``ToolMetadata`` of each tool (pool, estimated
    time, cost, priority). The batch runs in the plan's stages, one after the other, each
    call with the timeout the plan gives it; calls the plan skips (past the deadline or
    the budget) are answered as blocked by ``scheduler`` with its reason.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    scheduler: Any
    constraints: Any
    tools: Mapping[str, Any] = Field(default_factory=dict)
