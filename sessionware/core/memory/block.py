"""The memory block of a plan: rules, manifest and ``VM:CONTEXT`` lines, rendered once
per compaction (the block is the cache-stable part of every request)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sessionware.core.memory.enums import StorageTier
from sessionware.core.memory.pages import MemoryPage
from sessionware.core.memory.prompts import (
    AvailablePage,
    ManifestPolicies,
    VMManifest,
    WorkingSetEntry,
    memory_block,
    rules_text,
)
from sessionware.core.memory.transcript import page_line

if TYPE_CHECKING:
    from sessionware.core.memory.plan import Plan

__all__ = ["block_pages", "render_block"]


def block_pages(plan: Plan) -> list[MemoryPage]:
    """Pinned pages and carried segment summaries, the claims that fit (pinned first, then
    by importance), the rolling summary and the chunk summaries, in that order."""
    vm = plan.vm
    out = [p for p in (vm.table.get(i) for i in vm.pinned_ids + vm.segment_summary_ids) if p is not None]
    claims = sorted(
        (p for p in (vm.table.get(i) for i in vm.claim_ids) if p is not None),
        key=lambda p: (not p.pinned, -p.importance, p.page_id),
    )
    room = plan.layout.summary_cap // 3
    for claim in claims:
        if claim.pinned or claim.tokens <= room:
            out.append(claim)
            room -= 0 if claim.pinned else claim.tokens
    if plan.rolling_id:
        out.append(plan.pages[plan.rolling_id])
    out.extend(plan.pages[i] for i in plan.summaries)
    return out


def render_block(plan: Plan) -> tuple[str, int, list[str]]:
    """The block text, its exact tokens as sent, and the page ids it shows."""
    policy = plan.vm.policy
    tools = policy.tools_enabled
    compact = plan.layout.compact
    rules = rules_text(policy.mode, policy.max_faults_per_turn, tools=tools, compact=compact)
    lines = [
        f"P (pin_{i + 1}, t0): {json.dumps(text, ensure_ascii=False)}" for i, text in enumerate(policy.pinned)
    ]
    pages = block_pages(plan)
    lines.extend(page_line(p) for p in pages)
    manifest = _manifest(plan, pages) if tools and not compact else None
    text = memory_block(rules, manifest, lines)
    tokens = plan.counter.count_text(text) + plan.layout.block_overhead
    return text, tokens, [f"pin_{i + 1}" for i in range(len(policy.pinned))] + [p.page_id for p in pages]


def _manifest(plan: Plan, pages: list[MemoryPage]) -> VMManifest:
    """The working set as shown, and the newest evicted chunks whose hints fit the cap."""
    working = [
        WorkingSetEntry(
            page_id=p.page_id, level=int(p.compression_level), tokens_est=p.tokens, importance=p.importance
        )
        for p in pages
    ]
    available: list[AvailablePage] = []
    used = 0
    for chunk in reversed(plan.chunks):
        entry = AvailablePage(
            page_id=f"chunk_{chunk.index + 1}",
            tier=StorageTier.L1.value,
            hint=f"t{chunk.first_turn}-{chunk.last_turn}: " + " ".join(chunk.keywords),
        )
        cost = plan.counter.count_text(entry.model_dump_json())
        if used + cost > plan.layout.manifest_cap:
            break
        available.append(entry)
        used += cost
    return VMManifest(
        session_id=plan.vm.state.id,
        working_set=working,
        available_pages=available,
        policies=ManifestPolicies(
            faults_allowed=True,
            max_faults_per_turn=plan.vm.policy.max_faults_per_turn,
            upgrade_budget_tokens=plan.layout.per_fault,
        ),
    )
