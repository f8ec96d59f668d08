"""``sessionware ui`` at scale, in a real headless Chromium.

A SQLite store with 10,000 sessions of a few calls each and one managed session of
10,000 events (calls with cached tokens, app vs wire tokens, hidden rounds, page faults,
compactions, branches) is served by ``UIServer``; Debian's Chromium, driven over the
DevTools pipe, opens each page and the time from navigation to the page's ``ready``
mark (set after the frame that draws everything is laid out and painted) is measured:
first visit (the server reads the store) and repeated visits (median of 5). The session
view's first visit is then measured again on ``--fresh`` new servers over the same store
(the session's address opened directly), since one first visit on a shared machine says
little: the median of all first visits is what the bar is checked against, and the worst
and the load average are printed beside it. Last, the session view opened while the
list's first read of 10,000 headers runs: on a new server, the list is shown and the
session opened right away (the store serves reads one at a time, so a read of the whole
list at once held the session's reads behind it; it is now read in chunks).

Bar: the session view of the 10,000-event session renders in <= 1 s.

    python benchmarks/ui_render.py [--sessions 10000] [--events 10000] [--fresh 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cli" / "ui"))

from cdp import Browser

from sessionware.cli.ui import UIServer
from sessionware.core.accounting.usage import TokenUsage
from sessionware.core.session.enums import EventSource, EventType, Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store import AppendEvents, CreateSession, open_store

BIG = "big-managed-session"
BAR_SECONDS = 1.0
START = datetime(2026, 11, 1, tzinfo=UTC)


def _event(sid: str, seq: int, when: datetime, **fields: object) -> SessionEvent:
    return SessionEvent.model_construct(id=f"{sid}-{seq}", session_id=sid, seq=seq, timestamp=when, **fields)


def _call(sid: str, seq: int, when: datetime, turn: int, *, hidden: bool = False) -> SessionEvent:
    wire = 3_000 + (turn % 50) * 20
    usage = TokenUsage(input_tokens=wire, output_tokens=40, cache_read_tokens=wire - 400)
    fields: dict[str, object] = {
        "type": EventType.LLM_CALL if hidden else EventType.MESSAGE,
        "source": EventSource.LLM,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "usage": usage,
        "cost": Decimal("0.00000015") * 400
        + Decimal("0.000000075") * (wire - 400)
        + Decimal("0.0000006") * 40,
        "latency_ms": 400.0 + (turn * 37) % 500,
        "ttft_ms": 120.0 + (turn * 13) % 90,
        "finish_reason": "stop",
        "hidden": hidden,
        "metadata": {
            "managed": {
                "budget": 4000,
                "built_tokens": wire,
                "prefix_version": turn // 40,
                "stable_prefix_tokens": 1200,
                "cacheable_prefix_tokens": wire - 300,
                "compactions": 0,
                "hidden_rounds": 0,
                "memory_calls": 0,
            }
        },
    }
    if not hidden:
        fields.update(
            role=Role.ASSISTANT, content=f"Answer {turn}: noted, the tray of bed {turn % 12} moves."
        )
        fields["app_input_tokens"] = 400 + turn * 60
    return _event(sid, seq, when, **fields)


def big_session(n_events: int) -> list[SessionEvent]:
    events: list[SessionEvent] = []
    when = START
    turn = 0
    prompt = _event(
        BIG,
        1,
        when,
        type=EventType.SYSTEM_PROMPT,
        source=EventSource.SYSTEM,
        role=Role.SYSTEM,
        content="You help plan a community garden.",
    )
    events.append(prompt)
    while len(events) < n_events:
        turn += 1
        when += timedelta(seconds=30)
        seq = len(events) + 1
        text = f"Week {turn}: the seed tray for bed {turn % 12} is in locker C-{turn:04}; water it often."
        events.append(
            _event(
                BIG, seq, when, type=EventType.MESSAGE, source=EventSource.USER, role=Role.USER, content=text
            )
        )
        if turn % 25 == 0:
            events.append(_call(BIG, len(events) + 1, when, turn, hidden=True))
            events.append(
                _event(
                    BIG,
                    len(events) + 1,
                    when,
                    type=EventType.PAGE_FAULT,
                    source=EventSource.LLM,
                    tool_name="search_pages",
                    tool_arguments={"query": "shed key"},
                    hidden=True,
                    metadata={"recalled": [f"p{turn - 20}"]},
                )
            )
        events.append(_call(BIG, len(events) + 1, when, turn))
        if turn % 40 == 0:
            events.append(
                _event(
                    BIG,
                    len(events) + 1,
                    when,
                    type=EventType.COMPACTION,
                    source=EventSource.SYSTEM,
                    content=f"Turns {turn - 39}-{turn - 20}: trays moved between lockers.",
                    metadata={"first_turn": turn - 39, "last_turn": turn - 20},
                )
            )
        if turn % 500 == 0:
            events.append(
                _event(
                    BIG,
                    len(events) + 1,
                    when,
                    type=EventType.BRANCH,
                    source=EventSource.USER,
                    branch_of=len(events) - 2,
                )
            )
    return events[:n_events]


def build_store(url: str, n_sessions: int, n_events: int) -> None:
    store = open_store(url)
    ops: list[object] = []
    for i in range(n_sessions):
        sid = f"session-{i:05}"
        when = START + timedelta(minutes=i)
        ops.append(
            CreateSession(
                SessionInfo(
                    id=sid,
                    created_at=when,
                    updated_at=when,
                    metadata={"user": f"u{i % 97}"},
                    system_prompt="You are terse.",
                )
            )
        )
        events = []
        for turn in range(2):
            events.append(
                _event(
                    sid,
                    2 * turn + 1,
                    when,
                    type=EventType.MESSAGE,
                    source=EventSource.USER,
                    role=Role.USER,
                    content=f"question {turn} of {i}",
                )
            )
            events.append(_call(sid, 2 * turn + 2, when, turn))
        ops.append(AppendEvents(sid, tuple(events)))
        if len(ops) >= 2_000:
            store.submit(ops)  # type: ignore[arg-type]
            ops = []
    ops.append(CreateSession(SessionInfo(id=BIG, created_at=START, updated_at=START)))
    events = big_session(n_events)
    for at in range(0, len(events), 1_000):
        ops.append(AppendEvents(BIG, tuple(events[at : at + 1_000])))
    store.submit(ops)  # type: ignore[arg-type]
    store.flush(timeout=600)


def visit(browser: Browser, url: str, ready: str) -> float:
    browser.goto("about:blank")
    browser.wait_for("document.readyState === 'complete'")
    start = time.perf_counter()
    browser.goto(url)
    browser.wait_for(f"document.documentElement.dataset.ready === '{ready}'", timeout=120)
    return time.perf_counter() - start


def first_visit(browser: Browser, store_url: str, n_events: int) -> float:
    """The session view's first visit on a new server over the store."""
    server = UIServer(open_store(store_url), port=0).start()
    try:
        return visit(browser, f"{server.url}#/s/{BIG}", "session")
    finally:
        server.stop()


def during_list_read(browser: Browser, store_url: str) -> float:
    """The session view opened as soon as the list is shown on a new server, while the
    list's first read of every header runs."""
    server = UIServer(open_store(store_url), port=0).start()
    try:
        visit(browser, server.url, "list")
        start = time.perf_counter()
        browser.evaluate(f"location.hash = '#/s/{BIG}'")
        browser.wait_for("document.documentElement.dataset.ready === 'session'", timeout=120)
        return time.perf_counter() - start
    finally:
        server.stop()


def api_seconds(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--fresh", type=int, default=5, help="new servers to open the session on first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ui.db"
        t0 = time.perf_counter()
        build_store(url, args.sessions, args.events)
        print(
            f"store: {args.sessions:,} sessions + one of {args.events:,} events, written in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        server = UIServer(open_store(url), port=0).start()
        rows: list[tuple[str, float, float]] = []
        with Browser.launch() as browser:
            try:
                pages = [
                    ("session list (10k sessions)", server.url, "list"),
                    ("list, searched", server.url + "#/", "list"),
                    (f"session view ({args.events:,} events)", f"{server.url}#/s/{BIG}", "session"),
                    ("context of its last call", f"{server.url}#/s/{BIG}/c/{args.events}", "context"),
                    ("totals by model and day", f"{server.url}#/totals", "totals"),
                ]
                for name, page_url, ready in pages:
                    first = visit(browser, page_url, ready)
                    again = statistics.median(visit(browser, page_url, ready) for _ in range(5))
                    rows.append((name, first, again))
                api = {
                    "GET /api/sessions (50 of 10k)": api_seconds(server.url + "api/sessions?limit=50"),
                    "GET /api/sessions?q=u42 (search)": api_seconds(server.url + "api/sessions?q=u42"),
                    f"GET /api/sessions/{BIG}/calls": api_seconds(f"{server.url}api/sessions/{BIG}/calls"),
                    f"GET /api/sessions/{BIG}/events (a page)": api_seconds(
                        f"{server.url}api/sessions/{BIG}/events?offset=9000&limit=200"
                    ),
                }
            finally:
                server.stop()  # and its background reads: the fresh servers share its store
            fresh = [first_visit(browser, url, args.events) for _ in range(args.fresh)]
            during = [during_list_read(browser, url) for _ in range(3)]
            errors = list(browser.errors)
    print(f"\n{'page (headless Chromium, navigation to drawn)':<46} {'first':>8} {'again (median of 5)':>20}")
    for name, first, again in rows:
        print(f"{name:<46} {first * 1000:>6.0f} ms {again * 1000:>17.0f} ms")
    print(f"\n{'API, warm':<46} {'time':>8}")
    for name, seconds in api.items():
        print(f"{name:<46} {seconds * 1000:>6.0f} ms")
    session = next(r for r in rows if r[0].startswith("session view"))
    first = statistics.median([session[1], *fresh])
    print(
        f"\nsession view, first visit on {len(fresh)} fresh servers: "
        + ", ".join(f"{t * 1000:.0f}" for t in fresh)
        + f" ms (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        "session view opened as the list is first shown (its read of every header under way), "
        "3 fresh servers: " + ", ".join(f"{t * 1000:.0f}" for t in during) + " ms"
    )
    print(f"console errors: {len(errors)}")
    worst = max(first, session[2])
    verdict = "met" if worst <= BAR_SECONDS else "MISSED"
    print(
        f"bar: session view of the {args.events:,}-event session <= {BAR_SECONDS:.0f} s: "
        f"first visit {first:.2f} s (median of {len(fresh) + 1}; worst "
        f"{max(session[1], *fresh):.2f} s), again {session[2]:.2f} s -> {verdict}"
    )
    return 0 if worst <= BAR_SECONDS and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
