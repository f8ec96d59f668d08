"""LLM-free baselines for ``context_quality.py``: recency, and recency + BM25 top-10.

``recency`` keeps the system prompt and the newest whole messages that fit the budget
(LiteLLM ``trim_messages`` style). ``recency + BM25`` gives half the budget to the ten
best BM25 matches of the question among the messages outside the recency window (each
cut to an equal share, tagged with its turn), and the rest to recency: equal tokens.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sessionware.core.accounting.tokens import EncodingCounter, EstimatingCounter

_WORD = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")

Msg = dict[str, Any]


class History:
    """The transcript so far: messages with their turn, tokens and BM25 statistics."""

    def __init__(self, counter: EncodingCounter | EstimatingCounter) -> None:
        self.counter = counter
        self.messages: list[Msg] = []
        self.turns: list[int] = []
        self.tokens: list[int] = []
        self.terms: list[Counter[str]] = []
        self.df: Counter[str] = Counter()
        self.total = 0

    def add(self, msg: Msg, turn: int) -> None:
        self.messages.append(msg)
        self.turns.append(turn)
        self.tokens.append(self.counter.count_message(msg))
        self.total += self.tokens[-1]
        terms = Counter(_WORD.findall(json.dumps(msg.get("content"), ensure_ascii=False).lower()))
        self.terms.append(terms)
        self.df.update(terms.keys())

    def recency(self, room: int) -> tuple[list[Msg], int, int]:
        """Newest messages within ``room`` tokens, never starting on a tool result."""
        used, start = 0, len(self.messages)
        while start > 0 and used + self.tokens[start - 1] <= room:
            start -= 1
            used += self.tokens[start]
        while start < len(self.messages) and self.messages[start]["role"] == "tool":
            used -= self.tokens[start]
            start += 1
        return self.messages[start:], used, start

    def bm25(self, query: str, before: int, k: int = 10) -> list[int]:
        n = max(before, 1)
        avg = sum(sum(t.values()) for t in self.terms[:before]) / n or 1.0
        scores: dict[int, float] = {}
        for term in set(_WORD.findall(query.lower())):
            df = self.df.get(term, 0)
            if not df:
                continue
            idf = math.log(1 + (len(self.terms) - df + 0.5) / (df + 0.5))
            for i in range(before):
                tf = self.terms[i].get(term, 0)
                if tf:
                    length = sum(self.terms[i].values())
                    scores[i] = scores.get(i, 0.0) + idf * tf * 2.2 / (
                        tf + 1.2 * (0.25 + 0.75 * length / avg)
                    )
        return sorted(scores, key=lambda i: -scores[i])[:k]


def _cut(counter: EncodingCounter | EstimatingCounter, text: str, tokens: int) -> str:
    ids = counter._encode(text) if isinstance(counter, EncodingCounter) else None
    if ids is None or len(ids) <= tokens:
        return text
    from sessionware.core.accounting.encodings import get_encoding

    return get_encoding(counter.encoding_name).decode(ids[:tokens])


def recency_context(history: History, system: str, question: str, budget: int) -> tuple[list[Msg], int]:
    head = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    fixed = history.counter.count_messages(head)
    msgs, used, _ = history.recency(budget - fixed)
    return [head[0], *msgs, head[1]], fixed + used


def recency_bm25_context(
    history: History, system: str, question: str, budget: int, k: int = 10
) -> tuple[list[Msg], int]:
    counter = history.counter
    head = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    fixed = counter.count_messages(head)
    half = (budget - fixed) // 2
    _, _, start_if_full = history.recency(budget - fixed - half)
    hits = history.bm25(question, start_if_full, k)
    share = max(half // max(len(hits), 1) - 12, 8)
    lines = []
    for i in sorted(hits):
        text = json.dumps(history.messages[i].get("content"), ensure_ascii=False)
        lines.append(f"[turn {history.turns[i]}] {_cut(counter, text, share)}")
    recalled: Sequence[Msg] = []
    if lines:
        recalled = [{"role": "system", "content": "Retrieved:\n" + "\n".join(lines)}]
    used_recall = counter.count_messages(recalled) - 3 if recalled else 0
    msgs, used, _ = history.recency(budget - fixed - used_recall)
    return [head[0], *recalled, *msgs, head[1]], fixed + used_recall + used
