"""Choosing a plan: the token layout of a budget, and the plan cache of a session."""

from __future__ import annotations

import hashlib

from sessionware.core.memory.enums import Provider
from sessionware.core.memory.plan import Layout, Plan
from sessionware.core.memory.policy import ContextPolicy
from sessionware.core.memory.prompts import rules_text
from sessionware.core.memory.vm import Counter, VirtualMemory

__all__ = ["is_compact", "make_layout", "plan_for"]

_MAX_PLANS = 4
_TAGS_TOKENS = 40
_LINE_TOKENS = 12
_MIN_SUMMARIES = 96
# The fault reserve may grow to this share of a small budget to reach ``min_fault_tokens``.
_MAX_RESERVE_SHARE = 0.4


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
    """Split ``budget`` between the parts of a context (pure arithmetic)."""
    fault_reserve = 0
    if policy.tools_enabled:
        wanted = max(
            int(budget * policy.fault_reserve_fraction), policy.min_fault_tokens * policy.max_faults_per_turn
        )
        fault_reserve = min(
            wanted, max(int(budget * _MAX_RESERVE_SHARE), int(budget * policy.fault_reserve_fraction))
        )
    recall_cap = int(budget * policy.recall_fraction)
    incoming_reserve = int(budget * policy.incoming_reserve_fraction)
    free = (
        budget - system_tokens - tools_tokens - fault_reserve - recall_cap - incoming_reserve - block_overhead
    )
    memory_cap = max(int(free * policy.memory_fraction), fixed_block_tokens + _MIN_SUMMARIES)
    manifest_cap = int(memory_cap * 0.12) if policy.tools_enabled and not compact else 0
    summary_cap = max(memory_cap - fixed_block_tokens - manifest_cap, _MIN_SUMMARIES // 2)
    window_room = max(free - memory_cap, 0)
    return Layout(
        budget=budget,
        system_tokens=system_tokens,
        tools_tokens=tools_tokens,
        block_overhead=block_overhead,
        fault_reserve=fault_reserve,
        per_fault=fault_reserve // policy.max_faults_per_turn,
        recall_cap=recall_cap,
        incoming_reserve=incoming_reserve,
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


def _fixed_block_tokens(vm: VirtualMemory, counter: Counter, compact: bool) -> int:
    policy = vm.policy
    total = _TAGS_TOKENS + counter.count_text(
        rules_text(policy.mode, policy.max_faults_per_turn, tools=policy.tools_enabled, compact=compact)
    )
    total += sum(counter.count_text(t) + _LINE_TOKENS for t in policy.pinned)
    for page_id in vm.pinned_ids + vm.segment_summary_ids:
        page = vm.table.get(page_id)
        if page is not None:
            total += page.tokens + _LINE_TOKENS
    return total


def plan_for(
    vm: VirtualMemory,
    *,
    provider: Provider,
    counter: Counter,
    counter_key: str,
    budget: int,
    system_tokens: int,
    tools_tokens: int,
    block_overhead: int,
) -> Plan:
    """The session's plan for this shape and budget: cached, or replayed from the log."""
    key = (provider, counter_key, budget, system_tokens, tools_tokens, vm.layout_epoch)
    plan = vm.plans.get(key)
    if plan is None:
        compact = is_compact(vm.policy, budget)
        layout = make_layout(
            vm.policy,
            budget,
            system_tokens=system_tokens,
            tools_tokens=tools_tokens,
            block_overhead=block_overhead,
            fixed_block_tokens=_fixed_block_tokens(vm, counter, compact),
            compact=compact,
        )
        digest = hashlib.sha256(repr(layout).encode()).hexdigest()[:6]
        plan = Plan(
            vm,
            layout,
            provider,
            counter,
            shape=f"{provider.value}:{counter_key}",
            tag=f"{provider.value[0]}{budget}-{digest}",
        )
        vm.plans[key] = plan
        while len(vm.plans) > _MAX_PLANS:
            vm.plans.popitem(last=False)
    else:
        vm.plans.move_to_end(key)
    vm.current_plan = plan
    return plan
