"""``sessionware export`` and ``import``: lossless, re-importable, refusing bad input."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sessionware.core.store import open_store


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def _without_id(records: list[dict]) -> list[dict]:
    """Records with the session id blanked where an export carries it."""
    out = []
    for original in records:
        record = dict(original)
        if record.get("kind") == "session":
            record["id"] = "*"
        if record.get("kind") == "event":
            record["session_id"] = "*"
        out.append(record)
    return out


def test_jsonl_is_a_header_then_every_event_as_stored_then_pages(recorded, cli) -> None:
    result = cli("export", recorded.parent, "--store", recorded.url)

    assert result.code == 0, result.err
    header, *rest = _lines(result.out)
    store = open_store(recorded.url)
    stored = store.load(recorded.parent)
    store.close()
    assert header["kind"] == "session" and header["export_version"] == 1
    assert header["id"] == recorded.parent and header["last_seq"] == 13
    assert header["runs"][0]["metadata"] == {"task": "plan"}
    events = [r for r in rest if r["kind"] == "event"]
    assert [{k: v for k, v in e.items() if k != "kind"} for e in events] == [
        json.loads(e.model_dump_json()) for e in stored.events
    ]
    pages = [r for r in rest if r["kind"] == "page"]
    assert pages == [
        {"kind": "page", "page_id": "p0", "body": '{"text": "hello"}'},
        {"kind": "page", "page_id": "p1", "body": '{"text": "Paris was 18 °C"}'},
    ]
    assert rest[-2:] == pages  # pages come after every event


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_export_import_as_new_id_export_again_is_identical_apart_from_the_id(
    recorded, cli, tmp_path: Path, fmt: str
) -> None:
    first = tmp_path / f"first.{fmt}"
    assert (
        cli("export", recorded.parent, "--store", recorded.url, "--format", fmt, "-o", str(first)).code == 0
    )

    imported = cli("import", str(first), "--as", "copy", "--store", recorded.url)
    assert imported.code == 0, imported.err
    assert imported.out.strip() == f"imported session 'copy' (13 events, 2 pages) into {recorded.path}"
    second = cli("export", "copy", "--store", recorded.url, "--format", fmt)

    if fmt == "jsonl":
        assert _without_id(_lines(second.out)) == _without_id(_lines(first.read_text(encoding="utf-8")))
    else:
        a, b = json.loads(first.read_text(encoding="utf-8")), json.loads(second.out)
        assert a["session"].pop("id") == recorded.parent and b["session"].pop("id") == "copy"
        assert {e.pop("session_id") for e in a["events"]} == {recorded.parent}
        assert {e.pop("session_id") for e in b["events"]} == {"copy"}
        assert a == b


@pytest.mark.slow
def test_import_restores_header_totals_events_and_pages_in_another_store(
    recorded, run_cli, tmp_path: Path
) -> None:
    exported = run_cli("export", recorded.parent, "--store", recorded.url)
    target = f"sqlite:///{tmp_path / 'fresh' / 'target.db'}"

    result = run_cli("import", "-", "--store", target, input=exported.stdout)

    assert result.returncode == 0, result.stderr
    source, dest = open_store(recorded.url), open_store(target)
    original, copy = source.load(recorded.parent), dest.load(recorded.parent)
    pages = dest.load_pages(recorded.parent)
    source.close()
    dest.close()
    assert copy.model_dump(exclude={"children"}) == original.model_dump(exclude={"children"})
    assert pages == {"p0": '{"text": "hello"}', "p1": '{"text": "Paris was 18 °C"}'}


def test_importing_a_child_keeps_its_parent_and_says_when_the_parent_is_absent(
    recorded, cli, tmp_path: Path
) -> None:
    path = tmp_path / "child.jsonl"
    cli("export", recorded.child, "--store", recorded.url, "-o", str(path))

    result = cli("import", str(path), "--store", f"sqlite:///{tmp_path / 'other.db'}")

    assert result.code == 0
    assert f"its parent {recorded.parent!r} is not in this store" in result.err
    store = open_store(tmp_path / "other.db")
    assert store.load(recorded.child).parent_id == recorded.parent
    store.close()


def test_an_existing_id_is_refused_with_exit_1_and_nothing_changes(recorded, cli, tmp_path: Path) -> None:
    path = tmp_path / "again.jsonl"
    cli("export", recorded.parent, "--store", recorded.url, "-o", str(path))

    same_id = cli("import", str(path), "--store", recorded.url)
    taken_new_id = cli("import", str(path), "--store", recorded.url, "--as", recorded.child)

    assert same_id.code == 1 and taken_new_id.code == 1
    assert f"session already exists: {recorded.parent!r}" in same_id.err
    assert "--as NEW_ID" in same_id.err
    assert f"session already exists: {recorded.child!r}" in taken_new_id.err
    store = open_store(recorded.url)
    infos = {i.id: i for i in store.list_sessions()}
    store.close()
    assert set(infos) == {recorded.parent, recorded.child}
    assert (infos[recorded.parent].last_seq, infos[recorded.child].last_seq) == (13, 2)


def _valid_lines(recorded, cli) -> list[str]:
    return cli("export", recorded.parent, "--store", recorded.url).out.splitlines()


def _gap(lines: list[str]) -> list[str]:
    return [lines[0], *lines[2:]]


def _foreign_event(lines: list[str]) -> list[str]:
    event = json.loads(lines[1])
    event["session_id"] = "someone-else"
    return [lines[0], json.dumps(event), *lines[2:]]


def _bad_version(lines: list[str]) -> list[str]:
    header = json.loads(lines[0])
    header["export_version"] = 99
    return [json.dumps(header), *lines[1:]]


def _bad_event_field(lines: list[str]) -> list[str]:
    event = json.loads(lines[1])
    event["type"] = "teleport"
    return [lines[0], json.dumps(event), *lines[2:]]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [*lines[:3], "{not json", *lines[3:]], "line 4: not valid JSON"),
        (lambda lines: lines[1:], "line 1: the first line must be the session header"),
        (_gap, "events must have seq 1..N in order; found seq 2 at position 1"),
        (_foreign_event, "belongs to session 'someone-else'"),
        (
            lambda lines: [line for line in lines if '"seq":13' not in line],
            "header says 13 events but the file has 12",
        ),
        (_bad_version, "export_version 99 is not supported"),
        (_bad_event_field, "line 2: not a valid event: type"),
        (lambda lines: [*lines, '{"kind": "photo"}'], "unknown kind 'photo'"),
        (
            lambda lines: [*lines, '{"kind": "page", "page_id": 1}'],
            "a page needs a string 'page_id' and 'body'",
        ),
        (lambda lines: ["", "  "], "the file is empty"),
    ],
)
def test_a_bad_import_file_is_refused_before_anything_is_written(
    recorded, cli, tmp_path: Path, edit, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(edit(_valid_lines(recorded, cli))) + "\n", encoding="utf-8")
    target = tmp_path / "never.db"

    result = cli("import", str(path), "--as", "new", "--store", f"sqlite:///{target}")

    assert result.code == 1
    assert message in result.err
    assert result.err.startswith("sessionware: error: invalid operation 'import'")
    assert not target.exists()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"kind": "session_export", "export_version": 1, "session": [], "events": []}, "'session' must be"),
        (
            {"kind": "session_export", "export_version": 1, "session": {"id": "x"}, "events": {}},
            "'events' must be",
        ),
        (
            {
                "kind": "session_export",
                "export_version": 1,
                "session": {"id": "x"},
                "events": [],
                "pages": {"p": 1},
            },
            "'pages' must map",
        ),
        ({"kind": "session_export", "export_version": 1, "session": {"id": "x"}, "events": [3]}, "events[0]"),
        ({"kind": "session_export", "export_version": 1, "session": {"id": 5}}, "not a valid session header"),
    ],
)
def test_a_bad_json_document_is_refused(tmp_path: Path, cli, document: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    result = cli("import", str(path), "--store", f"sqlite:///{tmp_path / 'never.db'}")

    assert (result.code, message in result.err) == (1, True), result.err
    assert not (tmp_path / "never.db").exists()


def test_an_unreadable_import_file_exits_1(tmp_path: Path, cli) -> None:
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")

    missing = cli("import", str(tmp_path / "missing.jsonl"), "--store", f"sqlite:///{tmp_path / 'x.db'}")
    not_text = cli("import", str(binary), "--store", f"sqlite:///{tmp_path / 'x.db'}")

    assert missing.code == 1 and "missing.jsonl: No such file or directory" in missing.err
    assert not_text.code == 1 and "not UTF-8 text" in not_text.err


def test_export_to_a_file_matches_standard_output(recorded, cli, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    to_file = cli("export", recorded.parent, "--store", recorded.url, "--output", str(path))
    to_stdout = cli("export", recorded.parent, "--store", recorded.url)

    assert to_file.code == 0 and to_file.out == ""
    assert f"exported {recorded.parent!r}: 13 events, 2 pages to {path}" in to_file.err
    assert path.read_text(encoding="utf-8") == to_stdout.out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left over


def test_an_export_file_is_private_and_a_replaced_one_keeps_its_mode(recorded, cli, tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask: new files world-readable unless asked otherwise
    try:
        new = tmp_path / "new.jsonl"
        assert cli("export", recorded.parent, "--store", recorded.url, "-o", str(new)).code == 0
        shared = tmp_path / "shared.jsonl"
        shared.write_text("old")
        os.chmod(shared, 0o640)
        assert cli("export", recorded.parent, "--store", recorded.url, "-o", str(shared)).code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640 and shared.read_text() == new.read_text()


def test_export_errors_exit_with_their_codes(recorded, cli, tmp_path: Path) -> None:
    unknown = cli("export", "nope", "--store", recorded.url)
    no_dir = cli(
        "export", recorded.parent, "--store", recorded.url, "-o", str(tmp_path / "no" / "such.jsonl")
    )

    assert unknown.code == 3 and "session not found: 'nope'" in unknown.err
    assert no_dir.code == 1 and "No such file or directory" in no_dir.err


def test_importing_into_memory_works_and_warns_that_nothing_is_kept(recorded, cli, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    cli("export", recorded.parent, "--store", recorded.url, "-o", str(path))

    result = cli("import", str(path), "--store", "memory://")

    assert result.code == 0
    assert "imported session 'trip-planner' (13 events, 2 pages) into memory://" in result.out
    assert "memory:// keeps nothing after this command exits" in result.err


def test_a_session_without_events_round_trips_and_shows_as_empty(tmp_path: Path, cli) -> None:
    from sessionware.core.session.registry import registry_for

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = open_store(url)
    registry_for(store).open("blank", metadata={"note": "nothing yet"})
    store.close()
    path = tmp_path / "blank.json"

    exported = cli("export", "blank", "--store", url, "--format", "json", "-o", str(path))
    imported = cli("import", str(path), "--as", "blank-2", "--store", url)
    shown = cli("show", "blank-2", "--store", url, "--format", "table")

    assert (exported.code, imported.code, shown.code) == (0, 0, 0)
    assert "(0 events, 0 pages)" in imported.out
    assert shown.out.rstrip().endswith("(no events)")
    assert 'metadata  {"note": "nothing yet"}' in shown.out
