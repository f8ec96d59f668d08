"""The handlers of ``sessions``, ``show``, ``stats``, ``export`` and ``import``.

Each takes an ``Invocation`` and returns an exit code; errors are raised as
``sessionware`` errors and turned into messages and codes by ``app``. Everything is
read through the public ``Store`` API (``list_sessions``, ``load``,
``load_events``), never with SQL, so every backend works.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

from sessionware.cli import timeline, totals
from sessionware.cli.app import Invocation, report_error
from sessionware.cli.cache import events_cache, format_saved, format_share, session_cache
from sessionware.cli.export import ExportFormat, dump_export, import_session, parse_export, read_export
from sessionware.cli.parser import ExitCode
from sessionware.cli.render import (
    Column,
    OutputFormat,
    format_cost,
    format_count,
    format_time,
    iso_utc,
    plain_cost,
    plain_decimal,
    render_plain,
    render_table,
)
from sessionware.core.accounting.caching import CacheFigures
from sessionware.core.defaults import default_price_book
from sessionware.core.errors import (
    InvalidSessionOperation,
    SessionAlreadyExists,
    SessionwareError,
    StorageError,
)
from sessionware.core.session.enums import Role
from sessionware.core.session.models import SessionEvent, SessionInfo
from sessionware.core.session.stats import known_cost
from sessionware.core.store.store import Store

__all__ = ["export", "import_", "sessions", "show", "stats"]

T = TypeVar("T")


def _read(store: Store, fn: Callable[[], T]) -> T:
    """Run a read; stored data that no longer parses becomes a ``StorageError``."""
    try:
        return fn()
    except SessionwareError:
        raise
    except ValueError as exc:  # pydantic ValidationError and JSONDecodeError are ValueErrors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError("read", store.kind, store.location, f"stored data is corrupt: {first}") from exc


# -- sessions ------------------------------------------------------------------------

_SESSION_COLUMNS = [
    Column("id"),
    Column("started (UTC)"),
    Column("turns", numeric=True),
    Column("tokens in", numeric=True),
    Column("tokens out", numeric=True),
    Column("cost", numeric=True),
    Column("cached", numeric=True),
    Column("saved", numeric=True),
    Column("model"),
    Column("parent"),
]
_SESSION_PLAIN_COLUMNS = [
    Column("id"),
    Column("started"),
    Column("turns"),
    Column("tokens_in"),
    Column("tokens_out"),
    Column("cost"),
    Column("model"),
    Column("parent"),
    Column("calls"),
    Column("unpriced_calls"),
    Column("cache_read_tokens"),
    Column("cache_read_share"),
    Column("cache_saved"),
]


def _models(info: SessionInfo) -> list[str]:
    return [m for m, _ in sorted(info.totals.models.items(), key=lambda kv: (-kv[1], kv[0]))]


def _session_cells(info: SessionInfo, cache: CacheFigures) -> list[str]:
    t = info.totals
    models = _models(info)
    model = models[0] + (f" +{len(models) - 1}" if len(models) > 1 else "") if models else ""
    return [
        info.id,
        format_time(info.created_at),
        format_count(t.messages_by_role.get(Role.USER, 0)),
        format_count(t.usage.input_tokens),
        format_count(t.usage.output_tokens),
        format_cost(known_cost(t.cost, t.unpriced_calls), unpriced_calls=t.unpriced_calls),
        format_share(cache),
        format_saved(cache),
        model,
        info.parent_id or "",
    ]


def _session_plain(info: SessionInfo, cache: CacheFigures) -> list[str]:
    t = info.totals
    return [
        info.id,
        iso_utc(info.created_at),
        str(t.messages_by_role.get(Role.USER, 0)),
        str(t.usage.input_tokens),
        str(t.usage.output_tokens),
        plain_cost(known_cost(t.cost, t.unpriced_calls)),
        ",".join(_models(info)),
        info.parent_id or "",
        str(t.llm_calls),
        str(t.unpriced_calls),
        str(cache.cache_read_tokens),
        f"{cache.read_share:.4f}",
        "" if cache.saved_cost is None else plain_decimal(cache.saved_cost),
    ]


def sessions(inv: Invocation) -> int:
    """``sessionware sessions``: the store's sessions, newest first."""
    store = inv.open_store()
    infos = _read(store, lambda: store.list_sessions(parent_id=inv.args.parent, limit=inv.args.limit))
    prices = default_price_book()
    caches = [_read(store, partial(session_cache, info, prices, partial(_events, store))) for info in infos]
    fmt = inv.output_format
    if fmt is OutputFormat.JSON:
        inv.write_json(
            [
                info.model_dump(mode="json") | {"cache": cache.model_dump(mode="json")}
                for info, cache in zip(infos, caches, strict=True)
            ]
        )
    elif fmt is OutputFormat.PLAIN:
        rows = [_session_plain(i, c) for i, c in zip(infos, caches, strict=True)]
        inv.write(render_plain(_SESSION_PLAIN_COLUMNS, rows, header=inv.header))
    elif infos:
        rows = [_session_cells(i, c) for i, c in zip(infos, caches, strict=True)]
        inv.write(render_table(_SESSION_COLUMNS, rows))
    else:
        inv.note(f"no sessions in {store.location}")
    return int(ExitCode.OK)


# -- show ----------------------------------------------------------------------------


def show(inv: Invocation) -> int:
    """``sessionware show ID``: one session as a timeline."""
    store = inv.open_store()
    session = _read(store, lambda: store.load(inv.args.session_id))
    cache = events_cache(session.events, default_price_book())
    fmt = inv.output_format
    if fmt is OutputFormat.JSON:
        inv.write_json(session.model_dump(mode="json") | {"cache": cache.model_dump(mode="json")})
    elif fmt is OutputFormat.PLAIN:
        inv.write(render_plain(timeline.PLAIN_COLUMNS, timeline.plain_rows(session), header=inv.header))
    else:
        inv.write(
            timeline.render_timeline(
                session,
                location=f"{store.kind}: {store.location}",
                width=inv.terminal_width(),
                max_chars=inv.args.max_chars,
                cache=cache,
            )
        )
    return int(ExitCode.OK)


# -- stats ---------------------------------------------------------------------------


def _events(store: Store, session_id: str) -> list[SessionEvent]:
    return store.load_events(session_id)


def _all_events(store: Store, infos: list[SessionInfo]) -> Iterator[tuple[str, list[SessionEvent]]]:
    for info in infos:
        yield info.id, _read(store, partial(store.load_events, info.id))


def stats(inv: Invocation) -> int:
    """``sessionware stats``: usage and cost by model and by day."""
    store = inv.open_store()
    infos = _read(store, store.list_sessions)
    report = totals.build_report(
        _all_events(store, infos),
        store=store.location,
        since=inv.args.since,
        until=inv.args.until,
        prices=default_price_book(),
    )
    fmt = inv.output_format
    if fmt is OutputFormat.JSON:
        inv.write_json(report.model_dump(mode="json"))
    elif fmt is OutputFormat.PLAIN:
        inv.write(render_plain(totals.PLAIN_COLUMNS, totals.plain_rows(report), header=inv.header))
    elif report.total.calls == 0 and report.total.errors == 0:
        inv.note(f"no recorded calls in {store.location}")
    else:
        by_model = render_table(
            totals.table_columns("model"), totals.table_rows([*report.by_model, report.total])
        )
        by_day = render_table(
            totals.table_columns("day (UTC)"), totals.table_rows([*report.by_day, report.total])
        )
        inv.write(f"{by_model}\n\n{by_day}")
    return int(ExitCode.OK)


# -- export / import -----------------------------------------------------------------


def _write_file(path: Path, chunks: Iterator[str]) -> None:
    # Written beside the target and renamed, so a failure never leaves half an export.
    # A conversation is private: a new file is its owner's alone (0600, whatever the
    # umask); a file replaced keeps the mode it had.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = stat.S_IRUSR | stat.S_IWUSR
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with open(fd, "w", encoding="utf-8", newline="\n") as handle:
            os.chmod(fd, mode)
            handle.writelines(chunks)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export(inv: Invocation) -> int:
    """``sessionware export ID``: the session in a lossless, re-importable file."""
    store = inv.open_store()
    data = _read(store, lambda: read_export(store, inv.args.session_id))
    chunks = dump_export(data, ExportFormat(inv.args.export_format))
    if inv.args.output in (None, "-"):
        inv.stdout.writelines(chunks)
        inv.stdout.flush()
    else:
        target = Path(inv.args.output)
        _write_file(target, chunks)
        inv.note(f"exported {data.info.id!r}: {len(data.events)} events, {len(data.pages)} pages to {target}")
    return int(ExitCode.OK)


def _read_input(name: str) -> str:
    try:
        if name == "-":
            return sys.stdin.read()
        return Path(name).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSessionOperation("import", f"{name}: not UTF-8 text ({exc.reason})") from exc


def import_(inv: Invocation) -> int:
    """``sessionware import FILE``: store the session of an export file."""
    data = parse_export(_read_input(inv.args.file))
    store = inv.open_store(must_exist=False)
    try:
        info = import_session(store, data, new_id=inv.args.new_id)
    except SessionAlreadyExists as exc:
        code = report_error(inv, str(exc), ExitCode.ERROR)
        inv.note("pass --as NEW_ID to import it under another id")
        return code
    if info.parent_id and not store.exists(info.parent_id):
        inv.note(f"its parent {info.parent_id!r} is not in this store")
    if store.kind == "memory":
        inv.note("memory:// keeps nothing after this command exits")
    counts = f"{info.last_seq} events, {len(data.pages)} pages"
    inv.write(f"imported session {info.id!r} ({counts}) into {store.location}")
    return int(ExitCode.OK)
