"""What a page asks for does not wait behind the read of the whole session list, and a
page never draws an answer to a request that a later one superseded (the list test's
flake: a first page asked again and a search, both held by that read, came back at the
same moment in either order, and the page drew the older one last)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import fetch

from sessionware.core.store.sqlite import SQLiteBackend

READY = "document.documentElement.dataset.ready === 'list'"
ROWS = "document.querySelectorAll('#sessions tbody tr').length"


@pytest.fixture
def held_list(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The store's read of every session header waits for ``release`` (``reading`` is set
    once it has started): a read of 10,000 headers on a busy machine, made to last."""
    reading, release = threading.Event(), threading.Event()
    original = SQLiteBackend.list_sessions

    def held(self: SQLiteBackend, *, parent_id: str | None = None, limit: int | None = None) -> Any:
        if parent_id is None and limit is None:
            reading.set()
            release.wait(60)
        return original(self, parent_id=parent_id, limit=limit)

    monkeypatch.setattr(SQLiteBackend, "list_sessions", held)
    try:
        yield reading, release
    finally:
        release.set()


def test_the_first_page_asked_again_does_not_wait_for_the_whole_list(garden, serve, held_list) -> None:
    reading, release = held_list
    server = serve(garden.url)
    first = fetch(server.url + "api/sessions").json()
    assert first["partial"] and first["total"] is None
    assert reading.wait(30)
    # The page asks again while the whole list is read (the store's reader is busy with it).
    again = fetch(server.url + "api/sessions").json()
    assert not release.is_set()
    assert again["partial"] and [r["id"] for r in again["rows"]] == [r["id"] for r in first["rows"]]
    assert [r["id"] for r in again["rows"]] == [garden.observed, garden.managed]  # newest first
    release.set()
    searched = fetch(server.url + "api/sessions?q=observed").json()
    assert (searched["partial"], searched["matched"], searched["total"]) == (False, 1, 2)


def test_an_answer_superseded_by_a_later_request_is_not_drawn(browser, garden, serve) -> None:
    server = serve(garden.url)
    assert fetch(server.url + "api/sessions?q=garden").json()["total"] == 2  # the whole list, read
    browser.errors.clear()
    browser.goto("about:blank")
    browser.goto(server.url)
    browser.wait_for(READY + f" && {ROWS} === 2")

    # The unsearched list is asked for and held on the server; a search typed meanwhile
    # is answered first. The held answer, when it comes, must not replace the search's.
    catalog = server._app.catalog
    page, held, release = catalog.page, threading.Event(), threading.Event()

    def slow_page(**kwargs: Any) -> Any:
        if not kwargs.get("query"):
            held.set()
            release.wait(60)
        return page(**kwargs)

    catalog.page = slow_page  # type: ignore[method-assign]
    try:
        browser.evaluate("route(); undefined")
        assert held.wait(30)
        browser.evaluate(
            "(() => { const s = document.getElementById('search'); s.value = 'observed';"
            " s.dispatchEvent(new Event('input')); })()"
        )
        browser.wait_for(READY + f" && {ROWS} === 1")
    finally:
        release.set()
    # The held answer arrives (its resource entry is written when its body has been read).
    browser.wait_for(
        "performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/api/sessions?q=&')).length >= 2"
    )
    browser.evaluate("new Promise(r => setTimeout(r, 300))")
    assert browser.evaluate(ROWS) == 1
    assert browser.evaluate("document.querySelector('#sessions tbody tr').dataset.id") == garden.observed
    assert browser.errors == []
