"""A seeded long conversation with planted facts and probes, and a scripted reader.

Used by ``context_quality.py`` and ``managed_quality.py``, which score it the same way
(``summarise``). Everything is reproducible from ``(seed, turns)``.
The reader never sees the gold answer: its memory calls are built only from the
probe's question (and, for its second call, a page id from its first call's result),
and it reads only the messages the model would receive, so the same harness can later
run through an SDK wrapper with a mocked model.
"""

from __future__ import annotations

import json
import random
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STATIC = [
    (
        "The code for {n}'s gym locker is {v}.",
        "Which combination opens {n}'s gym locker?",
        "The code for {n}'s old school locker was {d}.",
    ),
    (
        "The wifi password at {n}'s cabin is {v}.",
        "What do I type to get {n}'s cabin online, the wifi one?",
        "The wifi password at {n}'s office is {d}.",
    ),
    (
        "{n}'s flight confirmation number is {v}.",
        "What's the booking reference for {n}'s flight?",
        "{n}'s hotel confirmation number is {d}.",
    ),
    (
        "{n}'s office badge number is {v}.",
        "Which number is printed on {n}'s office badge?",
        "{n}'s gym badge number is {d}.",
    ),
    (
        "The software license key for {n}'s Photon install is {v}.",
        "What key activates {n}'s Photon?",
        "The software license key for {n}'s Lumen install is {d}.",
    ),
    (
        "The support ticket about {n}'s printer is {v}.",
        "Which ticket did we open for {n}'s printer problem?",
        "The support ticket about {n}'s scanner is {d}.",
    ),
    (
        "{n}'s savings account number is {v}.",
        "What's the number of {n}'s savings account?",
        "{n}'s checking account number is {d}.",
    ),
    (
        "The conference room for {n}'s Friday review is {v}.",
        "Where is {n}'s Friday review meeting held?",
        "The conference room for {n}'s Monday standup is {d}.",
    ),
]
UPDATED = [
    (
        "{n}'s parking spot is {v}.",
        "Update: {n}'s parking spot changed, it is now {v}.",
        "Which parking spot does {n} use now?",
    ),
    ("{n}'s desk is {v}.", "{n} moved desks; the desk is now {v}.", "Where is {n}'s desk these days?"),
    (
        "{n}'s on-call phone is {v}.",
        "{n}'s on-call phone changed, it is now {v}.",
        "What is {n}'s on-call phone now?",
    ),
]
NAMES = [
    "Maya",
    "Omar",
    "Lena",
    "Ravi",
    "Sofia",
    "Jonas",
    "Aiko",
    "Pablo",
    "Greta",
    "Tariq",
    "Ines",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elif",
    "Felix",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lucia",
    "Marek",
    "Nadia",
    "Oscar",
    "Priya",
    "Quinn",
    "Rosa",
    "Stefan",
    "Tess",
    "Umar",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Anton",
]
TOPICS = [
    "garden",
    "budget",
    "trip",
    "recipe",
    "workout",
    "reading list",
    "car repair",
    "birthday party",
    "bookshelf",
    "tax forms",
    "office plants",
    "gym schedule",
    "cabin weekend",
    "printer settings",
]
PINNED = "Always answer in British English and keep answers under five sentences."
KINDS = ("static", "paraphrased", "updated", "chain3", "tool_needle")
"""The kinds of probe, each a way a fact is asked back."""


@dataclass
class Probe:
    turn: int
    kind: str
    question: str
    gold: str
    stale: str | None = None


@dataclass
class Turn:
    user: str
    assistant: str
    pin: bool = False
    tool: tuple[str, str] | None = None
    """(tool call arguments, tool output) for turns that call a tool."""


@dataclass
class Workload:
    turns: list[Turn]
    probes: dict[int, Probe] = field(default_factory=dict)


def _code(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(1000, 9999)}-{rng.choice(letters)}"


def _near(rng: random.Random, code: str) -> str:
    digits = str((int(code[3:7]) + rng.randint(1, 9)) % 9000 + 1000)
    return code[:3] + digits + code[7:]


def _filler(rng: random.Random, i: int) -> Turn:
    topic = rng.choice(TOPICS)
    user = rng.choice(
        [
            f"Can you help me plan the {topic}? I have about {rng.randint(2, 9)} hours this week.",
            f"What do you think about my {topic} so far, honestly?",
            f"Quick one about the {topic}: is it better to start early or late?",
            f"I keep postponing the {topic}. Any tips to get going?",
        ]
    )
    assistant = rng.choice(
        [
            f"For the {topic}, start with the smallest step and block time for it. Keep notes as you go.",
            f"The {topic} sounds manageable. Split it into two sessions and review after the first one.",
            f"Early is usually better for the {topic}; energy is higher and interruptions are fewer.",
        ]
    )
    return Turn(user, assistant)


def generate(seed: int, n_turns: int) -> Workload:
    """A conversation of ``n_turns`` with planted facts and a probe for each."""
    rng = random.Random(seed)
    turns = [_filler(rng, i) for i in range(n_turns)]
    turns[3] = Turn(PINNED, "Understood, I will.", pin=True)
    work = Workload(turns)
    used: set[int] = {3}

    def free_turn(lo: int, hi: int) -> int:
        while True:
            t = rng.randint(lo, max(lo, hi))
            if t not in used and t < n_turns:
                used.add(t)
                return t

    def probe_at(planted: int, probe: Probe) -> None:
        probe.turn = free_turn(min(planted + 150, n_turns - 2), min(planted + 1500, n_turns - 1))
        work.probes[probe.turn] = probe

    span = int(n_turns * 0.75)
    n_each = max(n_turns // 250, 4)
    for k in range(n_each * 2):
        fact, question, distractor = STATIC[k % len(STATIC)]
        name = NAMES[k % len(NAMES)]
        value = _code(rng)
        t = free_turn(10, span)
        turns[t] = Turn(f"For the record: {fact.format(n=name, v=value)}", "Noted, I'll remember that.")
        d = free_turn(10, n_turns - 2)
        turns[d] = Turn(f"By the way, {distractor.format(n=name, d=_near(rng, value))}", "Got it.")
        probe_at(t, Probe(0, "paraphrased" if k % 2 else "static", question.format(n=name), value))
    for k in range(n_each):
        first, second, question = UPDATED[k % len(UPDATED)]
        name = NAMES[-1 - k % len(NAMES)]
        old, new = _code(rng), _code(rng)
        t1 = free_turn(10, span // 2)
        t2 = free_turn(t1 + 50, span)
        turns[t1] = Turn(first.format(n=name, v=old), "Okay, noted.")
        turns[t2] = Turn(second.format(n=name, v=new), "Thanks for the update.")
        probe_at(t2, Probe(0, "updated", question.format(n=name), new, stale=old))
    for _ in range(n_each):
        k1, k2, k3, value = (_code(rng) for _ in range(4))
        t1 = free_turn(10, span // 2)
        t2 = free_turn(t1 + 20, t1 + 400)
        t3 = free_turn(t2 + 20, t2 + 400)
        turns[t1] = Turn(f"Note this: vault key {k1} points to tag {k2}.", "Noted.")
        turns[t2] = Turn(f"Another note: tag {k2} points to bucket {k3}.", "Noted.")
        turns[t3] = Turn(f"Last one: bucket {k3} holds the value {value}.", "Noted.")
        probe_at(
            t3,
            Probe(0, "chain3", f"Starting from vault key {k1}, which value do you reach at the end?", value),
        )
    for k in range(n_each):
        service, key, value = (
            f"svc-{rng.randint(10, 99)}",
            f"retry_budget_{k}",
            str(rng.randint(10000, 99999)),
        )
        lines = [
            f"2024-05-{d % 28 + 1:02d} INFO {service} heartbeat ok latency={rng.randint(5, 90)}ms"
            for d in range(60)
        ]
        lines.insert(rng.randint(5, 55), f"2024-05-11 WARN {service} config {key} = {value}")
        t = free_turn(10, span)
        turns[t] = Turn(
            f"Can you pull the logs for {service}?",
            f"The {service} logs look healthy overall.",
            tool=(json.dumps({"service": service}), "\n".join(lines)),
        )
        probe_at(t, Probe(0, "tool_needle", f"What value was {key} set to in the {service} logs?", value))
    return work


def visible(text: str, needle: str) -> bool:
    return needle in text


_PAGE_ID = re.compile(r"\b((?:msg|sum|roll|chunk|claim|seg)_\d+)\b")

ToolHandler = Callable[[str, str], str]


class ScriptedReader:
    """Plays the model at a probe: at most ``max_calls`` memory calls, built from the question."""

    def __init__(self, max_calls: int = 2) -> None:
        self.max_calls = max_calls

    def next_call(self, messages: Sequence[dict[str, Any]], calls_made: int) -> tuple[str, str] | None:
        """The next (tool name, arguments JSON), or None to answer now."""
        if calls_made >= self.max_calls:
            return None
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if calls_made == 0:
            return "search_pages", json.dumps({"query": question})
        last = messages[-1]["content"] if messages and messages[-1]["role"] == "tool" else ""
        ids = _PAGE_ID.findall(last)
        if not ids:
            return None
        return "page_fault", json.dumps({"page_id": ids[0], "target_level": 0})


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Shares of the probes answered (in the context, after memory calls, stale, pinned
    kept), mean tokens and calls, budget violations, and the share after calls per kind."""

    def share(key: str, kinds: tuple[str, ...] = KINDS) -> float:
        sel = [r for r in rows if r["kind"] in kinds]
        return sum(r[key] for r in sel) / len(sel) if sel else 0.0

    out = {
        "in_context": share("in_context"),
        "after": share("after"),
        "stale": share("stale", ("updated",)),
        "pinned": share("pinned"),
        "tokens": statistics.mean(r["tokens"] for r in rows),
        "violations": sum(r["violation"] for r in rows),
        "calls": statistics.mean(r["calls"] for r in rows),
    }
    for kind in KINDS:
        out[kind] = share("after", (kind,))
    return out
