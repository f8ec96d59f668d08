"""Text helpers shared by search, compression and demand paging: terms and sentences."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["STOPWORDS", "identifiers", "sentences", "stem", "terms"]

# The last line holds the fragments of possessives and contractions ("Omar's" -> "omar", "s"):
# as terms they would match nearly every page.
_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves tell remind recall remember said
    say says please thanks thank again earlier previously mentioned told know let us one get got
    also like okay ok yes yeah hi hello hey really want need think make made still back way go
    going well much many
    s t d ll re ve m"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

_TERM = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_IDENTIFIER = re.compile(r"\b[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+\b|\b(?=[A-Za-z]*\d)[A-Za-z0-9]{5,}\b")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, deterministic suffix stripper (plural, -ing, -ed), enough for recall."""
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: len(word) - len(suffix)] + keep
    return word


def terms(text: str) -> list[str]:
    """Search terms of ``text``: lowercased, stop words removed, stemmed.

    Compound identifiers (``KX-4711-Q``) are kept whole and also split into parts.

    >>> terms("What is my locker-code? KX-4711-Q")
    ['locker-code', 'locker', 'code', 'kx-4711-q', 'kx', '4711', 'q']
    """
    out: list[str] = []
    for match in _TERM.findall(text.lower()):
        if match in STOPWORDS:
            continue
        if "-" in match or "_" in match or ("." in match and not match.replace(".", "").isdigit()):
            out.append(match)
            out.extend(stem(p) for p in re.split(r"[-_.]", match) if p and p not in STOPWORDS)
        else:
            out.append(stem(match))
    return out


def identifiers(text: str, *, keep_case: bool = False) -> list[str]:
    """Identifier-like tokens (codes, keys, ids: mixed letters and digits or joined by
    ``-``/``_``), in order of appearance, without repeats; lowercased (for matching)
    unless ``keep_case`` (for showing them)."""
    seen: dict[str, None] = {}
    for match in _IDENTIFIER.findall(text):
        if any(ch.isdigit() for ch in match):
            seen.setdefault(match if keep_case else match.lower(), None)
    return list(seen)


def sentences(text: str) -> list[str]:
    """``text`` split into sentences and lines, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]
