"""The memory block of a plan: rules, manifest and ``VM:CONTEXT`` lines, rendered once
per compaction (the block is the cache-stable part of every request)."""

from __future__ import annotations

import json

from sessionware.core.memory.enums import StorageTier
from sessionware.core.memory.layout import Layout, procedural_cap
from sessionware.core.memory.pages import Chunk, MemoryPage
from sessionware.core.memory.prompts import (
    AvailablePage,
    ManifestPolicies,
    VMManifest,
    WorkingSetEntry,
    memory_block,
    rules_text,
)
from sessionware.core.memory.transcript import page_line
from sessionware.core.memory.vm import Counter, VirtualMemory

__all__ = ["block_pages", "render_block"]


def block_pages(vm: VirtualMemory, layout: Layout, summaries: list[MemoryPage]) -> list[MemoryPage]:
    """Pinned pages and carried segment summaries, the claims that fit (pinned first, then
    by importance), then ``summaries`` (the rolling summary and the chunk summaries)."""
    out = [p for p in (vm.table.get(i) for i in vm.pinned_ids + vm.segment_summary_ids) if p is not None]
    claims = sorted(
        (p for p in (vm.table.get(i) for i in vm.claim_ids) if p is not None),
        key=lambda p: (not p.pinned, -p.importance, p.page_id),
    )
    room = layout.summary_cap // 3
    for claim in claims:
        if claim.pinned or claim.tokens <= room:
            out.append(claim)
            room -= 0 if claim.pinned else claim.tokens
    out.extend(summaries)
    return out


def render_block(
    vm: VirtualMemory, layout: Layout, counter: Counter, *, summaries: list[MemoryPage], chunks: list[Chunk]
) -> tuple[str, int, list[str]]:
    """The block text, its exact tokens as sent, and the page ids it shows."""
    policy = vm.policy
    tools = policy.tools_enabled
    compact = layout.compact
    rules = rules_text(policy.mode, policy.max_faults_per_turn, tools=tools, compact=compact)
    lines = [
        f"P (pin_{i + 1}, t0): {json.dumps(text, ensure_ascii=False)}" for i, text in enumerate(policy.pinned)
    ]
    pages = block_pages(vm, layout, summaries)
    lines.extend(page_line(p) for p in pages)
    manifest = _manifest(vm, layout, counter, pages, chunks) if tools and not compact else None
    text = memory_block(rules, manifest, lines, _procedural(vm, counter, compact))
    tokens = counter.count_text(text) + layout.block_overhead
    return text, tokens, [f"pin_{i + 1}" for i in range(len(policy.pinned))] + [p.page_id for p in pages]


def _procedural(vm: VirtualMemory, counter: Counter, compact: bool) -> str:
    """The session's procedural hints within the room the layout kept for them."""
    cap = procedural_cap(vm, compact)
    if cap == 0:
        return ""
    from sessionware.core.tools.procedural.context import session_hints

    return session_hints(vm.state, cap, counter.count_text)


def _manifest(
    vm: VirtualMemory, layout: Layout, counter: Counter, pages: list[MemoryPage], chunks: list[Chunk]
) -> VMManifest:
    """The working set as shown, and the newest evicted chunks whose hints fit the cap."""
    working = [
        WorkingSetEntry(
            page_id=p.page_id, level=int(p.compression_level), tokens_est=p.tokens, importance=p.importance
        )
        for p in pages
    ]
    available: list[AvailablePage] = []
    used = 0
    for chunk in reversed(chunks):
        entry = AvailablePage(
            page_id=f"chunk_{chunk.index + 1}",
            tier=StorageTier.L1.value,
            hint=f"t{chunk.first_turn}-{chunk.last_turn}: " + " ".join(chunk.keywords),
        )
        cost = counter.count_text(entry.model_dump_json())
        if used + cost > layout.manifest_cap:
            break
        available.append(entry)
        used += cost
    return VMManifest(
        session_id=vm.state.id,
        working_set=working,
        available_pages=available,
        policies=ManifestPolicies(
            faults_allowed=True,
            max_faults_per_turn=vm.policy.max_faults_per_turn,
            upgrade_budget_tokens=layout.reserve_cap // vm.policy.max_faults_per_turn,
        ),
    )
