"""PostgreSQL storage: sessions shared by every process and host that reaches the server.

``postgresql://user[:password]@host[:port]/database`` (or ``postgres://``), with any libpq
parameter in the query string, plus ``schema=`` for the PostgreSQL schema that holds the
tables (default ``sessionware``). Requires the ``postgres`` extra (psycopg 3 and its pool).

How it keeps the store contract (``sessionware.core.store.base``):

* **Ordering at commit.** A write batch is one transaction. An append locks its session's
  row (``SELECT ... FOR UPDATE``), so appenders to one session queue on that row while
  other sessions go on in parallel; inside the lock the new events get the next ``seq``
  values and the session's totals are folded and rewritten.
* **Idempotent appends.** Event ids are unique per session (a unique index); ids already
  stored are looked up under the same lock and skipped, so a replayed batch neither
  duplicates nor fails.
* **Outages.** A connection that cannot be made or is lost raises a retryable
  ``StorageError``; the ``Store`` keeps the batch and retries it. The pool replaces broken
  connections, and checks a pooled connection before handing it out.
* **Typed errors.** psycopg's and the pool's exceptions never escape: they become
  ``StorageError`` (or ``SessionNotFound`` / ``SessionAlreadyExists``), with the URL
  (its password removed).

The calls are blocking, like every backend's: the ``Store`` runs them on its writer
thread, and the connection pool lets reads from other threads (``last_seq``) proceed
beside it. Migrations are versioned (``postgres_schema``) and run when the store first
connects.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sessionware.core.errors import (
    InvalidSessionOperation,
    SessionAlreadyExists,
    SessionNotFound,
    StorageError,
)
from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    RepairedEvent,
    SaveHeader,
    SessionVersion,
    WriteOp,
    WriteReceipt,
    coalesce_appends,
    event_body,
    header_json,
    parse_events,
    storable_bodies,
)
from sessionware.core.store.locks import poll
from sessionware.core.store.postgres_schema import NewerSchema, migrate

__all__ = ["PostgresBackend"]

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SILENT = logging.NullHandler()
_INFO_COLUMNS = "id, parent_id, created_at, updated_at, last_seq, header, totals"


_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"


def _insert_events(schema: str) -> str:
    # One statement per batch: the server numbers each event after the session's last seq
    # and splices that seq into its body. The bodies stay text end to end (PostgreSQL's
    # JSON functions refuse the \u0000 escape that a NUL in a message becomes).
    return (
        f"INSERT INTO {schema}.events (session_id, seq, event_id, type, ts, body)"
        " SELECT %(sid)s, %(last)s + e.ord, e.event_id, e.type, e.ts,"
        " '{\"seq\":' || (%(last)s + e.ord) || ',' || substr(e.body, 2)"
        " FROM unnest(%(ids)s::text[], %(types)s::text[], %(ts)s::timestamptz[], %(bodies)s::text[])"
        " WITH ORDINALITY AS e(event_id, type, ts, body, ord)"
    )


def _bodies(events: Sequence[SessionEvent]) -> tuple[Sequence[SessionEvent], list[str], list[RepairedEvent]]:
    """Each event's stored JSON (without ``seq``), unencodable text repaired first."""
    try:
        return events, [event_body(e, exclude_seq=True) for e in events], []
    except ValueError:  # text UTF-8 cannot encode: repair (and note) it, as every backend does
        stored, _, repaired = storable_bodies(events, exclude_seq=True)
        return stored, [event_body(e, exclude_seq=True) for e in stored], repaired


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse_url(url: str) -> tuple[str, str]:
    """``(libpq conninfo URL, schema)`` from a store URL; ``InvalidSessionOperation`` if malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidSessionOperation("open_store", f"not a PostgreSQL URL: {_redact(url)!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidSessionOperation("open_store", f"bad port in PostgreSQL URL {_redact(url)!r}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "sessionware"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _IDENTIFIER.fullmatch(schema):
        raise InvalidSessionOperation(
            "open_store",
            f"schema must be a lower-case SQL identifier (letters, digits, _),"
            f" got {schema!r} in {_redact(url)!r}",
        )
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


class PostgresBackend:
    """Sessions in PostgreSQL. ``url``: see the module docstring; ``pool_size``: most
    connections this process opens; ``connect_timeout``: seconds to wait for one."""

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: float = 5.0) -> None:
        self.conninfo, self.schema = parse_url(url)
        self.url = _redact(url)
        try:
            import psycopg
            import psycopg_pool
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise StorageError(
                "open", "postgresql", self.url, "psycopg is missing: pip install 'sessionware[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self._pool_errors: tuple[type[Exception], ...] = (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)
        self._errors: tuple[type[Exception], ...] = (psycopg.Error, *self._pool_errors)
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._pool: Any = None
        self._open_lock = threading.Lock()
        self._insert = _insert_events(self.schema)

    @property
    def kind(self) -> str:
        return "postgresql"

    @property
    def location(self) -> str:
        return self.url

    @property
    def blocking(self) -> bool:
        return True

    # -- connections ----------------------------------------------------------------

    def _error(self, operation: str, exc: BaseException) -> StorageError:
        retryable = isinstance(exc, (self._psycopg.OperationalError, *self._pool_errors))
        return StorageError(
            operation, self.kind, self.url, f"{type(exc).__name__}: {exc}".strip(), retryable=retryable
        )

    def _open_pool(self) -> Any:
        with self._open_lock:
            if self._pool is not None:
                return self._pool
            import psycopg_pool

            # The pool logs each failed reconnection as a warning: without a logging set-up
            # the app's stderr would get one per attempt during an outage. Handlers the app
            # configures still receive them (the records propagate).
            logging.getLogger("psycopg.pool").addHandler(_SILENT)
            pool = psycopg_pool.ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.pool_size,
                open=False,
                timeout=self.connect_timeout,
                check=psycopg_pool.ConnectionPool.check_connection,
                kwargs={"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout))},
                name="sessionware",
            )
            try:
                pool.open(wait=True, timeout=self.connect_timeout)
                with pool.connection() as conn:
                    migrate(conn, self.schema)
            except NewerSchema as exc:
                pool.close()
                raise StorageError("open", self.kind, self.url, str(exc)) from None
            except self._errors as exc:
                pool.close()
                raise self._error("open", exc) from exc
            self._pool = pool
            return pool

    @contextmanager
    def _conn(self, operation: str, *, write: bool = False) -> Iterator[Any]:
        pool = self._pool if self._pool is not None else self._open_pool()
        try:
            with pool.connection() as conn:
                if write:
                    with conn.transaction():
                        yield conn
                else:
                    yield conn
        except self._psycopg.errors.UniqueViolation as exc:
            raise self._error(operation, exc) from exc
        except self._errors as exc:
            raise self._error(operation, exc) from exc

    # -- session locks (see ``core.store.locks``) ------------------------------------

    @contextmanager
    def lock_session(self, session_id: str, timeout: float) -> Iterator[bool]:
        """A session-level advisory lock on a pooled connection kept for the block (the
        server drops it with the connection if this process dies)."""
        key = f"{self.schema}:{session_id}"
        try:
            with self._conn("lock") as conn:

                def attempt() -> bool:
                    row = conn.execute(_TRY_LOCK, (key,)).fetchone()
                    return bool(row and row[0])

                held = poll(attempt, timeout)
                try:
                    yield held
                finally:
                    if held:
                        conn.execute(_UNLOCK, (key,))
        except UnicodeError as exc:
            raise self._error("lock", exc) from exc

    # -- writes ---------------------------------------------------------------------

    def write(self, ops: Sequence[WriteOp]) -> WriteReceipt:
        receipt = WriteReceipt()
        with self._conn("write", write=True) as conn:
            for op in coalesce_appends(ops):
                if isinstance(op, CreateSession):
                    self._create(conn, op, receipt)
                elif isinstance(op, SaveHeader):
                    self._save_header(conn, op.info, receipt)
                elif isinstance(op, AppendEvents):
                    self._append(conn, op.session_id, op.events, receipt)
                elif isinstance(op, PutPages):
                    self._lock_session(conn, op.session_id)
                    if op.pages:
                        with conn.cursor() as cur:
                            cur.executemany(
                                f"INSERT INTO {self.schema}.pages (session_id, page_id, body)"
                                " VALUES (%s, %s, %s)"
                                " ON CONFLICT (session_id, page_id) DO UPDATE SET body = EXCLUDED.body",
                                [(op.session_id, pid, body) for pid, body in op.pages.items()],
                            )
                elif isinstance(op, DeleteSession):
                    cur = conn.execute(f"DELETE FROM {self.schema}.sessions WHERE id = %s", (op.session_id,))
                    if cur.rowcount == 0 and op.must_exist:
                        raise SessionNotFound(op.session_id, store=self.url)
        return receipt

    def _create(self, conn: Any, op: CreateSession, receipt: WriteReceipt) -> None:
        info = op.info
        cur = conn.execute(
            f"INSERT INTO {self.schema}.sessions ({_INFO_COLUMNS}) VALUES (%s, %s, %s, %s, 0, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (
                info.id,
                info.parent_id,
                info.created_at,
                info.updated_at,
                header_json(info, receipt),
                SessionTotals().model_dump_json(),
            ),
        )
        if cur.rowcount == 0 and op.exclusive:
            raise SessionAlreadyExists(info.id, store=self.url)

    def _save_header(self, conn: Any, info: SessionInfo, receipt: WriteReceipt) -> None:
        cur = conn.execute(
            f"UPDATE {self.schema}.sessions SET parent_id = %s, header = %s, updated_at = %s WHERE id = %s",
            (info.parent_id, header_json(info, receipt), info.updated_at, info.id),
        )
        if cur.rowcount == 0:
            raise SessionNotFound(info.id, store=self.url)

    def _lock_session(self, conn: Any, session_id: str) -> tuple[int, str]:
        row = conn.execute(
            f"SELECT last_seq, totals FROM {self.schema}.sessions WHERE id = %s FOR UPDATE", (session_id,)
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id, store=self.url)
        return int(row[0]), str(row[1])

    def _append(
        self, conn: Any, session_id: str, events: Sequence[SessionEvent], receipt: WriteReceipt
    ) -> None:
        last_seq, totals_json = self._lock_session(conn, session_id)
        stored, bodies, repaired = _bodies(events)
        known = {
            row[0]
            for row in conn.execute(
                f"SELECT event_id FROM {self.schema}.events WHERE session_id = %s AND event_id = ANY(%s)",
                (session_id, [e.id for e in stored]),
            )
        }
        if known or len({e.id for e in stored}) != len(stored):
            fresh: list[tuple[SessionEvent, str]] = []
            for event, body in zip(stored, bodies, strict=True):
                if event.id not in known:
                    known.add(event.id)
                    fresh.append((event, body))
            receipt.duplicates += len(stored) - len(fresh)
            stored, bodies = [e for e, _ in fresh], [b for _, b in fresh]
        receipt.last_seqs[session_id] = last_seq + len(stored)
        if not stored:
            return
        conn.execute(
            self._insert,
            {
                "sid": session_id,
                "last": last_seq,
                "ids": [e.id for e in stored],
                "types": [e.type.value for e in stored],
                "ts": [e.timestamp for e in stored],
                "bodies": bodies,
            },
        )
        receipt.appended += len(stored)
        if repaired:
            kept = {e.id for e in stored}
            receipt.note_repaired(r for r in repaired if r.event_id in kept)
        totals = SessionTotals.model_validate_json(totals_json)
        for event in stored:
            totals.fold(event)
        conn.execute(
            f"UPDATE {self.schema}.sessions SET last_seq = %s, updated_at = %s, totals = %s WHERE id = %s",
            (last_seq + len(stored), stored[-1].timestamp, totals.model_dump_json(), session_id),
        )

    # -- reads ----------------------------------------------------------------------

    @staticmethod
    def _info(row: Sequence[Any]) -> SessionInfo:
        sid, parent, created, updated, last_seq, header, totals = row
        return SessionInfo(
            **json.loads(header),
            id=sid,
            parent_id=parent,
            created_at=created,
            updated_at=updated,
            last_seq=int(last_seq),
            totals=SessionTotals.model_validate_json(totals),
        )

    def _info_row(self, conn: Any, session_id: str) -> Sequence[Any]:
        row = conn.execute(
            f"SELECT {_INFO_COLUMNS} FROM {self.schema}.sessions WHERE id = %s", (session_id,)
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id, store=self.url)
        return row  # type: ignore[no-any-return]

    def _events(self, conn: Any, session_id: str, after_seq: int) -> list[SessionEvent]:
        rows = conn.execute(
            f"SELECT body FROM {self.schema}.events WHERE session_id = %s AND seq > %s ORDER BY seq",
            (session_id, after_seq),
        ).fetchall()
        return parse_events(body for (body,) in rows)

    def load_info(self, session_id: str) -> SessionInfo:
        with self._conn("load") as conn:
            return self._info(self._info_row(conn, session_id))

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        return self.read_since(session_id, after_seq)[1]

    def last_seq(self, session_id: str) -> int:
        with self._conn("last_seq") as conn:
            row = conn.execute(
                f"SELECT last_seq FROM {self.schema}.sessions WHERE id = %s", (session_id,)
            ).fetchone()
        if row is None:
            raise SessionNotFound(session_id, store=self.url)
        return int(row[0])

    def read_since(self, session_id: str, after_seq: int) -> tuple[SessionInfo, list[SessionEvent]]:
        with self._conn("load") as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one snapshot
            try:
                row = self._info_row(conn, session_id)
                events = self._events(conn, session_id, after_seq)
            finally:
                conn.execute("COMMIT")
        return self._info(row), events

    def load(self, session_id: str) -> Session:
        with self._conn("load") as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                row = self._info_row(conn, session_id)
                children = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT id FROM {self.schema}.sessions WHERE parent_id = %s ORDER BY created_at",
                        (session_id,),
                    )
                ]
                events = self._events(conn, session_id, 0)
            finally:
                conn.execute("COMMIT")
        return Session(**self._info(row).__dict__, children=children, events=events)

    def exists(self, session_id: str) -> bool:
        with self._conn("exists") as conn:
            found = conn.execute(
                f"SELECT 1 FROM {self.schema}.sessions WHERE id = %s", (session_id,)
            ).fetchone()
        return found is not None

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        sql = f"SELECT {_INFO_COLUMNS} FROM {self.schema}.sessions"
        args: list[Any] = []
        if parent_id is not None:
            sql += " WHERE parent_id = %s"
            args.append(parent_id)
        sql += " ORDER BY created_at DESC, id"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        with self._conn("list") as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._info(r) for r in rows]

    def session_versions(self) -> dict[str, SessionVersion]:
        with self._conn("list") as conn:
            sql = f"SELECT id, created_at, updated_at, last_seq FROM {self.schema}.sessions"
            rows = conn.execute(sql).fetchall()
        return {str(sid): SessionVersion(c, u, int(n)) for sid, c, u, n in rows}

    def load_pages(self, session_id: str) -> dict[str, str]:
        with self._conn("load_pages") as conn:
            rows = conn.execute(
                f"SELECT page_id, body FROM {self.schema}.pages WHERE session_id = %s", (session_id,)
            ).fetchall()
            if not rows:
                self._info_row(conn, session_id)
        return {str(k): str(v) for k, v in rows}

    def close(self) -> None:
        with self._open_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
