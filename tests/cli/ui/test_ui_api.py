"""``sessionware ui``'s JSON API over real SQLite stores: list, session, timeline pages,
call series, the context each call was sent, totals; read-only and local by default."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
from conftest import fetch, record_garden

import sessionware
from sessionware import ContextPolicy, SessionManager, TokenUsage
from sessionware.adapters.fakes import FakeOpenAI, Reply
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store import AppendEvents, CreateSession, open_store

STATIC = Path(__file__).resolve().parents[3] / "sessionware" / "cli" / "ui" / "static"


async def _many(url: str, n: int) -> None:
    store = open_store(url)
    for i in range(n):
        sm = SessionManager(f"s-{i:03}", store=store, metadata={"team": "blue" if i % 2 else "red"})
        await sm.user_says(f"question {i}")
        await sm.ai_responds(
            "answer",
            model="gpt-4o" if i % 3 else "gpt-4o-mini",
            usage=TokenUsage(input_tokens=100 + i, output_tokens=5, cache_read_tokens=i),
        )
    await store.aflush()


def test_the_list_is_searched_sorted_and_cut_into_pages(tmp_path, serve) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    asyncio.run(_many(url, 120))
    server = serve(url)

    # Newest first from the start, before the whole list is read (then counted).
    early = fetch(server.url + "api/sessions?limit=5").json()
    assert [r["id"] for r in early["rows"]] == ["s-119", "s-118", "s-117", "s-116", "s-115"]
    assert early["partial"] or early["total"] == 120

    by_tokens = fetch(server.url + "api/sessions?sort=tokens&desc=1&limit=3").json()["rows"]
    assert [r["id"] for r in by_tokens] == ["s-119", "s-118", "s-117"]
    first = fetch(server.url + "api/sessions?limit=50").json()
    second = fetch(server.url + "api/sessions?limit=50&offset=50").json()
    assert (first["total"], first["matched"], len(first["rows"]), len(second["rows"])) == (120, 120, 50, 50)
    assert {r["id"] for r in first["rows"]}.isdisjoint(r["id"] for r in second["rows"])
    ascending = fetch(server.url + "api/sessions?sort=id&desc=0&limit=2").json()["rows"]
    assert [r["id"] for r in ascending] == ["s-000", "s-001"]

    found = fetch(server.url + "api/sessions?q=blue+gpt-4o-mini&limit=500").json()
    assert found["matched"] == len([i for i in range(120) if i % 2 and not i % 3])
    assert all(int(r["id"][2:]) % 2 for r in found["rows"])
    row = fetch(server.url + "api/sessions?q=s-030").json()["rows"][0]
    assert row["cache_read_tokens"] == 30
    assert row["cache_read_share"] == 30 / 130
    assert Decimal(row["cache_saved_cost"]) > 0


def test_a_session_gives_its_header_a_page_of_events_and_per_call_series(garden, serve) -> None:
    server = serve(garden.url)
    base = f"{server.url}api/sessions/{garden.managed}"

    head = fetch(base).json()
    store = open_store(garden.url)
    info = store.load_info(garden.managed)
    assert head["totals"]["calls"] == info.totals.llm_calls
    assert head["events"] == info.last_seq
    assert head["managed"]["calls"] > 0
    assert head["managed"]["wire_input_tokens"] < head["managed"]["app_input_tokens"]
    assert head["cache"]["cache_read_tokens"] == info.totals.usage.cache_read_tokens > 0
    assert head["kinds"]["compaction"] > 0 and head["kinds"]["page_fault"] == 1

    page = fetch(base + "/events?offset=10&limit=7").json()
    assert [i["seq"] for i in page["items"]] == list(range(11, 18))
    faults = fetch(base + "/events?kinds=page_fault,hidden").json()
    assert {i["kind"] for i in faults["items"]} == {"page_fault", "hidden"}
    assert all(i.get("hidden") for i in faults["items"])

    series = fetch(base + "/calls").json()
    assert series["calls"] == info.totals.llm_calls == len(series["input"])
    assert sum(series["cached"]) == info.totals.usage.cache_read_tokens
    assert sum(series["hidden"]) == 1
    managed_calls = [a for a in series["app_input"] if a is not None]
    assert len(managed_calls) == head["managed"]["calls"]


def test_long_texts_are_cut_in_pages_and_whole_on_request(tmp_path, serve) -> None:
    async def record(url: str) -> None:
        sm = SessionManager("long", store=open_store(url))
        await sm.user_says("x" * 5000)
        await sm.flush()

    url = f"sqlite:///{tmp_path / 'long.db'}"
    asyncio.run(record(url))
    server = serve(url)
    item = fetch(server.url + "api/sessions/long/events").json()["items"][0]
    assert (len(item["text"]), item["clipped"]) == (2000, True)
    full = fetch(server.url + "api/sessions/long/events/1").json()
    assert (len(full["text"]), full["clipped"]) == (5000, False)


def test_an_observed_call_was_sent_its_branch_of_the_conversation(recorded, serve) -> None:
    server = serve(recorded.url)
    store = open_store(recorded.url)
    events = store.load(recorded.parent).events
    # The Anthropic answer after the app edited its history back to #2 and asked again.
    answer = next(e for e in events if e.model and e.model.startswith("claude"))

    ctx = fetch(f"{server.url}api/sessions/{recorded.parent}/context/{answer.seq}").json()

    assert ctx["managed"] is False
    # The prompt given at creation was changed later: the log cannot say which one was sent.
    assert ctx["exact"] is False
    assert "changed later" in ctx["messages"][0]["note"]
    texts = [m["text"] for m in ctx["messages"]]
    # The question and the call for the weather: the answer and the result after #2 were edited away.
    assert texts[1:3] == ["What's the weather in Paris?", '-> weather({"city": "Paris"})']
    assert "Actually, Lisbon?" in texts
    assert not any("18 °C" in t for t in texts)  # the superseded answer is not in the branch
    assert ctx["messages"][-1]["part"] == "latest"
    assert fetch(f"{server.url}api/sessions/{recorded.parent}/context/1").status == 404  # not a call
    first = fetch(f"{server.url}api/sessions/{recorded.child}/context/2").json()
    assert first["exact"] is True
    assert [m["text"] for m in first["messages"]] == ["Find a hotel\tnear the station"]


def test_a_managed_call_without_its_sent_record_is_estimated_from_the_builders_count(
    garden, tmp_path, serve
) -> None:
    """Calls recorded before ``managed.sent`` existed: the parts' sizes, the turns estimated."""
    source = open_store(garden.url).load(garden.managed)

    def older(event: SessionEvent) -> SessionEvent:
        managed = event.metadata.get("managed")
        if not isinstance(managed, dict) or "sent" not in managed:
            return event
        kept = {k: v for k, v in managed.items() if k != "sent"}
        return event.model_copy(update={"metadata": {**event.metadata, "managed": kept}})

    url = f"sqlite:///{tmp_path / 'older.db'}"
    store = open_store(url)
    header = SessionInfo(id=garden.managed, system_prompt=source.system_prompt)
    store.submit([CreateSession(header), AppendEvents(garden.managed, tuple(map(older, source.events)))])
    store.flush()
    server = serve(url)
    last = source.events[-1]
    report = last.metadata["managed"]

    ctx = fetch(f"{server.url}api/sessions/{garden.managed}/context/{last.seq}").json()

    assert ctx["managed"] is True and ctx["exact"] is False
    assert sum(ctx["parts"].values()) == report["built_tokens"]
    assert ctx["app_input_tokens"] == last.app_input_tokens
    parts = [m["part"] for m in ctx["messages"]]
    assert parts[0] == "system" and "memory" in parts and "left_out" in parts
    assert ctx["messages"][-1]["text"] == "Which locker holds the shed key?"
    assert any(m["part"] == "recalled" for m in ctx["messages"])  # the hidden search of this turn


def test_a_managed_calls_context_is_its_wire_request_rebuilt_from_its_record(tmp_path, serve) -> None:
    bodies: list[Any] = []
    more = ("Thanks. And what grows in bed 3?", "When is bed 3 watered?")
    garden = record_garden(f"sqlite:///{tmp_path / 'wire.db'}", seen=bodies, more=more)
    server = serve(garden.url)
    # Each managed call's request as it was built (not its hidden rounds' follow-ups).
    built = [
        b["messages"]
        for b in bodies
        if any(t["function"]["name"] == "search_pages" for t in b.get("tools", []))
        and b["messages"][-1]["role"] == "user"
    ]
    events = open_store(garden.url).load(garden.managed).events
    calls = [e for e in events if "sent" in e.metadata.get("managed", {})]
    assert len(calls) == len(built) == 27
    regions = 0
    for call, wire in zip(calls, built, strict=True):
        ctx = fetch(f"{server.url}api/sessions/{garden.managed}/context/{call.seq}").json()
        assert ctx["managed"] is True and ctx["exact"] is True
        assert sum(ctx["parts"].values()) == call.metadata["managed"]["built_tokens"]
        shown: list[str] = []
        recalled: list[str] = []
        for m in ctx["messages"]:
            note = m.get("note") or ""
            if m["part"] == "left_out" or note.startswith("a hidden round"):
                continue
            if note.startswith("recall region"):
                recalled.append(note.rsplit(" ", 1)[-1])
                if shown[-1:] != ["<recall region>"]:
                    shown.append("<recall region>")
                continue
            assert not m["clipped"]
            shown.append(m["text"])
        sent = [str(m.get("content") or "") for m in wire]
        region = next((t for t in sent if t.startswith("<VM:RECALL>")), None)
        if region is not None:
            regions += 1
            assert recalled and all(f" {page}: " in region for page in recalled)  # U msg_12: "..."
        assert shown == ["<recall region>" if t is region else t for t in sent]
    assert regions, "a page recalled earlier is in the recall region of a later call"


def test_totals_are_by_model_and_by_day_with_cache_figures(garden, serve) -> None:
    server = serve(garden.url)
    report = fetch(server.url + "api/totals").json()

    assert [r["key"] for r in report["by_model"]] == ["gpt-4o-mini-2024-07-18"]
    assert report["total"]["cache_read_tokens"] > 0
    assert 0 < report["total"]["cache_read_share"] < 1
    assert Decimal(report["total"]["cache_saved_cost"]) > 0


def test_nothing_but_reads_and_only_from_this_machine_by_name(garden, serve) -> None:
    server = serve(garden.url)

    assert fetch(server.url + "api/sessions", method="POST").status == 405
    assert fetch(server.url + "api/sessions/" + garden.managed, method="DELETE").status == 405
    assert fetch(server.url + "api/sessions", headers={"Host": "evil.example:80"}).status == 421
    assert fetch(server.url + "api/sessions/nope").status == 404
    assert fetch(server.url + "api/nothing").status == 404
    assert fetch(server.url + "api/sessions?limit=0").status == 400
    assert fetch(server.url + "api/sessions?sort=colour").status == 400
    page = fetch(server.url)
    assert page.status == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(
            r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text.replace("http://www.w3.org/2000/svg", "")
        )


# Ctrl-C as at a terminal: a child inherits an ignored SIGINT across exec and Python then
# installs no KeyboardInterrupt handler; in full runs the xdist worker had SIGINT ignored
# and the ui process served on in serve_until 30 s after SIGINT (faulthandler's stacks).
_MAIN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from sessionware.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _ui(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", _MAIN, "ui", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _interrupt(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, then wait for the exit; a process still running 30 s later is aborted and
    the test fails with every thread's stack (faulthandler prints them on SIGABRT)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"sessionware ui did not stop on SIGINT:\n{err}") from None


def test_listening_beyond_this_machine_needs_a_flag_and_warns(garden) -> None:
    refused = _ui("--store", garden.url, "--host", "0.0.0.0")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert "--allow-remote" in err

    allowed = _ui("--store", garden.url, "--host", "0.0.0.0", "--allow-remote")
    try:
        warning = allowed.stderr.readline()
        serving = allowed.stderr.readline()
        assert "WARNING" in warning and "anyone who can reach it" in warning
        port = re.search(r":(\d+)/", serving).group(1)
        assert len(fetch(f"http://127.0.0.1:{port}/api/sessions").json()["rows"]) == 2
    finally:
        _interrupt(allowed)
    assert allowed.returncode == 0


def test_sigterm_stops_the_ui_as_ctrl_c_does(garden) -> None:
    proc = _ui("--store", garden.url)
    try:
        serving = proc.stderr.readline()
        port = re.search(r":(\d+)/", serving).group(1)
        assert fetch(f"http://127.0.0.1:{port}/api/sessions").status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"sessionware ui did not stop on SIGTERM:\n{err}") from None
    assert proc.returncode == 0
    assert "stopped" in err


def test_a_missing_store_file_is_an_error_not_an_empty_ui(tmp_path) -> None:
    proc = _ui("--store", f"sqlite:///{tmp_path / 'none.db'}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "no such file" in err
    assert not (tmp_path / "none.db").exists()


def test_the_garden_fixture_is_reusable(tmp_path) -> None:
    store = record_garden(f"sqlite:///{tmp_path / 'again.db'}", turns=5)
    assert store.managed == "garden-managed"


def test_the_server_docstring_example_holds() -> None:
    import doctest

    from sessionware.cli.ui import server

    result = doctest.testmod(server)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_managed_call_carrying_tool_results_shows_the_recall_region_where_the_builder_put_it(
    tmp_path, serve
) -> None:
    """A call whose incoming messages answer the app's own tool call does not open a turn:
    the builder sends the region before the window's last turn (the question and the call),
    never between a call and its results; the UI shows it there."""
    url = f"sqlite:///{tmp_path / 'tools.db'}"
    bodies: list[Any] = []
    shed_log = {"type": "function", "function": {"name": "shed_log", "parameters": {"type": "object"}}}

    def model(body: Any) -> Reply:
        bodies.append(json.loads(json.dumps(body)))
        last = body["messages"][-1]
        if last["role"] == "user" and "shed key" in str(last["content"]):
            return Reply(tool_calls=[("shed_log", {})])
        return Reply(text="Noted.")

    client = sessionware.wrap(
        openai.OpenAI(api_key="offline", http_client=httpx.Client(transport=FakeOpenAI(model).transport())),
        mode="managed",
        context=ContextPolicy(budget=1200),
        store=url,
        session_id="tools",
    )
    messages: list[Any] = [{"role": "system", "content": "You help plan a community garden."}]
    for i in range(24):
        said = "The shed key hangs in locker B-317." if i == 2 else f"Week {i}: bed {i % 12} needs water."
        messages.append({"role": "user", "content": said})
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[shed_log])
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    messages.append({"role": "user", "content": "Who last used the shed key?"})
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[shed_log])
    call = reply.choices[0].message.tool_calls[0]
    messages.append(reply.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Ana, on Tuesday."})
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[shed_log])
    open_store(url).flush()

    wire = bodies[-1]["messages"]
    region = next(i for i, m in enumerate(wire) if str(m.get("content") or "").startswith("<VM:RECALL>"))
    assert [m["role"] for m in wire[region + 1 :]] == ["user", "assistant", "tool"]
    last = open_store(url).load("tools").events
    seq = next(e.seq for e in reversed(last) if "sent" in e.metadata.get("managed", {}))
    ctx = fetch(f"{serve(url).url}api/sessions/tools/context/{seq}").json()

    assert ctx["exact"] is True
    shown = [m for m in ctx["messages"] if m["part"] != "left_out"]
    first = next(i for i, m in enumerate(shown) if (m.get("note") or "").startswith("recall region"))
    assert first == region
    after = [m for m in shown[first:] if not (m.get("note") or "").startswith("recall region")]
    assert [(m["role"], m["part"]) for m in after] == [
        ("user", "recent"),
        ("assistant", "recent"),
        ("tool", "latest"),
    ]
    assert after[0]["text"] == "Who last used the shed key?"
