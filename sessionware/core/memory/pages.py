"""Memory pages and the page table that indexes them.

A page is the unit the model can recall: one message or tool result (``msg_<seq>``),
a summary of evicted turns (``sum_<n>``), an evicted chunk as a whole (``chunk_<n>``),
a claim or a pinned item. Transcript pages are derived from the session's events, so a
session reloaded from any store has them again; summaries are persisted as pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from sessionware.core.memory.enums import CompressionLevel, Modality, PageType, StorageTier
from sessionware.core.session.enums import Role

__all__ = ["Chunk", "DeferredPage", "MemoryPage", "PageTable"]


class MemoryPage(BaseModel):
    """One addressable piece of memory.

    ``text`` is the full-fidelity text; lower ``CompressionLevel`` renderings are made
    by a ``Compressor`` on demand. ``provenance`` lists the page ids a summary or chunk
    was made from. ``turn`` is the conversation turn (count of user messages before it)
    where the page begins; ``last_turn`` where it ends, for summaries and chunks.
    """

    model_config = ConfigDict(extra="forbid")

    page_id: str
    session_id: str
    page_type: PageType = PageType.TRANSCRIPT
    modality: Modality = Modality.TEXT
    role: Role | None = None
    text: str = ""
    seq: int = 0
    turn: int = 0
    last_turn: int = 0
    tokens: int = 0
    tier: StorageTier = StorageTier.L1
    compression_level: CompressionLevel = CompressionLevel.FULL
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    pinned: bool = False
    provenance: list[str] = Field(default_factory=list)
    tool_name: str | None = None
    access_count: int = 0
    last_access_turn: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)

    def mark_accessed(self, turn: int) -> None:
        self.access_count += 1
        self.last_access_turn = turn


class DeferredPage(Protocol):
    """A page the table makes only when it is read (``PageTable.defer``): a memory restored
    from a checkpoint holds tens of thousands of pages and a build reads a few of them."""

    tier: StorageTier
    tokens: int

    def page(self) -> MemoryPage: ...


class PageTable:
    """Every page of a session by id, with secondary indexes by tier and type.

    Insertion order is kept (it is chronological for transcript pages), which makes
    every listing deterministic.
    """

    def __init__(self) -> None:
        self._pages: dict[str, MemoryPage | DeferredPage] = {}
        self._by_tier: dict[StorageTier, set[str]] = {tier: set() for tier in StorageTier}

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._pages

    def __iter__(self) -> Iterator[MemoryPage]:
        for page_id in list(self._pages):
            page = self.get(page_id)
            if page is not None:
                yield page

    def entries(self) -> Iterator[tuple[str, MemoryPage | DeferredPage]]:
        """Pages in order, deferred ones as they are (none is made)."""
        return iter(list(self._pages.items()))

    def tokens_of(self, page_id: str) -> int | None:
        """The tokens of a page's text, without making a deferred page."""
        entry = self._pages.get(page_id)
        return None if entry is None else entry.tokens

    def get(self, page_id: str) -> MemoryPage | None:
        page = self._pages.get(page_id)
        if page is None or isinstance(page, MemoryPage):
            return page
        made = page.page()
        self._pages[page_id] = made
        return made

    def register(self, page: MemoryPage) -> MemoryPage:
        old = self._pages.get(page.page_id)
        if old is not None:
            self._by_tier[old.tier].discard(page.page_id)
        self._pages[page.page_id] = page
        self._by_tier[page.tier].add(page.page_id)
        return page

    def defer(self, page_id: str, deferred: DeferredPage) -> None:
        """Register a page made on its first read (a new id: a checkpoint's pages)."""
        self._pages[page_id] = deferred
        self._by_tier[deferred.tier].add(page_id)

    def load(self, entries: list[tuple[str, MemoryPage | DeferredPage]]) -> None:
        """Fill an empty table with pages and deferred pages, in order (new ids)."""
        self._pages.update(entries)
        by_tier = self._by_tier
        for page_id, entry in entries:
            by_tier[entry.tier].add(page_id)

    def remove(self, page_id: str) -> None:
        page = self._pages.pop(page_id, None)
        if page is not None:
            self._by_tier[page.tier].discard(page_id)

    def move(self, page_id: str, tier: StorageTier) -> None:
        page = self._pages.get(page_id)  # a deferred page moves as it is
        if page is None or page.tier is tier:
            return
        self._by_tier[page.tier].discard(page_id)
        page.tier = tier
        self._by_tier[tier].add(page_id)

    def count_by_tier(self) -> dict[StorageTier, int]:
        return {tier: len(ids) for tier, ids in self._by_tier.items() if ids}

    def clear(self) -> None:
        self._pages.clear()
        for ids in self._by_tier.values():
            ids.clear()


@dataclass(slots=True)
class Chunk:
    """Turns ``first_turn``..``last_turn`` evicted together by one compaction: addressable
    as ``chunk_<index + 1>`` (``PageType.INDEX``), summarised as ``summary_id``."""

    index: int
    first_turn: int
    last_turn: int
    page_ids: list[str]
    tokens: int
    summary_id: str
    keywords: list[str] = field(default_factory=list)
