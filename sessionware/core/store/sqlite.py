"""SQLite storage: one file, WAL, embedded, persistent. The default for the CLI and
zero-code mode.

Events are rows of an append-only table keyed by ``(session_id, seq)``; each write
batch is one ``BEGIN IMMEDIATE`` transaction that also folds the new events into the
session row's totals, so several processes can share a file safely.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sessionware.core.errors import SessionAlreadyExists, SessionNotFound, StorageError
from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    WriteOp,
    coalesce_appends,
    event_bodies,
)

__all__ = ["SQLiteBackend"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessionware_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    parent_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    header TEXT NOT NULL,
    totals TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_parent ON sessions(parent_id);
CREATE INDEX IF NOT EXISTS sessions_by_created ON sessions(created_at);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pages (
    session_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, page_id)
) WITHOUT ROWID;
"""

# A batch of events goes in as one JSON array and one statement: SQLite splits it with
# json_each in a single step, so the writer thread gives up and takes back the GIL once
# per batch instead of once per row (executemany steps each row separately), which is
# what a recording thread that releases the GIL itself (the tokenizer) keeps paying for.
_INSERT_EVENTS = (
    "INSERT INTO events(session_id, seq, type, ts, body)"
    " SELECT ?, json_extract(value, '$.seq'), json_extract(value, '$.type'),"
    " json_extract(value, '$.timestamp'), value FROM json_each(?)"
)
_JSON_PROBE = "SELECT json_valid('[]')"

_HEADER_EXCLUDE = {"totals", "last_seq", "id", "parent_id", "created_at", "updated_at"}

# SQLite forbids using a connection across fork(): its process-wide lock bookkeeping is
# copied into the child, so a write in progress at the fork leaves the child waiting on a
# lock that no thread of it will release. A fork therefore waits for writes in progress
# (it takes every backend's lock first), and the child sets the inherited connections
# aside without touching them (closing one could drop locks the parent holds) and opens
# its own on first use.
_connected: weakref.WeakSet[SQLiteBackend] = weakref.WeakSet()
_held_over_fork: list[SQLiteBackend] = []
_inherited: list[sqlite3.Connection] = []
_fork_hooks_installed = False


def _before_fork() -> None:
    for backend in list(_connected):
        backend._lock.acquire()
        _held_over_fork.append(backend)


def _after_fork_in_parent() -> None:
    while _held_over_fork:
        _held_over_fork.pop()._lock.release()


def _after_fork_in_child() -> None:
    while _held_over_fork:
        _held_over_fork.pop()._forget_inherited()


def _install_fork_hooks() -> None:
    global _fork_hooks_installed
    if not _fork_hooks_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
        )
        _fork_hooks_installed = True


class SQLiteBackend:
    """Sessions in a SQLite file. ``busy_timeout`` is how long a locked file is waited for."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def kind(self) -> str:
        return "sqlite"

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def blocking(self) -> bool:
        return True

    def _error(self, operation: str, exc: BaseException) -> StorageError:
        # A locked or briefly unavailable file may work on retry; a corrupt one will not.
        retryable = (isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)) or isinstance(
            exc, OSError
        )
        return StorageError(
            operation, self.kind, self.location, f"{type(exc).__name__}: {exc}", retryable=retryable
        )

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._check_foreign(conn)
            self._check_json(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Tables and the version row in one transaction, its write lock taken up front
            # (waiting out busy_timeout if another process holds it).
            conn.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} INSERT OR IGNORE INTO sessionware_meta(key, value)"
                f" VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
            )
            self._check_version(conn)
        except (sqlite3.Error, OSError) as exc:
            raise self._error("open", exc) from exc
        self._conn = conn
        _install_fork_hooks()
        _connected.add(self)
        return conn

    def _forget_inherited(self) -> None:
        """In a forked child: set the parent's connection aside and start a fresh lock."""
        if self._conn is not None:
            _inherited.append(self._conn)
            self._conn = None
        self._lock = threading.RLock()

    def _check_json(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute(_JSON_PROBE)
        except sqlite3.OperationalError:
            conn.close()
            raise StorageError(
                "open",
                self.kind,
                self.location,
                f"this SQLite ({sqlite3.sqlite_version}) has no JSON functions; sessionware needs"
                " them (built in since SQLite 3.38, and enabled in most earlier builds)",
            ) from None

    def _check_foreign(self, conn: sqlite3.Connection) -> None:
        """Refuse to add our tables to a database that belongs to something else."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "sessionware_meta" not in tables:
            conn.close()
            raise StorageError(
                "open",
                self.kind,
                self.location,
                f"the file holds other tables ({', '.join(sorted(tables)[:5])}) and no sessionware data;"
                " refusing to add sessionware's tables to it",
            )

    def _check_version(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM sessionware_meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            conn.close()
            raise StorageError(
                "open",
                self.kind,
                self.location,
                f"written by a newer sessionware (schema {row[0]}, this version reads {SCHEMA_VERSION})",
            )

    @contextmanager
    def _tx(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(operation, exc) from exc
                raise

    @contextmanager
    def _read(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connect()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._error(operation, exc) from exc

    # -- writes ---------------------------------------------------------------------

    def write(self, ops: Sequence[WriteOp]) -> None:
        with self._tx("write") as conn:
            for op in coalesce_appends(ops):
                if isinstance(op, CreateSession):
                    self._create(conn, op.info)
                elif isinstance(op, SaveHeader):
                    self._save_header(conn, op.info)
                elif isinstance(op, AppendEvents):
                    self._append(conn, op.session_id, op.events)
                elif isinstance(op, PutPages):
                    self._require(conn, op.session_id)
                    conn.executemany(
                        "INSERT OR REPLACE INTO pages(session_id, page_id, body) VALUES (?, ?, ?)",
                        [(op.session_id, pid, body) for pid, body in op.pages.items()],
                    )
                elif isinstance(op, DeleteSession):
                    self._require(conn, op.session_id)
                    for table, column in (
                        ("events", "session_id"),
                        ("pages", "session_id"),
                        ("sessions", "id"),
                    ):
                        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (op.session_id,))

    def _create(self, conn: sqlite3.Connection, info: SessionInfo) -> None:
        try:
            conn.execute(
                "INSERT INTO sessions(id, parent_id, created_at, updated_at, last_seq, header, totals)"
                " VALUES (?, ?, ?, ?, 0, ?, ?)",
                (
                    info.id,
                    info.parent_id,
                    info.created_at.isoformat(),
                    info.updated_at.isoformat(),
                    info.model_dump_json(exclude=_HEADER_EXCLUDE),
                    SessionTotals().model_dump_json(),
                ),
            )
        except sqlite3.IntegrityError:
            raise SessionAlreadyExists(info.id, store=self.location) from None

    def _save_header(self, conn: sqlite3.Connection, info: SessionInfo) -> None:
        cur = conn.execute(
            "UPDATE sessions SET parent_id = ?, header = ?, updated_at = ? WHERE id = ?",
            (
                info.parent_id,
                info.model_dump_json(exclude=_HEADER_EXCLUDE),
                info.updated_at.isoformat(),
                info.id,
            ),
        )
        if cur.rowcount == 0:
            raise SessionNotFound(info.id, store=self.location)

    def _require(self, conn: sqlite3.Connection, session_id: str) -> tuple[int, str]:
        row = conn.execute("SELECT last_seq, totals FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(session_id, store=self.location)
        return int(row[0]), str(row[1])

    def _append(self, conn: sqlite3.Connection, session_id: str, events: Sequence[SessionEvent]) -> None:
        if not events:
            return
        last_seq, totals_json = self._require(conn, session_id)
        if events[0].seq != last_seq + 1:
            raise StorageError(
                "append",
                self.kind,
                self.location,
                f"session {session_id!r} expects seq {last_seq + 1}, got {events[0].seq}",
            )
        totals = SessionTotals.model_validate_json(totals_json)
        for event in events:
            totals.fold(event)
        conn.execute(_INSERT_EVENTS, (session_id, event_bodies(events)))
        conn.execute(
            "UPDATE sessions SET last_seq = ?, updated_at = ?, totals = ? WHERE id = ?",
            (events[-1].seq, events[-1].timestamp.isoformat(), totals.model_dump_json(), session_id),
        )

    # -- reads ----------------------------------------------------------------------

    _INFO_COLUMNS = "id, parent_id, created_at, updated_at, last_seq, header, totals"

    @staticmethod
    def _info(row: tuple[object, ...]) -> SessionInfo:
        sid, parent, created, updated, last_seq, header, totals = row
        return SessionInfo(
            **json.loads(str(header)),
            id=str(sid),
            parent_id=None if parent is None else str(parent),
            created_at=datetime.fromisoformat(str(created)),
            updated_at=datetime.fromisoformat(str(updated)),
            last_seq=int(str(last_seq)),
            totals=SessionTotals.model_validate_json(str(totals)),
        )

    def load_info(self, session_id: str) -> SessionInfo:
        with self._read("load") as conn:
            row = conn.execute(
                f"SELECT {self._INFO_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        if row is None:
            raise SessionNotFound(session_id, store=self.location)
        return self._info(row)

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        with self._read("load") as conn:
            rows = conn.execute(
                "SELECT body FROM events WHERE session_id = ? AND seq > ? ORDER BY seq",
                (session_id, after_seq),
            ).fetchall()
            if not rows:
                self._require(conn, session_id)
        return [SessionEvent.model_validate_json(body) for (body,) in rows]

    def load(self, session_id: str) -> Session:
        info = self.load_info(session_id)
        with self._read("load") as conn:
            children = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM sessions WHERE parent_id = ? ORDER BY created_at", (session_id,)
                )
            ]
        events = self.load_events(session_id)
        return Session(**info.__dict__, children=children, events=events)

    def exists(self, session_id: str) -> bool:
        with self._read("exists") as conn:
            return conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        sql = f"SELECT {self._INFO_COLUMNS} FROM sessions"
        args: list[object] = []
        if parent_id is not None:
            sql += " WHERE parent_id = ?"
            args.append(parent_id)
        sql += " ORDER BY created_at DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._read("list") as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._info(r) for r in rows]

    def load_pages(self, session_id: str) -> dict[str, str]:
        with self._read("load_pages") as conn:
            rows = conn.execute(
                "SELECT page_id, body FROM pages WHERE session_id = ?", (session_id,)
            ).fetchall()
            if not rows:
                self._require(conn, session_id)
        return dict(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
