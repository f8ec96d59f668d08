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


# Irregular forms that suffix stripping cannot join to their base ("met" / "meet").
_IRREGULAR_TEXT = """
    met:meet went:go gone:go goes:go bought:buy brought:bring thought:think taught:teach
    caught:catch saw:see seen:see took:take taken:take gave:give given:give ran:run
    began:begin begun:begin wrote:write written:write drove:drive driven:drive ate:eat
    eaten:eat flew:fly flown:fly swam:swim sang:sing sung:sing felt:feel kept:keep
    left:leave lost:lose found:find heard:hear held:hold built:build sent:send spent:spend
    won:win chose:choose chosen:choose fell:fall fallen:fall knew:know known:know
    grew:grow grown:grow threw:throw drew:draw drawn:draw paid:pay sold:sell stood:stand
    understood:understand forgot:forget forgotten:forget became:become came:come wore:wear
    worn:wear broke:break broken:break spoke:speak spoken:speak woke:wake rode:ride
    ridden:ride hid:hide slept:sleep meant:mean led:lead fed:feed sat:sit shot:shoot
    struck:strike taught:teach children:child men:man women:woman people:person mice:mouse
    feet:foot teeth:tooth better:good best:good worse:bad worst:bad
    """
_IRREGULAR = dict(pair.split(":") for pair in _IRREGULAR_TEXT.split())
_DOUBLED = frozenset("bdfgkmnprt")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, deterministic stemmer: irregular forms, plural, -ing, -ed, a final -e and
    a doubled last consonant, so "hiking", "hikes" and "hike", or "met" and "meeting",
    share a stem.

    >>> [stem(w) for w in ("hiking", "hiked", "hike", "met", "meeting", "swimming", "studies")]
    ['hik', 'hik', 'hik', 'meet', 'meet', 'swim', 'study']
    """
    base = _IRREGULAR.get(word)
    if base is not None:
        word = base
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, keep in (
        ("ies", "y"),
        ("ied", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            word = word[: len(word) - len(suffix)] + keep
            if not keep and len(word) > 3 and word[-1] == word[-2] and word[-1] in _DOUBLED:
                word = word[:-1]
            break
    if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Search terms of ``text``: lowercased, stop words removed, stemmed.

    Compound identifiers (``KX-4711-Q``) are kept whole and also split into parts.

    >>> terms("What is my locker-code? KX-4711-Q")
    ['locker-code', 'locker', 'cod', 'kx-4711-q', 'kx', '4711', 'q']
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
