"""The token layout of a budget: what the stable parts of a context may use.

A context is, in order: the app's system prompt, the memory block (rules, manifest,
summaries, pins), the verbatim window of recent turns, the recall region, the incoming
turn; the VM tool schemas and a reserve for memory calls count too. The layout fixes the
parts that make the cache-stable prefix (block and window, which change only on
compaction); the recall region and the reserve are sized per build (``assemble``) from
what is left, so a build fills the budget whatever the window's size at the moment.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.memory.prompts import rules_text
from sessionware.core.memory.vm import Counter, VirtualMemory

__all__ = ["Layout", "fault_reserve_cap", "fixed_block_tokens", "is_compact", "make_layout", "procedural_cap"]

_TAGS_TOKENS = 40
_LINE_TOKENS = 12
_MIN_SUMMARIES = 96
# The fault reserve may grow to this share of a small budget to reach ``min_fault_tokens``.
_MAX_RESERVE_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class Layout:
    """Token allocation of one budget (see ``ContextPolicy`` for the fractions)."""

    budget: int
    system_tokens: int
    tools_tokens: int
    block_overhead: int
    reserve_cap: int
    """Most tokens a build keeps free for memory calls (``fault_reserve_cap``)."""
    memory_cap: int
    window_room: int
    window_high: int
    window_low: int
    summary_cap: int
    manifest_cap: int
    compact: bool = False
    """Short rules and tool schemas, no manifest (small budgets)."""


def fault_reserve_cap(policy: ContextPolicy, budget: int) -> int:
    """``fault_reserve_fraction`` of the budget, raised to ``min_fault_tokens`` per call on
    small budgets (but never past 40 % of them); 0 without memory tools."""
    if not policy.tools_enabled:
        return 0
    share = int(budget * policy.fault_reserve_fraction)
    floor = min(policy.min_fault_tokens * policy.max_faults_per_turn, int(budget * _MAX_RESERVE_SHARE))
    return max(share, floor)


def make_layout(
    policy: ContextPolicy,
    budget: int,
    *,
    system_tokens: int,
    tools_tokens: int,
    block_overhead: int,
    fixed_block_tokens: int,
    compact: bool = False,
) -> Layout:
    """Split ``budget`` between the stable parts of a context (pure arithmetic)."""
    reserve_cap = fault_reserve_cap(policy, budget)
    free = max(budget - system_tokens - tools_tokens - reserve_cap - block_overhead, 0)
    memory_cap = max(
        min(int(budget * policy.memory_fraction), free // 2), fixed_block_tokens + _MIN_SUMMARIES
    )
    manifest_cap = int(memory_cap * 0.12) if policy.tools_enabled and not compact else 0
    summary_cap = max(memory_cap - fixed_block_tokens - manifest_cap, _MIN_SUMMARIES // 2)
    window_room = max(min(int(budget * policy.window_fraction), free - memory_cap), 0)
    return Layout(
        budget=budget,
        system_tokens=system_tokens,
        tools_tokens=tools_tokens,
        block_overhead=block_overhead,
        reserve_cap=reserve_cap,
        memory_cap=memory_cap,
        window_room=window_room,
        window_high=max(int(window_room * policy.window_high), 1),
        window_low=int(window_room * policy.window_low),
        summary_cap=summary_cap,
        manifest_cap=manifest_cap,
        compact=compact,
    )


def is_compact(policy: ContextPolicy, budget: int) -> bool:
    """Whether ``budget`` gets the compact memory (short rules and tools, no manifest)."""
    return budget < policy.compact_below_tokens


def procedural_cap(vm: VirtualMemory, compact: bool) -> int:
    """Tokens the memory block keeps for procedural hints (``ContextPolicy.procedural``):
    0 when off, in compact budgets, or (by default) before the session's first tool run."""
    policy = vm.policy
    if compact or policy.procedural is False or policy.procedural_tokens == 0:
        return 0
    if policy.procedural is None:
        from sessionware.core.tools.procedural.context import has_tool_history

        if not has_tool_history(vm.state):
            return 0
    return policy.procedural_tokens


def fixed_block_tokens(vm: VirtualMemory, counter: Counter, compact: bool) -> int:
    """Tokens of the memory block that do not depend on compaction: rules, tags, pins, and
    the room kept for procedural hints."""
    policy = vm.policy
    total = (
        _TAGS_TOKENS
        + procedural_cap(vm, compact)
        + counter.count_text(
            rules_text(policy.mode, policy.max_faults_per_turn, tools=policy.tools_enabled, compact=compact)
        )
    )
    total += sum(counter.count_text(t) + _LINE_TOKENS for t in policy.pinned)
    for page_id in vm.pinned_ids + vm.segment_summary_ids:
        page = vm.table.get(page_id)
        if page is not None:
            total += page.tokens + _LINE_TOKENS
    return total
