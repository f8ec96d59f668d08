"""``sessionware ui``'s totals page (by model and by day) over 10,000 sessions.

The store is ``ui_render.py``'s: a SQLite file with 10,000 sessions of a few calls each
and one managed session of 10,000 events. Measured in one run, each on a new server (so
the store is read from the start, as on a first visit):

* baseline: the report as the page computed it before per-session parts (the whole
  session list, then every session's events read one ``load_events`` at a time and
  folded at once), in-process;
* ``GET /api/totals``, waiting for the complete report, first and again;
* the page in headless Chromium: time to the first drawn totals (partial while the count
  runs) and to the complete ones;
* after 20 sessions were appended to (a re-count reads only those): the time until the
  report has them, in-process with a list no older than 0 s.

Each figure is given as wall time and as this process's CPU time (every thread: the
server's reads and counts; not Chromium's), the CPU being what the code costs on a
shared machine.

    python benchmarks/ui_totals.py [--sessions 10000] [--events 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_render import START, Browser, _call, build_store

from sessionware.cli.totals import build_report
from sessionware.cli.ui import UIServer
from sessionware.cli.ui.catalog import SessionCatalog
from sessionware.cli.ui.totals import StoreTotals
from sessionware.core.defaults import default_price_book
from sessionware.core.store import AppendEvents, open_store


class Clock:
    """Wall time and this process's CPU time (every thread: the server's included)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def baseline_seconds(url: str) -> tuple[tuple[float, float], int]:
    """The former way: every session's events read one at a time, then folded."""
    store = open_store(url)
    prices = default_price_book()
    clock = Clock()
    infos = store.list_sessions()
    events = ((i.id, store.load_events(i.id)) for i in infos)
    report = build_report(events, store=store.location, prices=prices)
    seconds = clock.read()
    store.close()
    return seconds, report.total.calls


def api_complete(url: str) -> tuple[tuple[float, float], tuple[float, float], int]:
    server = UIServer(open_store(url), port=0).start()
    try:
        clock = Clock()
        with urllib.request.urlopen(server.url + "api/totals", timeout=600) as response:
            first = json.loads(response.read())
        cold = clock.read()
        clock = Clock()
        with urllib.request.urlopen(server.url + "api/totals", timeout=600) as response:
            response.read()
        return cold, clock.read(), int(first["total"]["calls"])
    finally:
        server.stop()


def page_seconds(browser: Browser, url: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(first drawn, complete) for the totals page on a new server."""
    server = UIServer(open_store(url), port=0).start()
    try:
        browser.goto("about:blank")
        browser.wait_for("document.readyState === 'complete'")
        clock = Clock()
        browser.goto(f"{server.url}#/totals")
        browser.wait_for("(document.documentElement.dataset.ready || '').startsWith('totals')", timeout=600)
        drawn = clock.read()
        browser.wait_for("document.documentElement.dataset.ready === 'totals'", timeout=600)
        return drawn, clock.read()
    finally:
        server.stop()


def incremental_seconds(url: str, changed: int) -> tuple[tuple[float, float], int]:
    store = open_store(url)
    prices = default_price_book()
    totals = StoreTotals(store, prices, SessionCatalog(store, prices, max_age=0.0))
    before = totals.report()["total"]["calls"]
    ops = []
    for i in range(changed):
        sid = f"session-{i * 37:05}"
        ops.append(AppendEvents(sid, (_call(sid, 5, START + timedelta(days=3), 7),)))
    store.submit(ops)
    store.flush()
    clock = Clock()
    while (report := totals.report())["total"]["calls"] != before + changed:
        time.sleep(0.01)
    seconds = clock.read()
    totals.close()
    store.close()
    return seconds, int(report["total"]["calls"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ui.db"
        t0 = time.perf_counter()
        build_store(url, args.sessions, args.events)
        print(
            f"store: {args.sessions:,} sessions + one of {args.events:,} events, written in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        load = [os.getloadavg()[0]]
        base, base_calls = baseline_seconds(url)
        cold, warm, calls = api_complete(url)
        assert calls == base_calls, (calls, base_calls)
        with Browser.launch() as browser:
            drawn, complete = page_seconds(browser, url)
            errors = list(browser.errors)
        load.append(os.getloadavg()[0])
        step, _ = incremental_seconds(url, args.changed)
        load.append(os.getloadavg()[0])
    title = f"totals by model and day, {args.sessions:,} sessions"
    print(f"\n{title:<58} {'wall':>9} {'vs baseline':>12} {'CPU':>9} {'vs baseline':>12}")
    rows = [
        ("baseline: list + one load_events per session, one fold", base),
        ("GET /api/totals, complete, first (new server)", cold),
        ("GET /api/totals again", warm),
        ("page in Chromium: first drawn (partial while counting)", drawn),
        ("page in Chromium: complete", complete),
        (f"report with {args.changed} sessions appended to", step),
    ]
    for name, (wall, cpu) in rows:
        print(
            f"{name:<58} {wall * 1000:>6.0f} ms {wall / base[0]:>11.2f}x"
            f" {cpu * 1000:>6.0f} ms {cpu / base[1]:>11.2f}x"
        )
    print(f"\ncalls counted: {calls:,} (baseline {base_calls:,}); console errors: {len(errors)}")
    print(
        "load average during the run: " + ", ".join(f"{x:.1f}" for x in load) + f" on {os.cpu_count()} cores"
    )
    return 0 if not errors and calls == base_calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
