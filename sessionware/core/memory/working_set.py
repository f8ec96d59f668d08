"""The recall working set: pages brought back into context by faults and demand paging.

It has a token capacity (from the layout). When a new page does not fit, the
``EvictionPolicy`` picks victims among the unprotected pages; a page recalled in the last
``fault_protection_turns`` turns is never re-evicted (anti-thrash), and a page evicted
less than ``eviction_cooldown_turns`` ago is not recalled speculatively again.

>>> ws = WorkingSet(capacity_tokens=100)
>>> page = MemoryPage(page_id="msg_1", session_id="s", text="hi", tokens=40)
>>> ws.add(page, turn=1)
[]
>>> ws.page_ids()
['msg_1']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from sessionware.core.memory.enums import Modality
from sessionware.core.memory.pages import MemoryPage

__all__ = [
    "AntiThrashPolicy",
    "EvictionPolicy",
    "ImportanceWeightedLRU",
    "LRUEvictionPolicy",
    "ModalityAwareLRU",
    "WorkingSet",
]


@runtime_checkable
class EvictionPolicy(Protocol):
    """Scores candidates for eviction; the lowest score is evicted first."""

    def score(self, page: MemoryPage, turn: int) -> float: ...


class LRUEvictionPolicy:
    """Least recently used first."""

    def score(self, page: MemoryPage, turn: int) -> float:
        return float(page.last_access_turn)


class ImportanceWeightedLRU:
    """Recency, importance and use frequency together (the default)."""

    def __init__(self, recency: float = 0.4, importance: float = 0.4, frequency: float = 0.2) -> None:
        self.weights = (recency, importance, frequency)

    def score(self, page: MemoryPage, turn: int) -> float:
        w_rec, w_imp, w_freq = self.weights
        recency = 1.0 / (1.0 + max(turn - page.last_access_turn, 0))
        frequency = min(1.0, math.log1p(page.access_count) / 3.0)
        return w_rec * recency + w_imp * page.importance + w_freq * frequency


class ModalityAwareLRU:
    """A base policy's score scaled by modality: heavy media goes first."""

    DEFAULT_WEIGHTS: ClassVar[dict[Modality, float]] = {
        Modality.TEXT: 1.0,
        Modality.STRUCTURED: 0.9,
        Modality.IMAGE: 0.5,
        Modality.AUDIO: 0.4,
        Modality.VIDEO: 0.3,
    }

    def __init__(
        self, base: EvictionPolicy | None = None, weights: dict[Modality, float] | None = None
    ) -> None:
        self.base = base or ImportanceWeightedLRU()
        self.weights = weights or dict(self.DEFAULT_WEIGHTS)

    def score(self, page: MemoryPage, turn: int) -> float:
        return self.base.score(page, turn) * self.weights.get(page.modality, 1.0)


@dataclass(frozen=True, slots=True)
class AntiThrashPolicy:
    fault_protection_turns: int = 2
    eviction_cooldown_turns: int = 3


class WorkingSet:
    """Recalled pages in context, in the order they were recalled."""

    def __init__(
        self,
        capacity_tokens: int,
        policy: EvictionPolicy | None = None,
        anti_thrash: AntiThrashPolicy | None = None,
    ) -> None:
        self.capacity_tokens = capacity_tokens
        self.policy = policy or ImportanceWeightedLRU()
        self.anti_thrash = anti_thrash or AntiThrashPolicy()
        self._pages: dict[str, MemoryPage] = {}
        self._recalled_at: dict[str, int] = {}
        self._evicted_at: dict[str, int] = {}
        self.evictions = 0

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._pages

    def page_ids(self) -> list[str]:
        return list(self._pages)

    def pages(self) -> list[MemoryPage]:
        return list(self._pages.values())

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self._pages.values())

    def export(self) -> list[Any]:
        """The set as JSON-ready data: recalled page ids in order, when each was recalled
        and evicted, evictions (a memory checkpoint keeps it; ``restore`` reads it)."""
        return [list(self._pages), self._recalled_at, self._evicted_at, self.evictions]

    def restore(
        self, pages: list[MemoryPage], recalled_at: dict[str, int], evicted_at: dict[str, int], evictions: int
    ) -> None:
        """Take the state ``export`` made, with ``pages`` (the recalled ones, in order)."""
        self._pages = {page.page_id: page for page in pages}
        self._recalled_at = {str(k): int(v) for k, v in recalled_at.items()}
        self._evicted_at = {str(k): int(v) for k, v in evicted_at.items()}
        self.evictions = evictions

    def recently_evicted(self, page_id: str, turn: int) -> bool:
        at = self._evicted_at.get(page_id)
        return at is not None and turn - at < self.anti_thrash.eviction_cooldown_turns

    def protected(self, page_id: str, turn: int) -> bool:
        at = self._recalled_at.get(page_id)
        return at is not None and turn - at < self.anti_thrash.fault_protection_turns

    def add(self, page: MemoryPage, turn: int) -> list[str]:
        """Recall ``page``; return the ids evicted to make room (it may evict none)."""
        page.mark_accessed(turn)
        self._recalled_at[page.page_id] = turn
        if page.page_id in self._pages:
            return []
        self._pages[page.page_id] = page
        return self.fit(turn, keep=page.page_id)

    def fit(self, turn: int, keep: str | None = None) -> list[str]:
        """Evict by policy until the pages fit the capacity (protected pages stay)."""
        evicted: list[str] = []
        while self.tokens > self.capacity_tokens:
            candidates = [
                p for p in self._pages.values() if p.page_id != keep and not self.protected(p.page_id, turn)
            ]
            if not candidates:
                break
            victim = min(candidates, key=lambda p: (self.policy.score(p, turn), p.seq))
            self.remove(victim.page_id, turn)
            evicted.append(victim.page_id)
        return evicted

    def remove(self, page_id: str, turn: int) -> None:
        if self._pages.pop(page_id, None) is not None:
            self._evicted_at[page_id] = turn
            self.evictions += 1

    def recalled_before(self, turn: int) -> list[MemoryPage]:
        """Pages recalled on turns before ``turn`` (this turn's faults are in its tool results)."""
        return [p for pid, p in self._pages.items() if self._recalled_at.get(pid, turn) < turn]

    def select(self, budget_tokens: int) -> Sequence[MemoryPage]:
        """The most recently recalled pages that fit ``budget_tokens`` (recall order)."""
        chosen: list[MemoryPage] = []
        used = 0
        for page in reversed(list(self._pages.values())):
            if used + page.tokens <= budget_tokens:
                chosen.append(page)
                used += page.tokens
        return list(reversed(chosen))
