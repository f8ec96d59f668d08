"""Snippets: the part of a long page that matters for a query, under a token limit."""

from __future__ import annotations

import re
from collections.abc import Callable

from sessionware.core.memory.compression import ExtractiveCompressor
from sessionware.core.memory.enums import CompressionLevel
from sessionware.core.memory.text import sentences, terms

__all__ = ["snippet"]

_LONG = 400
_CLAUSE = re.compile(r"(?<=[,;])\s+")


def _pieces(sentence: str) -> list[str]:
    """Long sentences (JSON, logs) split further at commas, so a needle can be found."""
    if len(sentence) <= _LONG:
        return [sentence]
    return [p for p in _CLAUSE.split(sentence) if p]


def snippet(
    text: str,
    query: str,
    max_tokens: int,
    compressor: ExtractiveCompressor,
    count: Callable[[str], int],
    *,
    anchor: str | None = None,
) -> str:
    """``text`` whole if it fits; else the run of sentences richest in ``query`` terms
    (or containing ``anchor``), grown around the best one until ``max_tokens``.

    >>> from sessionware.core.accounting.tokens import counter_for_model
    >>> c = counter_for_model("gpt-4o")
    >>> snippet("a. b. The code is 42. c.", "code", 6, ExtractiveCompressor(c), c.count_text)
    '… The code is 42. …'
    """
    if max_tokens <= 0:
        return ""
    if count(text) <= max_tokens:
        return text
    parts = [piece for part in sentences(text) for piece in _pieces(part)]
    wanted = set(terms(query))
    if not parts:
        return compressor.compress(text, CompressionLevel.FULL, max_tokens)

    def weight(word: str) -> float:
        """How much a single word points at what was asked: the anchor, then exact codes."""
        if anchor and anchor in word.lower():
            return 10.0
        found = wanted.intersection(terms(word))
        return max(
            (3.0 if any(c.isdigit() for c in t) and any(c in "-_" for c in t) else 1.0 for t in found),
            default=0.0,
        )

    def score(i: int) -> float:
        part = parts[i]
        hit = 0.0
        if anchor and anchor in part.lower():
            hit += 10.0
        return hit + len(wanted.intersection(terms(part)))

    best = max(range(len(parts)), key=lambda i: (score(i), -i))
    if score(best) == 0:
        return compressor.compress(text, CompressionLevel.ABSTRACT, max_tokens)
    lo = hi = best
    used = count(parts[best])
    if used > max_tokens:
        return _around(parts[best], weight, max_tokens, count)
    grew = True
    while grew:
        grew = False
        for j in (hi + 1, lo - 1):
            if 0 <= j < len(parts) and not lo <= j <= hi:
                cost = count(parts[j]) + 1
                if used + cost <= max_tokens:
                    used += cost
                    lo, hi = min(lo, j), max(hi, j)
                    grew = True
    body = " ".join(parts[lo : hi + 1])
    return ("… " if lo > 0 else "") + body + (" …" if hi < len(parts) - 1 else "")


def _around(part: str, weight: Callable[[str], float], max_tokens: int, count: Callable[[str], int]) -> str:
    """The widest run of words of ``part`` that fits, centred on its weightiest word (the
    first of equals): a long log line or JSON result is cut around what was asked."""
    words = part.split(" ")
    at = max(range(len(words)), key=lambda i: (weight(words[i]), -i))

    def window(radius: int) -> str:
        lo, hi = max(at - radius, 0), min(at + radius + 1, len(words))
        return ("… " if lo > 0 else "") + " ".join(words[lo:hi]) + (" …" if hi < len(words) else "")

    low, high = 0, len(words)
    if count(window(0)) > max_tokens:
        return ""
    while low < high:  # the largest radius that fits (counts are monotonic in the radius)
        mid = (low + high + 1) // 2
        if count(window(mid)) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return window(low)
