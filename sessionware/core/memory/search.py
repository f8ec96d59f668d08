"""Ranked keyword search over pages: an incremental in-memory BM25 index.

Pages are added as they are created (O(terms of the page)); a query costs the length
of its terms' posting lists. Multi-word queries rank by the sum of their terms' BM25
scores, so "postgres mysql" finds pages with either word, best with both. Results can
follow references: identifiers in the best hit that occur in only a few other pages
(a key that names another key) pull those pages in, up to ``follow`` hops.

Two things keep a long session's results useful. A page can be added with a ``weight``
(the memory gives a user's *question* a lower one: it restates what is asked, not what
is known). And near-duplicates of a better hit (the same question asked about another
name, boilerplate repeated every turn) are folded into it, so ``limit`` results cover
distinct content rather than ten copies of one sentence.

>>> index = SearchIndex()
>>> index.add("msg_1", "We chose PostgreSQL over MySQL for the ledger.")
>>> index.add("msg_2", "Lunch was fine.")
>>> [hit.page_id for hit in index.search("postgres mysql ledger")]
['msg_1']
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sessionware.core.memory.text import identifiers, terms

__all__ = ["SearchHit", "SearchIndex"]

_K1 = 1.2
_B = 0.5
# Exact identifiers in a query (``retry_budget_7``, ``KX-4711-Q``) name one thing: weigh them up.
_IDENTIFIER_BOOST = 3.0
_MAX_REFERENCE_DF = 3
# A hit whose terms overlap a better hit's this much (Jaccard), with no identifier of its
# own, adds nothing: it is folded. Facts with different values differ in their identifiers.
_DUPLICATE_OVERLAP = 0.5
# Candidates looked at per result wanted, so folding stays bounded on huge posting lists.
_SCAN_PER_RESULT = 40


@dataclass(frozen=True, slots=True)
class SearchHit:
    page_id: str
    score: float
    via: str | None = None
    """For a followed reference: the identifier that linked it."""


class SearchIndex:
    """BM25 over page texts; pages are only ever added (or all cleared)."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[int, int]] = {}
        self._ids: list[str] = []
        self._lengths: list[int] = []
        self._total_length = 0
        self._identifiers: dict[str, list[int]] = {}
        self._doc_identifiers: list[list[str]] = []
        self._doc_by_id: dict[str, int] = {}
        self._doc_terms: list[frozenset[str]] = []
        self._weights: list[float] = []

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def add(self, page_id: str, text: str, *, weight: float = 1.0) -> None:
        """Index ``text`` as ``page_id``; ``weight`` scales every score of the page."""
        doc = len(self._ids)
        counts = Counter(terms(text))
        self._ids.append(page_id)
        self._doc_by_id[page_id] = doc
        self._doc_terms.append(frozenset(counts))
        self._weights.append(weight)
        length = sum(counts.values())
        self._lengths.append(length)
        self._total_length += length
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[doc] = tf
        idents = identifiers(text)
        self._doc_identifiers.append(idents)
        for ident in idents:
            self._identifiers.setdefault(ident, []).append(doc)

    def _idf(self, df: int) -> float:
        n = len(self._ids)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def search(
        self,
        query: str,
        *,
        limit: int = 5,
        allow: Callable[[str], bool] | None = None,
        follow: int = 0,
    ) -> list[SearchHit]:
        """Best pages for ``query``; ``allow`` filters page ids; ``follow`` hops of references."""
        if not self._ids:
            return []
        scores, matched = self._scores(query)
        ranked = sorted(scores, key=lambda d: (-round(scores[d], 9), -d))[: limit * _SCAN_PER_RESULT]
        # Pages that match the same query words are about the same thing: the newer one
        # supersedes ("my desk is A" ... "my desk is now B"), whatever BM25's length norm says.
        weights = self._weights
        ranked = _newest_first_among_equals(ranked, lambda d: (matched[d], weights[d]))
        hits: list[SearchHit] = []
        kept: list[int] = []
        for doc in ranked:
            if (allow is not None and not allow(self._ids[doc])) or self._duplicate(doc, kept):
                continue
            kept.append(doc)
            hits.append(SearchHit(self._ids[doc], scores[doc]))
            if len(hits) >= limit:
                break
        if follow and hits:
            # A page the chain reaches is reported as reached (with its link), even when the
            # query also matched it on its own: the chain is what explains it.
            followed = self._follow(hits, query, follow, limit, allow)
            chained = {h.page_id for h in followed}
            hits = [h for h in hits if h.page_id not in chained] + followed
        return hits

    def _scores(self, query: str) -> tuple[dict[int, float], dict[int, int]]:
        """BM25 score of every matching page, and which query terms it matched (a bit mask)."""
        avg = self._total_length / len(self._ids) or 1.0
        scores: dict[int, float] = {}
        matched: dict[int, int] = {}
        for bit, term in enumerate(dict.fromkeys(terms(query))):
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = self._idf(len(posting))
            if any(ch.isdigit() for ch in term) and any(ch in "-_" for ch in term):
                idf *= _IDENTIFIER_BOOST
            for doc, tf in posting.items():
                norm = tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * self._lengths[doc] / avg))
                scores[doc] = scores.get(doc, 0.0) + idf * norm
                matched[doc] = matched.get(doc, 0) | 1 << bit
        weights = self._weights
        return {doc: score * weights[doc] for doc, score in scores.items()}, matched

    def _duplicate(self, doc: int, kept: list[int]) -> bool:
        """True when ``doc`` says nearly what a better hit says, and names nothing new."""
        mine = self._doc_terms[doc]
        for other in kept:
            theirs = self._doc_terms[other]
            union = len(mine | theirs)
            if (
                union
                and len(mine & theirs) / union >= _DUPLICATE_OVERLAP
                and set(self._doc_identifiers[doc]) <= set(self._doc_identifiers[other])
            ):
                return True
        return False

    def _follow(
        self, hits: list[SearchHit], query: str, hops: int, limit: int, allow: Callable[[str], bool] | None
    ) -> list[SearchHit]:
        seen_docs = {self._doc_of(hits[0].page_id)}
        seen_idents = set(identifiers(query))
        out: list[SearchHit] = []
        frontier = [self._doc_of(hits[0].page_id)]
        for _ in range(hops):
            following: list[int] = []
            for doc in frontier:
                for ident in self._doc_identifiers[doc]:
                    if ident in seen_idents:
                        continue
                    seen_idents.add(ident)
                    docs = self._identifiers.get(ident, [])
                    if len(docs) > _MAX_REFERENCE_DF:
                        continue
                    for other in docs:
                        if other in seen_docs or (allow is not None and not allow(self._ids[other])):
                            continue
                        seen_docs.add(other)
                        following.append(other)
                        out.append(SearchHit(self._ids[other], 0.0, via=ident))
            if not following or len(out) >= limit:
                break
            frontier = following
        return out[:limit]

    def _doc_of(self, page_id: str) -> int:
        return self._doc_by_id[page_id]


def _newest_first_among_equals(ranked: list[int], key: Callable[[int], object]) -> list[int]:
    """``ranked`` with each group of equal ``key`` reordered newest first, in the slots the
    group already holds (so groups keep their places relative to each other)."""
    groups: dict[object, list[int]] = {}
    for doc in ranked:
        groups.setdefault(key(doc), []).append(doc)
    newest = {k: sorted(docs, reverse=True) for k, docs in groups.items() if len(docs) > 1}
    if not newest:
        return ranked
    out = []
    for doc in ranked:
        docs = newest.get(key(doc))
        out.append(docs.pop(0) if docs is not None else doc)
    return out
