"""Typed results of the virtual memory: build reports, metrics, the mutation log."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.memory.enums import MutationType, Provider, StorageTier

__all__ = ["BuiltContext", "ContextReport", "ContextSnapshot", "PageMutation", "TokensByPart", "VMMetrics"]


class TokensByPart(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: int = 0
    """The app's own system prompt (with message overhead and reply priming)."""
    memory: int = 0
    """The memory block: rules, manifest, summaries, pinned items."""
    window: int = 0
    """Recent turns, verbatim."""
    recall: int = 0
    """The recall region: pages chosen for the incoming message and pages recalled by
    memory calls on earlier turns."""
    incoming: int = 0
    tools: int = 0
    """Tool schemas: the VM tools and the app's own."""


class ContextReport(BaseModel):
    """What one ``build`` produced and why.

    ``tokens`` is the exact count of everything sent (per ``counter_for_model``; see
    ``exact``) and never exceeds ``budget``. ``stable_prefix_tokens`` covers the system
    prompt and the memory block, which only change on compaction (``prefix_version``);
    ``cacheable_prefix_tokens`` also covers the window turns sent before the recall region
    (all of them when the incoming message opens a turn), which the next call sends again.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    provider: Provider
    budget: int
    tokens: int
    exact: bool
    parts: TokensByPart
    fault_reserve_tokens: int
    turns_total: int
    window_first_turn: int
    pages_total: int
    pages_included: list[str]
    pages_evicted: int
    pages_compressed: int
    recalled_pages: list[str]
    compactions: int
    """Compactions this build performed (0 on most builds)."""
    prefix_version: int
    stable_prefix_tokens: int
    cacheable_prefix_tokens: int
    recall_before: str | None = None
    """The first window page sent after the recall region (None: the region, when there
    is one, follows every window page, right before the incoming message)."""
    trimmed_turns: int = 0
    """Window turns left out of this call only, to make room for a large incoming turn."""
    degraded: list[str] = Field(default_factory=list)
    """Parts given up to stay inside the budget (``fault_reserve``, ``memory_block``...)."""


class BuiltContext(BaseModel):
    """The request to send: ``messages`` (and ``system`` for Anthropic), ``tools`` to add.

    >>> ctx = BuiltContext(messages=[{"role": "user", "content": "hi"}], report=None)
    >>> ctx.request_kwargs()
    {'messages': [{'role': 'user', 'content': 'hi'}]}
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    messages: list[dict[str, Any]]
    system: list[dict[str, Any]] | None = None
    """Anthropic only: the system blocks (the app's prompt verbatim, then the memory block)."""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    """VM tools to add to the app's own (empty when faults are off or in PASSIVE mode)."""
    report: ContextReport | None

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"messages": self.messages}
        if self.system is not None:
            kwargs["system"] = self.system
        if self.tools:
            kwargs["tools"] = self.tools
        return kwargs


class PageMutation(BaseModel):
    model_config = ConfigDict(frozen=True)

    turn: int
    mutation_type: MutationType
    page_ids: list[str]
    tier_after: StorageTier | None = None
    cause: str = ""


class ContextSnapshot(BaseModel):
    """What was in context when turn ``turn`` was built."""

    model_config = ConfigDict(frozen=True)

    turn: int
    page_ids: list[str]
    tokens: int
    budget: int


class VMMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    turns: int
    pages: int
    pages_by_tier: dict[StorageTier, int]
    builds: int
    compactions: int
    pages_evicted: int
    summaries: int
    faults: int
    faults_refused: int
    searches: int
    prefetched_pages: int
    working_set_pages: int
    working_set_evictions: int
    tokens_saved_by_compression: int
