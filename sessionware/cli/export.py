"""Lossless export and re-import of one session: its header, every event, its pages.

Formats (UTF-8; version 1)
--------------------------

``jsonl``: one JSON object per line, in this order::

    {"kind": "session", "export_version": 1, "id": ..., "parent_id": ..., "metadata": ...,
     "system_prompt": ..., "created_at": ..., "updated_at": ..., "runs": [...],
     "totals": {...}, "last_seq": N}
    {"kind": "event", "id": ..., "session_id": ..., "seq": 1, "timestamp": ..., "type": ..., ...}
    ...                                   one line per event, seq 1..N in order
    {"kind": "page", "page_id": ..., "body": "<the page's JSON document, as a string>"}
    ...                                   one line per memory page, sorted by page id

The ``session`` line is a ``SessionInfo`` and each ``event`` line a ``SessionEvent``,
both as pydantic dumps them in JSON mode (timestamps ISO 8601 with offset, costs as
decimal strings), with the ``kind`` key added. Pages are kept as the exact text stored.

``json``: the same content as one document::

    {"kind": "session_export", "export_version": 1,
     "session": {...SessionInfo...}, "events": [{...SessionEvent...}, ...],
     "pages": {"page id": "<page JSON text>", ...}}

Import accepts either (detected from the content), checks the whole file before
writing anything (event ``seq`` 1..N without gaps, every event of the header's
session, ``last_seq`` equal to the number of events so a truncated file is refused),
then writes the session in one batch: ``CreateSession``, ``AppendEvents``, a
``SaveHeader`` that restores ``updated_at``, and ``PutPages``. Totals are re-derived by
the store from the events, so they match the exported ones.

>>> from sessionware.core.session.enums import EventSource, EventType, Role
>>> from sessionware.core.session.registry import registry_for
>>> from sessionware.core.store import open_store
>>> store = open_store("memory://")
>>> state = registry_for(store).open("demo")
>>> _ = state.record(EventType.MESSAGE, EventSource.USER, role=Role.USER, content="hi")
>>> text = "".join(dump_export(read_export(store, "demo"), ExportFormat.JSONL))
>>> import_session(store, parse_export(text), new_id="copy").last_seq
1
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from sessionware.core.errors import InvalidSessionOperation, SessionAlreadyExists, StorageError
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.store.base import AppendEvents, CreateSession, PutPages, SaveHeader, WriteOp
from sessionware.core.store.store import Store

__all__ = [
    "EXPORT_VERSION",
    "ExportFormat",
    "SessionExport",
    "dump_export",
    "import_session",
    "parse_export",
    "read_export",
]

EXPORT_VERSION = 1
_OPERATION = "import"


class ExportFormat(StrEnum):
    """File formats of ``sessionware export``."""

    JSONL = "jsonl"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class SessionExport:
    """One session as exported: header, events in ``seq`` order, pages by id."""

    info: SessionInfo
    events: tuple[SessionEvent, ...]
    pages: Mapping[str, str] = field(default_factory=dict)


def _invalid(reason: str) -> InvalidSessionOperation:
    return InvalidSessionOperation(_OPERATION, reason)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


# -- export ------------------------------------------------------------------------


def read_export(store: Store, session_id: str) -> SessionExport:
    """Everything the store holds about ``session_id``; ``SessionNotFound`` if nothing."""
    session = store.load(session_id)
    pages = store.load_pages(session_id)
    info = SessionInfo.model_validate(session.model_dump(exclude={"children", "events"}))
    return SessionExport(info=info, events=tuple(session.events), pages=dict(sorted(pages.items())))


def _header(info: SessionInfo) -> dict[str, Any]:
    return info.model_dump(mode="json")


def _event(event: SessionEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def dump_export(export: SessionExport, fmt: ExportFormat) -> Iterator[str]:
    """The export as text chunks (lines for ``jsonl``), each ending with a newline."""
    if fmt is ExportFormat.JSON:
        document = {
            "kind": "session_export",
            "export_version": EXPORT_VERSION,
            "session": _header(export.info),
            "events": [_event(e) for e in export.events],
            "pages": dict(export.pages),
        }
        yield json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        return

    def line(obj: dict[str, Any]) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"

    yield line({"kind": "session", "export_version": EXPORT_VERSION, **_header(export.info)})
    for event in export.events:
        yield line({"kind": "event", **_event(event)})
    for page_id, body in export.pages.items():
        yield line({"kind": "page", "page_id": page_id, "body": body})


# -- import ------------------------------------------------------------------------


def parse_export(text: str) -> SessionExport:
    """Read an export in either format; ``InvalidSessionOperation`` says what is wrong."""
    stripped = text.strip()
    if not stripped:
        raise _invalid("the file is empty")
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        document = None  # several lines: jsonl
    if isinstance(document, dict) and document.get("kind") == "session_export":
        return _from_document(document)
    return _from_lines(stripped.splitlines())


def _check_version(obj: Mapping[str, Any], where: str) -> None:
    version = obj.get("export_version")
    if version != EXPORT_VERSION:
        raise _invalid(f"{where}: export_version {version!r} is not supported (expected {EXPORT_VERSION})")


def _info_from(obj: Mapping[str, Any], where: str) -> SessionInfo:
    fields = {k: v for k, v in obj.items() if k not in ("kind", "export_version")}
    try:
        return SessionInfo.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(f"{where}: not a valid session header: {_first_error(exc)}") from exc


def _event_from(obj: Any, where: str) -> SessionEvent:
    if not isinstance(obj, dict):
        raise _invalid(f"{where}: an event must be a JSON object")
    fields = {k: v for k, v in obj.items() if k != "kind"}
    try:
        return SessionEvent.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(f"{where}: not a valid event: {_first_error(exc)}") from exc


def _from_document(document: Mapping[str, Any]) -> SessionExport:
    _check_version(document, "document")
    header = document.get("session")
    events = document.get("events", [])
    pages = document.get("pages", {})
    if not isinstance(header, dict):
        raise _invalid("document: 'session' must be a JSON object")
    if not isinstance(events, list):
        raise _invalid("document: 'events' must be a list")
    if not isinstance(pages, dict) or not all(isinstance(v, str) for v in pages.values()):
        raise _invalid("document: 'pages' must map page ids to JSON text")
    info = _info_from(header, "session")
    parsed = tuple(_event_from(obj, f"events[{i}]") for i, obj in enumerate(events))
    return _checked(SessionExport(info=info, events=parsed, pages=dict(pages)))


def _from_lines(lines: list[str]) -> SessionExport:
    info: SessionInfo | None = None
    events: list[SessionEvent] = []
    pages: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        where = f"line {number}"
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _invalid(f"{where}: not valid JSON ({exc.msg})") from exc
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if info is None:
            if kind != "session":
                raise _invalid(f"{where}: the first line must be the session header (kind 'session')")
            _check_version(obj, where)
            info = _info_from(obj, where)
        elif kind == "event":
            events.append(_event_from(obj, where))
        elif kind == "page":
            page_id, body = obj.get("page_id"), obj.get("body")
            if not isinstance(page_id, str) or not isinstance(body, str):
                raise _invalid(f"{where}: a page needs a string 'page_id' and 'body'")
            pages[page_id] = body
        else:
            raise _invalid(f"{where}: unknown kind {kind!r} (expected 'event' or 'page')")
    assert info is not None  # the text was not blank, so a first line was read
    return _checked(SessionExport(info=info, events=tuple(events), pages=pages))


def _checked(export: SessionExport) -> SessionExport:
    sid = export.info.id
    for index, event in enumerate(export.events, start=1):
        if event.session_id != sid:
            raise _invalid(f"event seq {event.seq} belongs to session {event.session_id!r}, not {sid!r}")
        if event.seq != index:
            raise _invalid(f"events must have seq 1..N in order; found seq {event.seq} at position {index}")
    if export.info.last_seq != len(export.events):
        raise _invalid(
            f"the header says {export.info.last_seq} events but the file has {len(export.events)}"
            " (truncated or edited export?)"
        )
    return export


def import_session(store: Store, export: SessionExport, *, new_id: str | None = None) -> SessionInfo:
    """Write ``export`` into ``store`` (under ``new_id`` if given) and return its header.

    ``SessionAlreadyExists`` if the id is taken; nothing is written then.
    """
    sid = new_id or export.info.id
    info = export.info.model_copy(update={"id": sid}, deep=True)
    events = export.events
    if sid != export.info.id:
        events = tuple(e.model_copy(update={"session_id": sid}) for e in events)
    if store.exists(sid):
        raise SessionAlreadyExists(sid, store=store.location)
    ops: list[WriteOp] = [CreateSession(info)]
    if events:
        ops.append(AppendEvents(sid, events))
    # Appending moved updated_at to the last event; the header restores the exported one.
    ops.append(SaveHeader(info))
    if export.pages:
        ops.append(PutPages(sid, dict(export.pages)))
    # Written through the store's queue as one call rather than ``submit``: the batch is
    # one transaction, and a failure reaches this caller instead of the writer's log.
    store.call(store.backend.write, ops)
    store.flush()
    written = store.load_info(sid)
    if written.last_seq != len(events):
        raise StorageError(
            _OPERATION, store.kind, store.location, f"wrote {written.last_seq} of {len(events)} events"
        )
    return written
