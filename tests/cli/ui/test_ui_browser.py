"""``sessionware ui`` in a real headless Chromium: pages load with no console error, the
list searches and sorts, a managed session shows its charts, timeline and the context a
call was sent. Screenshots of the list and of a managed session go to build/ui-screenshots."""

from __future__ import annotations

import pytest

READY = "document.documentElement.dataset.ready === '{}'"


@pytest.fixture
def page(browser, garden, serve):
    server = serve(garden.url)
    browser.errors.clear()
    yield browser, server, garden
    assert browser.errors == []


def _open(browser, url: str, ready: str) -> None:
    browser.goto("about:blank")
    browser.goto(url)
    browser.wait_for(READY.format(ready))


def test_the_list_loads_searches_and_sorts(page, screenshots) -> None:
    browser, server, garden = page
    _open(browser, server.url, "list")

    ids = browser.evaluate("[...document.querySelectorAll('#sessions tbody tr')].map(r => r.dataset.id)")
    assert sorted(ids) == sorted([garden.managed, garden.observed])
    assert browser.evaluate("document.querySelector('#sessions .tag.managed') !== null")
    browser.screenshot(screenshots / "list.png")

    browser.evaluate(
        "(() => { const s = document.getElementById('search'); s.value = 'observed';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    browser.wait_for("document.querySelectorAll('#sessions tbody tr').length === 1")
    assert browser.evaluate("document.querySelector('#sessions tbody tr').dataset.id") == garden.observed

    browser.evaluate(
        "(() => { const s = document.getElementById('search'); s.value = '';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    browser.wait_for("document.querySelectorAll('#sessions tbody tr').length === 2")
    browser.evaluate(
        "[...document.querySelectorAll('#sessions th')].find(t => t.textContent === 'calls').click()"
    )
    browser.wait_for(
        READY.format("list") + " && document.querySelector('th.sorted')?.textContent === 'calls'"
    )
    # Most calls first: the managed session has its hidden round on top of the same turns.
    assert browser.evaluate("document.querySelector('#sessions tbody tr').dataset.id") == garden.managed


def test_a_managed_session_shows_charts_timeline_and_the_context_sent(page, screenshots) -> None:
    browser, server, garden = page
    _open(browser, f"{server.url}#/s/{garden.managed}", "session")

    charts = browser.evaluate("[...document.querySelectorAll('[data-chart]')].map(c => c.dataset.chart)")
    assert charts == ["tokens", "cost", "latency", "managed"]
    assert browser.evaluate("document.querySelectorAll('[data-chart=tokens] path[data-series]').length") > 0
    kinds = browser.evaluate("[...document.querySelectorAll('#kinds .chip')].map(c => c.dataset.kind)")
    assert {"user", "assistant", "page_fault", "hidden", "compaction"} <= set(kinds)
    assert browser.evaluate("document.querySelectorAll('#timeline .ev').length") > 20
    browser.screenshot(screenshots / "managed_session.png")

    browser.evaluate("document.querySelector('#kinds .chip[data-kind=page_fault]').click()")
    browser.wait_for(
        "[...document.querySelectorAll('#timeline .ev')].every(e => e.classList.contains('k-page_fault'))"
    )
    assert browser.evaluate("document.querySelectorAll('#timeline .ev').length") == 1

    last = browser.evaluate(
        "(async () => (await (await fetch('/api/sessions/" + garden.managed + "')).json()).last_seq)()"
    )
    _open(browser, f"{server.url}#/s/{garden.managed}/c/{last}", "context")
    parts = browser.evaluate(
        "[...document.querySelectorAll('#context-panel .ctx .m')].map(m => m.dataset.part)"
    )
    # The request as built, then the search its hidden round made (sent after it).
    assert parts[0] == "system" and parts[-2:] == ["latest", "recalled"]
    assert {"memory", "recalled", "recent", "left_out"} <= set(parts)
    assert browser.evaluate("document.querySelectorAll('#partsbar > div').length") >= 3
    browser.screenshot(screenshots / "managed_context.png")


def test_an_observed_session_and_the_totals_page_load(page, screenshots) -> None:
    browser, server, garden = page
    _open(browser, f"{server.url}#/s/{garden.observed}", "session")
    charts = browser.evaluate("[...document.querySelectorAll('[data-chart]')].map(c => c.dataset.chart)")
    assert charts == ["tokens", "cost", "latency"]

    _open(browser, f"{server.url}#/totals", "totals")
    rows = browser.evaluate("document.querySelectorAll('#by-model tbody tr').length")
    assert rows == 2  # the one model and the total
    browser.screenshot(screenshots / "totals.png")


def test_an_unknown_session_shows_an_error_not_a_blank_page(page) -> None:
    browser, server, _ = page
    _open(browser, f"{server.url}#/s/no-such-session", "error")
    assert "session not found" in browser.evaluate("document.getElementById('main').textContent")
    # The failed request is the page's own doing, not a fault: forget it before the check.
    browser.errors[:] = [e for e in browser.errors if "404" not in e]
