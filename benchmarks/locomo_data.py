"""Reading LoCoMo-10 (Maharana et al., ACL 2024) for ``locomo.py``, and the evidence matcher.

The data is not in the repository. Get it from the public ``snap-research/locomo``
repository: ``data/locomo10.json`` (one JSON list of samples, each with
``conversation`` and ``qa``), or the zip ``data/locomo10.zip`` of its ``data/`` folder
(one file per conversation under ``multimodal_dialog/locomo10_v2/``, each holding
``speaker_a``/``speaker_b``, ``session_N``, ``session_N_date_time`` and ``qa``
directly). ``load`` takes either file, the zip, or a folder with either inside.

A question is kept when it is of category 1-4 (5 is adversarial: no answer in the
conversation) and each of its evidence ids names a turn of the conversation; on the
public data that is 1,527 of 1,540 (4 have no evidence, 9 have malformed ids such as
``"D8:6; D9:17"``).

A turn is recorded as its speaker's name and words, ``"Caroline: I went to ..."``, with
the caption of a shared photo appended (``[shares a photo of ...]``) and the session's
date before the first turn of each session.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CATEGORIES", "Conversation", "EvidenceMatcher", "Question", "Turn", "load", "normalise"]

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
_SESSION = re.compile(r"^session_(\d+)$")


@dataclass(frozen=True, slots=True)
class Turn:
    dia_id: str
    speaker: str
    content: str
    """What is recorded: ``"[date] Speaker: words [shares caption]"``."""
    session: int


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    category: int
    evidence: tuple[str, ...]
    answer: str


@dataclass
class Conversation:
    sample_id: str
    speaker_a: str
    speaker_b: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    skipped: int = 0
    """Category 1-4 questions left out: evidence empty or naming no turn."""


def _conversation(sample_id: str, sample: Mapping[str, Any]) -> Conversation:
    conv = sample.get("conversation", sample)
    out = Conversation(sample_id, str(conv["speaker_a"]), str(conv["speaker_b"]))
    sessions = sorted(
        int(m.group(1)) for key in conv if (m := _SESSION.match(key)) and isinstance(conv[key], list)
    )
    for n in sessions:
        date = str(conv.get(f"session_{n}_date_time", "")).strip()
        for i, raw in enumerate(conv[f"session_{n}"]):
            words = str(raw["text"])
            if raw.get("blip_caption"):
                words += f" [shares {raw['blip_caption']}]"
            content = f"{raw['speaker']}: {words}"
            if i == 0 and date:
                content = f"[{date}] {content}"
            out.turns.append(Turn(str(raw["dia_id"]), str(raw["speaker"]), content, n))
    known = {t.dia_id for t in out.turns}
    for qa in sample.get("qa", ()):
        category = int(qa.get("category", 0))
        if category not in CATEGORIES:
            continue
        evidence = tuple(str(e) for e in qa.get("evidence") or ())
        if not evidence or not all(e in known for e in evidence):
            out.skipped += 1
            continue
        out.questions.append(Question(str(qa["question"]), category, evidence, str(qa.get("answer", ""))))
    return out


def _samples(name: str, data: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(data, list):  # locomo10.json: a list of samples
        for i, sample in enumerate(data):
            yield str(sample.get("sample_id", f"{name}#{i}")), sample
    elif isinstance(data, dict) and ("conversation" in data or "speaker_a" in data):
        yield Path(name).stem, data
    else:
        raise ValueError(f"{name}: not LoCoMo data (no samples, no conversation)")


def _from_files(files: Iterable[tuple[str, bytes]]) -> list[Conversation]:
    convs: list[Conversation] = []
    for name, raw in sorted(files):
        convs.extend(_conversation(sid, s) for sid, s in _samples(name, json.loads(raw)))
    if not convs:
        raise ValueError("no LoCoMo conversations found")
    return convs


def load(path: str | Path) -> list[Conversation]:
    """Conversations from ``locomo10.json``, ``locomo10.zip``, or a folder holding either
    (or the zip's per-conversation files)."""
    p = Path(path)
    if p.is_dir():
        whole = sorted(p.rglob("locomo10.json"))
        if whole:
            return _from_files([(str(whole[0]), whole[0].read_bytes())])
        files = sorted(p.rglob("*.json"))
        if files:
            return _from_files((str(f), f.read_bytes()) for f in files)
        zips = sorted(p.rglob("*.zip"))
        if zips:
            return load(zips[0])
        raise ValueError(f"{p}: no locomo10.json, locomo10.zip or conversation files inside")
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            names = [n for n in z.namelist() if n.endswith(".json")]
            whole = [n for n in names if n.endswith("locomo10.json")]
            return _from_files((n, z.read(n)) for n in (whole[:1] or names))
    return _from_files([(str(p), p.read_bytes())])


def normalise(text: str) -> str:
    return " ".join(text.split())


class EvidenceMatcher:
    """Is a turn's recorded text, whole, in one message or one tool result?

    A message's text is its string content (or its text parts); a tool result is also
    read as JSON, each string in it on its own. The turn matches raw or JSON-escaped (a
    page line shows its body as a JSON string), whitespace-normalised on both sides,
    never across two messages. A turn cut by a snippet does not match.
    """

    def __init__(self, turns: Iterable[Turn]) -> None:
        self._needles: dict[str, tuple[str, ...]] = {}
        for t in turns:
            raw = normalise(t.content)
            escaped = normalise(json.dumps(t.content, ensure_ascii=False)[1:-1])
            self._needles[t.dia_id] = (raw,) if escaped == raw else (raw, escaped)

    @staticmethod
    def haystacks(messages: Iterable[Mapping[str, Any]]) -> list[str]:
        out: list[str] = []
        for msg in messages:
            content = msg.get("content")
            if isinstance(content, str):
                out.append(normalise(content))
                if msg.get("role") == "tool":
                    out.extend(_json_strings(content))
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        out.append(normalise(part["text"]))
        return out

    def found(self, dia_id: str, haystacks: list[str]) -> bool:
        needles = self._needles[dia_id]
        return any(n in h for h in haystacks for n in needles)


def _json_strings(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(normalise(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out
