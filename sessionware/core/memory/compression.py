"""Compressors: how a page's text shrinks before it is evicted.

``Compressor`` is the protocol (one per modality); ``ExtractiveCompressor`` is the
deterministic offline default. It keeps whole sentences, best first by how much they
look like facts (identifiers, capitalised names, quotes, "is/are" statements, numbers in
a sentence with content), newer first among equals, and prints the kept ones in their
original order. Speaker prefixes ("U: ", "Caroline: ") are set aside before scoring,
repeated sentences and filler ("Noted.", "Acknowledged point 12.") are dropped, and a
statement superseded by a later one about the same thing ("My favourite colour is
blue." ... "My favourite colour is green now.") gives way to it. An app's
async ``summarize_fn`` (an LLM) can replace it for summaries; the builder then awaits it
in ``abuild``.

>>> ex = ExtractiveCompressor()
>>> ex.compress_text("Nice weather today. My locker code is KX-4711-Q. Bye!", 12)
'My locker code is KX-4711-Q.'
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol, runtime_checkable

from sessionware.core.accounting.tokens import TokenCounter, counter_for_model
from sessionware.core.memory.enums import CompressionLevel, Modality
from sessionware.core.memory.text import identifiers, sentences, terms

__all__ = [
    "Compressor",
    "CompressorRegistry",
    "ExtractiveCompressor",
    "ReferenceCompressor",
    "statement",
    "superseded",
]

_FACTY = re.compile(r"\b(is|are|was|were|equals|set to|means|called|named|lives?|uses?|prefer\w*)\b", re.I)
_CAPITAL = re.compile(r"\b[A-Z][a-z]+")
_CODE = re.compile(r"\b[\w-]*\d[\w-]*\b")
_QUOTED = re.compile(r"\"[^\"]+\"|'[^']{2,}'|`[^`]+`")
_FILLER = re.compile(
    r"^(ok|okay|sure|thanks|thank you|great|cool|got it|sounds good|noted|acknowledged|understood|"
    r"will do|of course|no problem|you're welcome|here is what i found|nice|wow|awesome|lol|haha)\b",
    re.I,
)
_FILLER_SCORE = -3.0
_NUMBER = re.compile(r"\b\d[\d.,:/]*\b")
_PREFIX = re.compile(r"^(?:\[[^\]]{1,40}\]\s*)?(?:[A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,2}:\s+){1,2}")
_COPULA = re.compile(r"^(?P<subject>.+?)\s+(?:is|are|was|were)\s+(?:now\s+)?(?P<value>.+)$", re.I)
_UPDATE_CUE = re.compile(r"\b(now|changed|moved|updated?|new|instead|anymore|no longer)\b", re.I)


@runtime_checkable
class Compressor(Protocol):
    """Shrinks text to at most ``max_tokens`` at a compression level (pure, sync)."""

    @property
    def modality(self) -> Modality: ...

    def compress(self, text: str, level: CompressionLevel, max_tokens: int) -> str: ...


# Real text never packs more characters than this into one token: a sentence longer than
# this many characters per token of room left cannot fit, so it is not counted.
_MAX_CHARS_PER_TOKEN = 8


def _strip(sentence: str) -> str:
    """``sentence`` without the speaker prefixes (and date) a transcript line starts with."""
    return _PREFIX.sub("", sentence, count=1)


@lru_cache(maxsize=32768)
def _score(sentence: str) -> float:
    """How much ``sentence`` looks like a fact worth keeping (cheap, deterministic)."""
    text = _strip(sentence)
    if len(text) < 12 or _FILLER.match(text):
        return _FILLER_SCORE
    score = 0.0
    codes = [c for c in _CODE.findall(text) if not c.isdigit()]
    if codes:
        score += 2.0 + 1.5 * min(len(codes), 2)
    content = [t for t in terms(text) if not t.isdigit()]
    if _NUMBER.search(text) and len(content) >= 3:
        score += 1.0
    score += 0.5 * min(len(_CAPITAL.findall(text, 1)), 3)
    if _QUOTED.search(text):
        score += 1.0
    if _FACTY.search(text):
        score += 1.0
    return score


def _subject(text: str) -> frozenset[str] | None:
    match = _COPULA.match(text)
    if match is None:
        return None
    subject = frozenset(terms(match.group("subject")))
    return subject or None


@lru_cache(maxsize=32768)
def statement(sentence: str) -> tuple[str, frozenset[str] | None, frozenset[str], bool]:
    """What ``superseded`` reads of a sentence (cached: a sentence is read when its turn
    closes, again at compaction and again when summaries fold): its text without the
    speaker prefix, the subject it states something about, its terms, and whether it
    carries an update cue."""
    text = _strip(sentence)
    return text, _subject(text), frozenset(terms(text)), _UPDATE_CUE.search(text) is not None


def superseded(parts: list[str]) -> set[int]:
    """Indexes of sentences a later one replaces: the same subject stated again ("X is a"
    ... "X is b"), or a subject of two words or more named again with an update cue.

    Each sentence looks only at the later ones stating its subject and at the later
    ones with a cue that hold its rarest subject term, so a chunk costs about its
    sentences, not their pairs."""
    facts = [statement(p) for p in parts]
    stating: dict[frozenset[str], list[int]] = {}
    cued: dict[str, list[int]] = {}
    for j, (_, subject, words, cue) in enumerate(facts):
        if subject is not None:
            stating.setdefault(subject, []).append(j)
        if cue:
            for word in words:
                cued.setdefault(word, []).append(j)
    out: set[int] = set()
    for i, (text, subject, _, _) in enumerate(facts):
        if subject is None:
            continue
        later = (j for j in stating[subject] if j > i and facts[j][0] != text)
        if next(later, None) is not None:
            out.add(i)
            continue
        if len(subject) < 2:
            continue
        rarest = min((cued.get(word, ()) for word in subject), key=len)
        if any(j > i and facts[j][0] != text and subject <= facts[j][2] for j in rarest):
            out.add(i)
    return out


class ExtractiveCompressor:
    """Deterministic, offline sentence extraction under an exact token limit."""

    def __init__(self, counter: TokenCounter | None = None) -> None:
        self._counter = counter or counter_for_model("gpt-4o-mini")
        # Folding re-reads earlier summaries: their sentences are counted once.
        self._count = lru_cache(maxsize=32768)(self._counter.count_text)

    @property
    def modality(self) -> Modality:
        return Modality.TEXT

    def compress(self, text: str, level: CompressionLevel, max_tokens: int) -> str:
        if level is CompressionLevel.FULL:
            return self._cut(text, max_tokens)
        if level is CompressionLevel.REFERENCE:
            return self._cut(
                " ".join(identifiers(text, keep_case=True)[:6]) or text.split("\n", 1)[0], max_tokens
            )
        return self.compress_text(text, max_tokens)

    def compress_text(self, text: str, max_tokens: int) -> str:
        """The best sentences of ``text`` that fit ``max_tokens``, in original order.

        Sentences are taken best first while they fit (exact counts); once the room left
        is small, a sentence too long to possibly fit is passed over without counting it,
        so a compaction does not tokenize every sentence of the turns it evicts.
        """
        count = self._count
        if len(text) <= max_tokens or (
            len(text) // _MAX_CHARS_PER_TOKEN <= max_tokens and count(text) <= max_tokens
        ):
            return text.strip()
        parts = sentences(text)
        if not parts:
            return self._cut(text, max_tokens)
        seen: set[str] = set()
        unique: list[str] = []
        for part in parts:
            key = " ".join(statement(part)[0].lower().split())
            if key not in seen:
                seen.add(key)
                unique.append(part)
        dropped = superseded(unique)
        parts = [p for i, p in enumerate(unique) if i not in dropped]
        ranked = sorted(range(len(parts)), key=lambda i: (-_score(parts[i]), -i))
        kept: list[int] = []
        used = 0
        for i in ranked:
            if _score(parts[i]) <= _FILLER_SCORE:
                break  # filler is never kept (ranked last, so nothing after it is either)
            room = max_tokens - used
            if len(parts[i]) // _MAX_CHARS_PER_TOKEN + 1 > room:
                continue
            cost = count(parts[i]) + 1
            if cost > room:
                continue
            kept.append(i)
            used += cost
        if not kept:
            return self._cut(parts[ranked[0]], max_tokens)
        return " ".join(parts[i] for i in sorted(kept))

    def prepare(self, text: str) -> None:
        """Read ``text``'s sentences ahead of a ``compress_text`` that will hold them: their
        scores, statements and exact tokens are cached, so a compaction of turns prepared
        as they closed reads its sentences from the caches instead of analysing them all
        at once (the output is the same, prepared or not)."""
        for part in sentences(text):
            _score(part)
            statement(part)
            self._count(part)

    def count(self, text: str) -> int:
        """Exact tokens of ``text`` (cached: a summary is counted where it was made)."""
        return self._count(text)

    def _cut(self, text: str, max_tokens: int) -> str:
        """``text`` cut on a word boundary to fit ``max_tokens`` (with an ellipsis)."""
        count = self._counter.count_text
        if count(text) <= max_tokens:
            return text
        if max_tokens <= 1:
            return ""
        # Tokens average ~4 characters; start there and shrink until it fits.
        cut = min(len(text), max_tokens * 4)
        while cut > 0:
            candidate = text[:cut].rsplit(" ", 1)[0] if " " in text[:cut] else text[:cut]
            candidate = candidate.rstrip() + "…"
            if count(candidate) <= max_tokens:
                return candidate
            cut = int(cut * 0.85)
        return ""


class ReferenceCompressor:
    """For non-text modalities: only a reference survives compression."""

    def __init__(self, modality: Modality) -> None:
        self._modality = modality

    @property
    def modality(self) -> Modality:
        return self._modality

    def compress(self, text: str, level: CompressionLevel, max_tokens: int) -> str:
        return f"[{self._modality.value}]" if level > CompressionLevel.FULL else text


class CompressorRegistry:
    """The compressor for each modality (extractive text, reference for the rest)."""

    def __init__(self, counter: TokenCounter | None = None) -> None:
        text = ExtractiveCompressor(counter)
        self._by_modality: dict[Modality, Compressor] = {m: ReferenceCompressor(m) for m in Modality}
        self._by_modality[Modality.TEXT] = text
        self._by_modality[Modality.STRUCTURED] = text

    def register(self, compressor: Compressor) -> None:
        self._by_modality[compressor.modality] = compressor

    def get(self, modality: Modality) -> Compressor:
        return self._by_modality[modality]
