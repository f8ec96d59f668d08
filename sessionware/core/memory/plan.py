"""A compaction plan: how one session is laid out in one budget for one message shape.

The window of verbatim turns grows until it passes ``window_high`` of its room; then
the oldest turns are evicted *in one chunk* down to ``window_low`` (MemGPT's queue
flush), and the chunk becomes a summary page in the memory block. Between
compactions the memory block is byte-for-byte the same, so provider prompt caches keep
hitting. The rule is applied turn by turn as turns close, whenever builds happen, so a
plan is a pure function of the log, the policy and the budget.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sessionware.core.gc_pause import paused
from sessionware.core.memory.block import render_block
from sessionware.core.memory.compression import ExtractiveCompressor
from sessionware.core.memory.enums import CompressionLevel, MutationType, PageType, Provider, StorageTier
from sessionware.core.memory.layout import Layout, fixed_block_tokens, is_compact, make_layout, procedural_cap
from sessionware.core.memory.pages import Chunk, MemoryPage
from sessionware.core.memory.text import terms
from sessionware.core.memory.transcript import (
    WHOLE_TYPES,
    Message,
    Turn,
    merge_same_role,
    openai_messages,
    to_anthropic,
    whole_recall_line,
)
from sessionware.core.memory.vm import Counter, VirtualMemory
from sessionware.core.session.enums import EventType
from sessionware.core.store.base import PutPages

__all__ = ["Plan", "current_plan", "plan_for"]

logger = logging.getLogger(__name__)

_MAX_PLANS = 4
# Turns closing in one build up to which each is prepared for its compaction as it closes
# (``Plan.advance``): a build in step with the conversation closes one or two; a replay of
# a long log closes thousands, most of them compacted in the same build, so preparing them
# would only add work.
_PREPARE_MAX = 8
# Pages longer than this share of the budget are never shown whole in the recall region:
# their lines are not prepared.
_PREPARE_PAGE_SHARE = 4
_MIN_SUMMARY_TOKENS = 24
# Folding is decided on the extractive summary's size, kept in the page's metadata: an
# LLM summary written later (or restored after a reload) must not change where folds fall,
# or a reloaded session would lay out differently and write its summaries again.
_PLANNED = "planned_tokens"
# A digest of what a summary summarises, kept in its metadata: a summary read back from
# the store is used only for the same source (an edited history can evict a chunk of the
# same turns with other words in it). A rolling summary's digest is made of its parts'
# digests, not their texts: an LLM may rewrite a part after the fold read it.
_SOURCE = "source_digest"


class Plan:
    """Compaction state of one (shape, counter, budget, layout) for one session."""

    def __init__(
        self,
        vm: VirtualMemory,
        layout: Layout,
        provider: Provider,
        counter: Counter,
        *,
        shape: str,
        tag: str,
        counter_key: str = "",
    ) -> None:
        self.vm = vm
        self.counter_key = counter_key
        """The counter's key: recall lines prepared as turns close are cached under it."""
        self.layout = layout
        self.provider = provider
        self.counter = counter
        self.shape = shape
        self.tag = tag
        self.compressor = ExtractiveCompressor(counter)
        self.start_turn = 0
        self.visible_from = 0
        """First turn verbatim in the last build (after any per-call trimming)."""
        self.closed_upto = 0
        self.window_tokens = 0
        self.closed_window: list[tuple[list[Message], list[int], list[str]]] = []
        """Turns ``start_turn`` to ``closed_upto`` rendered (messages, counts, page ids): kept
        as turns close and are evicted, so a build does not walk the window again."""
        self.chunks: list[Chunk] = []
        self.pages: dict[str, MemoryPage] = {}
        self.summaries: list[str] = []
        self.rolling_id: str | None = None
        self.compactions = 0
        self.folds = 0
        """Rolling summaries made: each has its own id (one compaction may fold twice)."""
        self.evicted_pages = 0
        self.tokens_saved = 0
        self.pending_llm: list[tuple[str, str, int]] = []
        self._block: tuple[str, int, list[str]] | None = None
        self.block_version = 0
        self.epoch = vm.layout_epoch

    # -- turns --------------------------------------------------------------------------

    def render_turn(self, turn: Turn, answered: tuple[str, ...] = ()) -> tuple[list[Message], list[int]]:
        """Messages of ``turn`` in this plan's shape, with exact per-message token counts."""
        if not answered:
            cached = turn.rendered.get(self.shape)
            if cached is not None:
                return cached
        messages = openai_messages(turn.events, answered)
        if self.provider is Provider.ANTHROPIC:
            messages = merge_same_role(to_anthropic(messages))
        counts = [self.counter.count_message(m) for m in messages]
        if not answered:
            turn.rendered[self.shape] = (messages, counts)
        return messages, counts

    def turn_tokens(self, turn: Turn) -> int:
        return sum(self.render_turn(turn)[1])

    def advance(self) -> int:
        """Apply the compaction rule to turns closed since the last call."""
        turns = self.vm.turns
        closed = len(turns) - 1
        prepare = closed - self.closed_upto <= _PREPARE_MAX
        done = 0
        while self.closed_upto < closed:
            turn = turns[self.closed_upto]
            messages, counts = self.render_turn(turn)
            self.window_tokens += sum(counts)
            self.closed_window.append((messages, counts, turn.page_ids))
            self.closed_upto += 1
            if prepare:
                self._prepare(turn)
            if self.window_tokens > self.layout.window_high:
                self._compact()
                done += 1
        return done

    def _prepare(self, turn: Turn) -> None:
        """Do ahead, as ``turn`` closes, the work its compaction will ask for: its sentences
        read for the summary, and its pages' recall lines counted (the region shows the
        turns the compaction evicts). A compacting build then reads caches instead of
        analysing a whole chunk at once; what it builds is the same."""
        self.compressor.prepare(self._chunk_text(turn.page_ids))
        if not self.counter_key:
            return
        cache = self.vm.lines.setdefault(self.counter_key, {})
        longest = self.layout.budget // _PREPARE_PAGE_SHARE
        for page_id in turn.page_ids:
            page = self.vm.table.get(page_id)
            if page is not None and page.page_type in WHOLE_TYPES and page.tokens <= longest:
                whole_recall_line(cache, self.counter.count_text, page)

    def _compact(self) -> None:
        turns = self.vm.turns
        first = self.start_turn
        evicted_tokens = 0
        while self.start_turn < self.closed_upto and self.window_tokens > self.layout.window_low:
            tokens = self.turn_tokens(turns[self.start_turn])
            self.window_tokens -= tokens
            evicted_tokens += tokens
            self.start_turn += 1
        del self.closed_window[: self.start_turn - first]
        page_ids = [pid for t in turns[first : self.start_turn] for pid in t.page_ids]
        index = len(self.chunks)
        source = self._chunk_text(page_ids)
        budget = max(
            _MIN_SUMMARY_TOKENS,
            min(int(evicted_tokens * self.vm.policy.summary_ratio), self.layout.summary_cap // 3),
        )
        summary = self._summary_page(
            f"sum_{index + 1}",
            source,
            budget,
            first=first,
            last=self.start_turn - 1,
            provenance=[f"chunk_{index + 1}"],
        )
        chunk = Chunk(index, first, self.start_turn - 1, page_ids, evicted_tokens, summary.page_id)
        chunk.keywords = _keywords(summary.text)
        self.chunks.append(chunk)
        self.summaries.append(summary.page_id)
        self.compactions += 1
        self.evicted_pages += len(page_ids)
        self.tokens_saved += max(evicted_tokens - summary.tokens, 0)
        for pid in page_ids:
            self.vm.table.move(pid, StorageTier.L1)
        self.vm.log(MutationType.EVICT, page_ids, tier=StorageTier.L1, cause=f"compaction {self.tag}")
        rolled = self._fold()
        self._block = None
        self.block_version += 1
        self._record(chunk, [summary, *rolled])

    def _chunk_text(self, page_ids: list[str]) -> str:
        lines = []
        for pid in page_ids:
            page = self.vm.table.get(pid)
            if page is not None and page.text:
                lines.append(f"{(page.role.value if page.role else 'user')[0].upper()}: {page.text}")
        return "\n".join(lines)

    def _summary_page(
        self,
        page_id: str,
        source: str,
        budget: int,
        *,
        first: int,
        last: int,
        provenance: list[str],
        digest: str | None = None,
    ) -> MemoryPage:
        restored = self.vm.restored_pages.get(f"{self.tag}/{page_id}")
        planned = None
        digest = digest or _digest(source)
        if (
            restored is not None
            and restored.turn == first
            and restored.last_turn == last
            and restored.metadata.get(_SOURCE, digest) == digest
        ):
            text = restored.text
            planned = restored.metadata.get(_PLANNED)
        else:
            text = self.compressor.compress(source, CompressionLevel.ABSTRACT, budget)
            if self.vm.policy.summarize_fn is not None:
                self.pending_llm.append((page_id, source, budget))
        page = MemoryPage(
            page_id=page_id,
            session_id=self.vm.state.id,
            page_type=PageType.SUMMARY,
            text=text,
            turn=first,
            last_turn=last,
            tokens=self.compressor.count(text),
            tier=StorageTier.L0,
            compression_level=CompressionLevel.ABSTRACT,
            importance=0.7,
            provenance=provenance,
        )
        page.metadata[_PLANNED] = planned if isinstance(planned, int) else page.tokens
        page.metadata[_SOURCE] = digest
        self.pages[page_id] = page
        return page

    def _fold(self) -> list[MemoryPage]:
        """Fold the oldest summaries into the rolling summary until they fit their room;
        return the rolling summaries made (one compaction may fold more than once)."""
        cap = self.layout.summary_cap
        made: list[MemoryPage] = []
        while len(self.summaries) > 1 and self._summary_tokens() > cap:
            take = max(1, len(self.summaries) // 2)
            folded, self.summaries = self.summaries[:take], self.summaries[take:]
            self.folds += 1
            parts = [self.pages[i] for i in ([self.rolling_id] if self.rolling_id else []) + folded]
            source = "\n".join(p.text for p in parts)
            digest = _digest("\n".join(str(p.metadata.get(_SOURCE, "")) for p in parts))
            rolling = self._summary_page(
                f"roll_{self.folds}",
                source,
                max(_MIN_SUMMARY_TOKENS, cap // 2),
                first=parts[0].turn,
                last=parts[-1].last_turn,
                provenance=[p.page_id for p in parts],
                digest=digest,
            )
            rolling.importance = 0.8
            self.rolling_id = rolling.page_id
            made.append(rolling)
            self.vm.log(MutationType.COMPRESS, rolling.provenance, cause=f"rolling summary {self.tag}")
        return made

    def _summary_tokens(self) -> int:
        ids = ([self.rolling_id] if self.rolling_id else []) + self.summaries
        per_page = 12 + (24 if self.vm.policy.tools_enabled else 0)
        return sum(int(self.pages[i].metadata.get(_PLANNED, self.pages[i].tokens)) + per_page for i in ids)

    def _record(self, chunk: Chunk, made: list[MemoryPage]) -> None:
        """Record the compaction in the log and persist the summaries it made, the chunk's
        first (a process that replays the plan reads every one of them back)."""
        summary = made[0]
        key = f"{self.tag}/{chunk.index + 1}"
        if key in self.vm.recorded_compactions:
            return
        self.vm.recorded_compactions.add(key)
        if self.vm.policy.record_compactions:
            self.vm.record_event(
                EventType.COMPACTION,
                content=summary.text,
                metadata={
                    "compaction_key": key,
                    "page_id": summary.page_id,
                    "first_turn": chunk.first_turn,
                    "last_turn": chunk.last_turn,
                    "evicted_pages": len(chunk.page_ids),
                    "evicted_tokens": chunk.tokens,
                    "budget": self.layout.budget,
                },
            )
        self._persist(made)

    def _persist(self, pages: list[MemoryPage]) -> None:
        """Queue summary pages for the store (write-behind; keyed by this plan's tag)."""
        batch = {f"{self.tag}/{page.page_id}": page.model_dump_json() for page in pages}
        try:
            self.vm.state.store.submit([PutPages(self.vm.state.id, batch)])
        except Exception:  # persistence is bookkeeping: the build goes on without it
            logger.exception("could not persist summary pages of session %s", self.vm.state.id)

    def replace_summary(self, page_id: str, text: str, max_tokens: int) -> None:
        """Put an LLM-written summary in place of the extractive one (cut to ``max_tokens``)."""
        page = self.pages.get(page_id)
        if page is None:
            return
        page.text = self.compressor.compress(text, CompressionLevel.FULL, max_tokens)
        page.tokens = self.counter.count_text(page.text)
        self.invalidate_block()
        self._persist([page])

    # -- checkpoints --------------------------------------------------------------------

    def export(self) -> dict[str, Any] | None:
        """The plan's state as JSON-ready data, copied (``None`` while LLM summaries are pending)."""
        if self.pending_llm:
            return None
        return {
            "tag": self.tag,
            "turns": [self.start_turn, self.visible_from, self.closed_upto, self.window_tokens],
            "chunks": [
                [
                    c.index,
                    c.first_turn,
                    c.last_turn,
                    list(c.page_ids),
                    c.tokens,
                    c.summary_id,
                    list(c.keywords),
                ]
                for c in self.chunks
            ],
            "pages": [page.model_dump(mode="json") for page in self.pages.values()],
            "summaries": list(self.summaries),
            "rolling_id": self.rolling_id,
            "counts": [
                self.compactions,
                self.folds,
                self.evicted_pages,
                self.tokens_saved,
                self.block_version,
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take the state ``export`` made for this plan's tag (``ValueError`` when it is not
        one: another layout, or a window whose turns no longer count what they did)."""
        if data["tag"] != self.tag:
            raise ValueError(f"plan {self.tag}: checkpoint of {data['tag']}")
        start, visible, closed, window = (int(x) for x in data["turns"])
        if not 0 <= start <= closed <= max(len(self.vm.turns) - 1, 0):
            raise ValueError(f"plan {self.tag}: turns {start}..{closed} out of the log's")
        rendered = [self.render_turn(turn) for turn in self.vm.turns[start:closed]]
        if sum(sum(counts) for _, counts in rendered) != window:
            raise ValueError(f"plan {self.tag}: the window counts other tokens than its checkpoint")
        self.start_turn, self.visible_from, self.closed_upto, self.window_tokens = (
            start,
            visible,
            closed,
            window,
        )
        self.closed_window = [
            (messages, counts, turn.page_ids)
            for (messages, counts), turn in zip(rendered, self.vm.turns[start:closed], strict=True)
        ]
        self.chunks = [
            Chunk(int(i), int(a), int(b), list(ids), int(t), str(s), list(k))
            for i, a, b, ids, t, s, k in data["chunks"]
        ]
        self.pages = {p["page_id"]: MemoryPage.model_validate(p) for p in data["pages"]}
        self.summaries = [str(i) for i in data["summaries"]]
        self.rolling_id = data["rolling_id"]
        missing = [
            i
            for i in [*self.summaries, *([self.rolling_id] if self.rolling_id else [])]
            if i not in self.pages
        ]
        if missing:
            raise ValueError(f"plan {self.tag}: summaries {missing} missing")
        self.compactions, self.folds, self.evicted_pages, self.tokens_saved, self.block_version = (
            int(x) for x in data["counts"]
        )
        self._block = None

    # -- the memory block ---------------------------------------------------------------

    def invalidate_block(self) -> None:
        self._block = None
        self.block_version += 1

    def block(self) -> tuple[str, int, list[str]]:
        """The memory block text, its exact tokens as sent, and the page ids it shows."""
        if self._block is None:
            summaries = ([self.pages[self.rolling_id]] if self.rolling_id else []) + [
                self.pages[i] for i in self.summaries
            ]
            self._block = render_block(
                self.vm, self.layout, self.counter, summaries=summaries, chunks=self.chunks
            )
        return self._block

    # -- lookups for the fault handler --------------------------------------------------

    def chunk_page(self, page_id: str) -> MemoryPage | None:
        """``chunk_<n>``: an evicted chunk as one page (its text made on demand)."""
        if not page_id.startswith("chunk_") or not page_id[6:].isdigit():
            return None
        n = int(page_id[6:])
        if not 1 <= n <= len(self.chunks):
            return None
        chunk = self.chunks[n - 1]
        text = self._chunk_text(chunk.page_ids)
        return MemoryPage(
            page_id=page_id,
            session_id=self.vm.state.id,
            page_type=PageType.INDEX,
            text=text,
            turn=chunk.first_turn,
            last_turn=chunk.last_turn,
            tokens=chunk.tokens,
            provenance=list(chunk.page_ids),
        )

    def in_window(self, page: MemoryPage) -> bool:
        return page.page_type in (PageType.TRANSCRIPT, PageType.ARTIFACT) and page.turn >= self.visible_from


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _keywords(text: str, limit: int = 5) -> list[str]:
    counts: dict[str, int] = {}
    for term in terms(text):
        if len(term) > 3 and not term.isdigit():
            counts[term] = counts.get(term, 0) + 1
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


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
    compact = is_compact(vm.policy, budget)
    # The layout keeps room for procedural hints from the session's first tool run on.
    procedural = procedural_cap(vm, compact)
    key = (provider, counter_key, budget, system_tokens, tools_tokens, vm.layout_epoch, procedural)
    plan = vm.plans.get(key)
    if not isinstance(plan, Plan):
        layout = make_layout(
            vm.policy,
            budget,
            system_tokens=system_tokens,
            tools_tokens=tools_tokens,
            block_overhead=block_overhead,
            fixed_block_tokens=fixed_block_tokens(vm, counter, compact),
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
            counter_key=counter_key,
        )
        stored = vm.marks.plans.pop(key, None)
        if stored is not None:
            plan = _restored(plan, stored)
        vm.plans[key] = plan
        while len(vm.plans) > _MAX_PLANS:
            vm.plans.popitem(last=False)
    else:
        vm.plans.move_to_end(key)
    vm.current_plan = plan
    return plan


def _restored(plan: Plan, stored: dict[str, Any]) -> Plan:
    """``plan`` with the state a checkpoint kept for it, or a new plan that replays the log
    when that state does not fit (``Plan.restore`` says why)."""
    try:
        with paused():  # a page per compaction, and every restored turn rendered (gc_pause)
            plan.restore(stored)
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning(
            "session %s: replaying plan %s, its checkpoint is unusable: %s", plan.vm.state.id, plan.tag, exc
        )
        return Plan(
            plan.vm,
            plan.layout,
            plan.provider,
            plan.counter,
            shape=plan.shape,
            tag=plan.tag,
            counter_key=plan.counter_key,
        )
    return plan


def current_plan(vm: VirtualMemory) -> Plan | None:
    """The plan of the session's last build (``None`` before the first)."""
    plan = vm.current_plan
    return plan if isinstance(plan, Plan) else None
