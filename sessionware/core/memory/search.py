"""Ranked keyword search over pages: an incremental, field-aware in-memory BM25 index.

Pages are added as they are created (O(terms of the page)). A page has two fields: its
body and a short label (a speaker's name opening a chat line, a tool's name), which
weighs less: a question names the person it is about, and half the turns of a chat
between two people carry each name. Terms are stemmed (``text.terms``).

A query scores its rarer terms over their posting lists and adds its common terms only to
pages already found (a word in an eighth of the pages ranks little on its own), so a
query costs the rare terms' postings, not the history. Scores get a mild recency prior
(newer wins among near-equals: an update over the fact it replaces), and optionally a
share of the scores of the pages within ``reach`` on either side, also for a page that
matches nothing itself (in a chat, the answer that names nothing asked sits a turn or two
from the question or remark that does). Results can follow references:
identifiers in the best hit that occur in only a few other pages (a key that names
another key) pull those pages in, up to ``follow`` hops.

A page can be added with a ``weight`` (the memory gives a user's *question* a lower
one: it restates what is asked, not what is known). ``fold`` folds near-duplicates of a
better hit into it, so ``limit`` results cover distinct content.

>>> index = SearchIndex()
>>> index.add("msg_1", "We chose PostgreSQL over MySQL for the ledger.")
>>> index.add("msg_2", "Lunch was fine.")
>>> [hit.page_id for hit in index.search("postgres mysql ledger")]
['msg_1']
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

from sessionware.core.memory.search_state import IndexColumns
from sessionware.core.memory.text import identifiers, terms

__all__ = ["SearchHit", "SearchIndex"]

_K1 = 1.2
_B = 0.5
_LABEL_WEIGHT = 0.3
# Exact identifiers in a query (``retry_budget_7``, ``KX-4711-Q``) name one thing: weigh them up.
_IDENTIFIER_BOOST = 3.0
_MAX_REFERENCE_DF = 3
# A hit whose terms overlap a better hit's this much (Jaccard), with no identifier of its
# own, adds nothing: it is folded. Facts with different values differ in their identifiers.
_DUPLICATE_OVERLAP = 0.5
# Candidates looked at per result wanted, so folding stays bounded on huge posting lists.
_SCAN_PER_RESULT = 40
# A term in more pages than this share (or ``_COMMON_MIN``, and at most ``_COMMON_MAX``)
# only adds to pages found by rarer terms; a query of common terms only reads their newest
# ``_SCAN_CAP`` postings. The cap keeps a query's cost from growing with the history: at
# 10,000 turns an eighth of the pages is 2,750 postings per term (context_build.py's
# queries scored 566 pages each there, 229 with the cap).
_COMMON_SHARE = 8
_COMMON_MIN = 64
_COMMON_MAX = 512
_SCAN_CAP = 4096
# Pages scoring under this share of the best give their neighbours no share.
_SPREAD_FLOOR = 0.2
RECENCY_PRIOR = 0.1
"""The newest page's score is multiplied by 1.1, the oldest's by 1."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    page_id: str
    score: float
    via: str | None = None
    """For a followed reference: the identifier that linked it."""


class SearchIndex:
    """BM25F over page bodies and labels; pages are only ever added (or all cleared)."""

    def __init__(self) -> None:
        self._docs: dict[str, list[int]] = {}
        self._tfs: dict[str, list[float]] = {}
        self._doc_tf: list[dict[str, float]] = []
        self._ids: list[str] = []
        self._lengths: list[float] = []
        self._total_length = 0.0
        self._identifiers: dict[str, list[int]] = {}
        self._doc_identifiers: list[list[str]] = []
        self._doc_by_id: dict[str, int] = {}
        self._weights: list[float] = []

    def __len__(self) -> int:
        return len(self._ids)

    def columns(self) -> IndexColumns:
        """The index's containers, for a checkpoint (``search_state.encode``)."""
        return IndexColumns(
            docs=self._docs,
            tfs=self._tfs,
            doc_tf=self._doc_tf,
            lengths=self._lengths,
            total_length=self._total_length,
            identifiers=self._identifiers,
            doc_identifiers=self._doc_identifiers,
            weights=self._weights,
        )

    @classmethod
    def from_columns(cls, ids: list[str], columns: IndexColumns) -> SearchIndex:
        """The index of pages ``ids`` (in the order they were added) with ``columns``."""
        index = cls()
        index._ids = ids
        index._doc_by_id = {page_id: doc for doc, page_id in enumerate(ids)}
        index._docs, index._tfs, index._doc_tf = columns.docs, columns.tfs, columns.doc_tf
        index._lengths, index._total_length = columns.lengths, columns.total_length
        index._identifiers, index._doc_identifiers = columns.identifiers, columns.doc_identifiers
        index._weights = columns.weights
        return index

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def add(self, page_id: str, text: str, *, weight: float = 1.0, label: str = "") -> None:
        """Index ``text`` (and its ``label``) as ``page_id``; ``weight`` scales every score of the page."""
        doc = len(self._ids)
        tf: dict[str, float] = {}
        for term in terms(text):
            tf[term] = tf.get(term, 0.0) + 1.0
        for term in terms(label) if label else ():
            tf[term] = tf.get(term, 0.0) + _LABEL_WEIGHT
        self._ids.append(page_id)
        self._doc_by_id[page_id] = doc
        self._doc_tf.append(tf)
        self._weights.append(weight)
        length = sum(tf.values())
        self._lengths.append(length)
        self._total_length += length
        for term, n in tf.items():
            docs = self._docs.get(term)
            if docs is None:
                self._docs[term] = [doc]
                self._tfs[term] = [n]
            else:
                docs.append(doc)
                self._tfs[term].append(n)
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
        fold: bool = True,
        neighbours: float = 0.0,
        hide: Callable[[str], bool] | None = None,
        reach: int = 2,
    ) -> list[SearchHit]:
        """Best pages for ``query``, best first; ``allow`` filters page ids; ``follow`` hops of
        references; ``fold`` near-duplicates; ``neighbours`` is the share of the scores of
        the pages within ``reach`` on either side a page adds to its own. Pages ``hide``
        names are ranked and followed like the others (a chain of references may start or
        run through them) but are not returned: the caller already shows them."""
        if not self._ids:
            return []
        scores = self._scores(query, neighbours, reach)
        ids = self._ids
        allowed = scores if allow is None else [d for d in scores if allow(ids[d])]
        if fold or hide is not None or follow:
            ranked = sorted(allowed, key=lambda d: (-scores[d], -d))
        else:  # the first ``limit`` only: a partial sort
            ranked = heapq.nsmallest(limit, allowed, key=lambda d: (-scores[d], -d))
        hits: list[SearchHit] = []
        kept: list[int] = []
        best: int | None = None
        scanned = 0
        for doc in ranked:
            if hide is not None and hide(ids[doc]):
                best = doc if best is None else best
                continue
            scanned += 1
            if fold and (scanned > limit * _SCAN_PER_RESULT or self._duplicate(doc, kept)):
                if scanned > limit * _SCAN_PER_RESULT:
                    break
                continue
            kept.append(doc)
            best = doc if best is None else best
            hits.append(SearchHit(ids[doc], scores[doc]))
            if len(hits) >= limit:
                break
        if follow and best is not None:
            # A page the chain reaches is reported as reached (with its link), even when the
            # query also matched it on its own: the chain is what explains it.
            followed = self._follow(best, query, follow, limit, allow=allow, hide=hide)
            chained = {h.page_id for h in followed}
            hits = [h for h in hits if h.page_id not in chained] + followed
        return hits

    def _scores(self, query: str, neighbours: float, reach: int) -> dict[int, float]:
        """BM25F score of the pages that match, with the recency prior, and the pages within
        ``reach`` of them with ``neighbours``' share of their scores."""
        n = len(self._ids)
        avg = self._total_length / n or 1.0
        lengths = self._lengths
        common = max(_COMMON_MIN, min(n // _COMMON_SHARE, _COMMON_MAX))
        found = sorted(
            ((len(self._docs[t]), t) for t in dict.fromkeys(terms(query)) if t in self._docs),
            key=lambda x: x[0],
        )
        scores: dict[int, float] = {}
        k1, b = _K1, _B
        for df, term in found:
            idf = self._idf(df)
            if any(ch.isdigit() for ch in term) and any(ch in "-_" for ch in term):
                idf *= _IDENTIFIER_BOOST
            if df <= common or not scores:
                docs, tfs = self._docs[term], self._tfs[term]
                for k in range(max(0, df - _SCAN_CAP), df):
                    doc, tf = docs[k], tfs[k]
                    norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[doc] / avg))
                    scores[doc] = scores.get(doc, 0.0) + idf * norm
            else:
                doc_tf = self._doc_tf
                for doc in scores:
                    common_tf = doc_tf[doc].get(term, 0.0)
                    if common_tf:
                        tf = common_tf
                        scores[doc] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[doc] / avg))
        weights = self._weights
        prior = RECENCY_PRIOR / n
        out = {doc: score * weights[doc] * (1.0 + prior * doc) for doc, score in scores.items()}
        if not neighbours or reach <= 0:
            return out
        # Only pages scoring at least ``_SPREAD_FLOOR`` of the best give a share: what a weak
        # match would add to its neighbours ranks below what the budget can hold anyway.
        floor = _SPREAD_FLOOR * max(out.values(), default=0.0)
        offsets = [d for d in range(-reach, reach + 1) if d]
        spread = dict(out)
        get = spread.get
        for doc, score in out.items():
            if score < floor:
                continue
            share = neighbours * score
            for offset in offsets:
                other = doc + offset
                if 0 <= other < n:
                    spread[other] = get(other, 0.0) + share
        return spread

    def _duplicate(self, doc: int, kept: list[int]) -> bool:
        """True when ``doc`` says nearly what a better hit says, and names nothing new."""
        mine = self._doc_tf[doc].keys()
        for other in kept:
            theirs = self._doc_tf[other].keys()
            union = len(mine | theirs)
            if (
                union
                and len(mine & theirs) / union >= _DUPLICATE_OVERLAP
                and set(self._doc_identifiers[doc]) <= set(self._doc_identifiers[other])
            ):
                return True
        return False

    def _follow(
        self,
        start: int,
        query: str,
        hops: int,
        limit: int,
        *,
        allow: Callable[[str], bool] | None,
        hide: Callable[[str], bool] | None,
    ) -> list[SearchHit]:
        seen_docs = {start}
        seen_idents = set(identifiers(query))
        out: list[SearchHit] = []
        frontier = [start]
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
                        if hide is None or not hide(self._ids[other]):
                            out.append(SearchHit(self._ids[other], 0.0, via=ident))
            if not following or len(out) >= limit:
                break
            frontier = following
        return out[:limit]

    def _doc_of(self, page_id: str) -> int:
        return self._doc_by_id[page_id]
