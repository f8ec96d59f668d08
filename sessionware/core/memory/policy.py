"""``ContextPolicy``: what the context builder may spend and how it remembers.

>>> policy = ContextPolicy(budget=4000, mode=VMMode.RELAXED, max_faults_per_turn=2)
>>> policy.input_budget(context_window=128_000)
4000
>>> ContextPolicy(budget_fraction=0.5, reserved_output_tokens=1000).input_budget(context_window=8000)
3000
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sessionware.core.memory.enums import VMMode

__all__ = ["ContextPolicy", "SummarizeFn"]

#: An LLM summariser: ``await fn(text, max_tokens) -> summary``. The manager never picks
#: a model; the app (or an adapter) supplies this.
SummarizeFn = Callable[[str, int], Awaitable[str]]


class ContextPolicy(BaseModel):
    """How a session's context is budgeted, compacted and recalled.

    The input budget is ``budget`` when set; otherwise ``budget_fraction`` of the
    model's context window (from the price data, ``fallback_context_window`` when the
    model is unknown) minus ``reserved_output_tokens``. A ``budget`` passed to
    ``build`` overrides both.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    budget: int | None = Field(default=None, gt=0)
    budget_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    reserved_output_tokens: int = Field(default=4096, ge=0)
    fallback_context_window: int = Field(default=8192, gt=0)
    mode: VMMode = VMMode.RELAXED
    faults_enabled: bool = True
    max_faults_per_turn: int = Field(default=2, ge=1, le=16)
    """The per-turn limit the rules text tells the model and the handler enforces."""
    fault_reserve_fraction: float = Field(default=0.1, ge=0.0, le=0.5)
    """Most of the budget kept free for memory calls, so their results fit in the same
    ceiling (and the build itself fills the rest). Within it the reserve is sized from
    what this session's calls actually wanted (``call_history``)."""
    min_fault_tokens: int = Field(default=200, ge=0)
    """Room of one memory call (the call and its result) at least, so a small budget still
    gets useful results; the reserve never takes more than 40 % of the budget for it."""
    call_history: int = Field(default=32, ge=1, le=1024)
    """How many recent memory calls size the reserve (their 90th percentile)."""
    compact_below_tokens: int = Field(default=3000, ge=0)
    """Budgets below this get the compact memory: short rules and tool schemas and no
    manifest, so the fixed overhead leaves room for recent turns and recall."""
    memory_fraction: float = Field(default=0.12, gt=0.0, lt=1.0)
    """Share of the budget for the memory block (rules, manifest, summaries, pins)."""
    window_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    """Share of the budget the verbatim window of recent turns may grow to; the recall
    region (pages chosen for the incoming message) fills whatever the build leaves."""
    window_high: float = Field(default=0.8, gt=0.0, le=1.0)
    """The window of verbatim turns is compacted when it passes this share of its room..."""
    window_low: float = Field(default=0.3, gt=0.0, lt=1.0)
    """...down to this share: compaction happens in chunks, so the prefix stays stable."""
    summary_ratio: float = Field(default=0.15, gt=0.0, le=1.0)
    """Summary size relative to the turns it covers."""
    recall: bool = True
    """Fill the recall region with the turns that best match the incoming message (and
    their neighbours), then the turns before the window, up to the budget less the call
    reserve. It comes after the cache-stable prefix and the window, right before the
    incoming message, so the prefix a provider caches is the same with it or without it;
    it is chosen once per incoming message (later rounds of the turn send it again).
    ``False`` keeps only pages recalled by memory calls there (smaller, cheaper requests
    that leave older turns to the model's own memory calls)."""
    recall_neighbours: int = Field(default=1, ge=0, le=5)
    """Turns on each side of a recalled turn shown with it (a question and its answer);
    the five best matches get one more on each side."""
    max_search_results: int = Field(default=10, ge=1, le=50)
    """Most results one ``search_pages`` call returns (the schema's maximum); without a
    ``limit`` it returns 5."""
    follow_references: int = Field(default=3, ge=0, le=5)
    """Hops ``search_pages`` follows from its best hit through rare identifiers."""
    pinned: list[str] = Field(default_factory=list)
    """Texts that are always in the memory block, verbatim."""
    procedural: bool | None = None
    """Procedural hints in the memory block: what the session's tool runs taught (outcomes,
    error-then-fix patterns, argument deltas; ``sessionware.core.tools.procedural``).
    None: on once the session has tool history; the block is the cache-stable prefix, so
    the hints change at compactions only (the turns since are verbatim anyway)."""
    procedural_tokens: int = Field(default=300, ge=0)
    """Room the hints may take in the memory block (reserved from the summaries' share);
    compact budgets get none."""
    summarize_fn: SummarizeFn | None = Field(default=None, exclude=True)
    """Async LLM summariser; ``None`` uses the deterministic offline extractive one."""
    record_compactions: bool = True
    """Record each compaction as a ``COMPACTION`` event in the session log."""
    anthropic_cache_control: bool = True
    """Mark the memory block as an Anthropic prompt-cache breakpoint."""
    stream_holdback_chars: int = Field(default=200, ge=0)
    """Managed streams: text read ahead before the app gets the stream, so a memory call
    that follows a short preamble ("Let me check.") is still hidden; past it, the app
    reads the answer live from its first chunk."""

    @model_validator(mode="after")
    def _check_window(self) -> ContextPolicy:
        if self.window_low >= self.window_high:
            raise ValueError("window_low must be below window_high")
        return self

    @property
    def tools_enabled(self) -> bool:
        return self.faults_enabled and self.mode is not VMMode.PASSIVE

    def input_budget(self, *, context_window: int | None) -> int:
        """Tokens the built context may use."""
        if self.budget is not None:
            return self.budget
        window = context_window or self.fallback_context_window
        return max(int(window * self.budget_fraction) - self.reserved_output_tokens, 1)
