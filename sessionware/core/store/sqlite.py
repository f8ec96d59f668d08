"""SQLite storage: one file, WAL, embedded, persistent. The default for the CLI and
zero-code mode.

Events are rows of an append-only table keyed by ``(session_id, seq)``, with a unique
index on ``(session_id, event_id)``. Each write batch is one ``BEGIN IMMEDIATE``
transaction: inside it (holding the file's write lock, so no other process interleaves)
each new event gets the session's next ``seq``, an event whose id is stored already is
skipped, and the new events are folded into the session row's totals. Any number of
processes can append to one session of one file.

A file and the folders sessionware creates for it are private to their owner (0600 /
0700; SQLite gives its ``-wal`` and ``-shm`` files the database file's mode); an existing
file keeps its mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
    SessionVersion,
    WriteOp,
    WriteReceipt,
    coalesce_appends,
    event_bodies,
    header_json,
    parse_events,
    storable_bodies,
)
from sessionware.core.store.locks import FileRangeLocks

__all__ = ["SQLiteBackend"]

SCHEMA_VERSION = 2
"""1: events keyed by (session_id, seq). 2: plus ``event_id`` and its unique index."""

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
    event_id TEXT NOT NULL,
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

_MIGRATE_1_TO_2 = """
ALTER TABLE events ADD COLUMN event_id TEXT NOT NULL DEFAULT '';
UPDATE events SET event_id = json_extract(body, '$.id');
"""
_EVENT_ID_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events(session_id, event_id)"

# A batch of events goes in as one JSON array and one statement: SQLite splits it with
# json_each in a single step, so the writer thread gives up and takes back the GIL once
# per batch instead of once per row (executemany steps each row separately), which is
# what a recording thread that releases the GIL itself (the tokenizer) keeps paying for.
# The bodies come without ``seq``: each gets the session's next one here, in the write
# transaction (``key`` is the position in the array), spliced in as the body's first field.
_INSERT_EVENTS = (
    "INSERT INTO events(session_id, seq, event_id, type, ts, body)"
    " SELECT ?1, ?2 + key + 1, json_extract(value, '$.id'), json_extract(value, '$.type'),"
    " json_extract(value, '$.timestamp'), '{\"seq\":' || (?2 + key + 1) || ',' || substr(value, 2)"
    " FROM json_each(?3)"
)
_KNOWN_IDS = (
    "SELECT event_id FROM events WHERE session_id = ? AND event_id IN (SELECT value FROM json_each(?))"
)
_JSON_PROBE = "SELECT json_valid('[]')"
_SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file

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
        self._session_locks = FileRangeLocks(self.path.with_name(self.path.name + "-sessionware-locks"))

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

    def check_path(self) -> None:
        """Refuse, before anything is written, a path that cannot hold a database: a
        folder, or a file or folder this process may not read or write."""
        path = self.path
        if path.is_dir():
            raise StorageError("open", self.kind, self.location, "the path is a folder, not a database file")
        if path.exists():
            if not os.access(path, os.R_OK | os.W_OK):
                raise StorageError("open", self.kind, self.location, "the file is not readable and writable")
            self._check_header()
            return
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            raise StorageError("open", self.kind, self.location, f"{parent} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StorageError("open", self.kind, self.location, f"the folder {parent} is not writable")

    def _check_header(self) -> None:
        """Refuse an existing file that is not a SQLite database (an empty one becomes one)."""
        try:
            with self.path.open("rb") as handle:
                head = handle.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise StorageError("open", self.kind, self.location, f"the file cannot be read: {exc}") from None
        if head and head != _SQLITE_HEADER:
            raise StorageError(
                "open",
                self.kind,
                self.location,
                "file is not a database (it does not start with the SQLite header)",
            )

    def _create_private(self) -> None:
        """Create the file (0600) and its missing folders (0700); an existing file is left alone."""
        missing = [p for p in self.path.parents if not p.exists()]
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:  # another process made it meanwhile
                continue
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        except FileExistsError:
            return
        os.close(fd)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self._create_private()
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._check_foreign(conn)
            self._check_json(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if self._stored_version(conn) != SCHEMA_VERSION:
                # Tables and the version row in one transaction, its write lock taken up
                # front (waiting out busy_timeout if another process holds it). A file
                # already at this version is only read: a reader such as `sessionware ui`
                # takes no write lock by connecting.
                conn.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA} INSERT OR IGNORE INTO sessionware_meta(key, value)"
                    f" VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
                )
                self._stored_version(conn)  # a newer process may have come first
                self._migrate(conn)
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

    def _stored_version(self, conn: sqlite3.Connection) -> int | None:
        """The file's schema version, read without a write lock (None: a new file); a newer
        one than this code reads is refused."""
        try:
            row = conn.execute("SELECT value FROM sessionware_meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        version = None if row is None else int(row[0])
        if version is not None and version > SCHEMA_VERSION:
            conn.close()
            raise StorageError(
                "open",
                self.kind,
                self.location,
                f"written by a newer sessionware (schema {version}, this version reads {SCHEMA_VERSION})",
            )
        return version

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring an older file's schema up to this version (once, whichever process comes first)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM sessionware_meta WHERE key = 'schema_version'").fetchone()
            if int(row[0]) < 2:
                for statement in _MIGRATE_1_TO_2.strip().split(";\n"):
                    conn.execute(statement)
            conn.execute(_EVENT_ID_INDEX)
            conn.execute(
                "UPDATE sessionware_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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

    def write(self, ops: Sequence[WriteOp]) -> WriteReceipt:
        receipt = WriteReceipt()
        with self._tx("write") as conn:
            for op in coalesce_appends(ops):
                if isinstance(op, CreateSession):
                    self._create(conn, op, receipt)
                elif isinstance(op, SaveHeader):
                    self._save_header(conn, op.info, receipt)
                elif isinstance(op, AppendEvents):
                    self._append(conn, op.session_id, op.events, receipt)
                elif isinstance(op, PutPages):
                    self._require(conn, op.session_id)
                    conn.executemany(
                        "INSERT OR REPLACE INTO pages(session_id, page_id, body) VALUES (?, ?, ?)",
                        [(op.session_id, pid, body) for pid, body in op.pages.items()],
                    )
                elif isinstance(op, DeleteSession):
                    if not op.must_exist and not self._exists(conn, op.session_id):
                        continue
                    self._require(conn, op.session_id)
                    for table, column in (
                        ("events", "session_id"),
                        ("pages", "session_id"),
                        ("sessions", "id"),
                    ):
                        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (op.session_id,))
        return receipt

    def _create(self, conn: sqlite3.Connection, op: CreateSession, receipt: WriteReceipt) -> None:
        info = op.info
        verb = "INSERT" if op.exclusive else "INSERT OR IGNORE"
        try:
            conn.execute(
                f"{verb} INTO sessions(id, parent_id, created_at, updated_at, last_seq, header, totals)"
                " VALUES (?, ?, ?, ?, 0, ?, ?)",
                (
                    info.id,
                    info.parent_id,
                    info.created_at.isoformat(),
                    info.updated_at.isoformat(),
                    header_json(info, receipt),
                    SessionTotals().model_dump_json(),
                ),
            )
        except sqlite3.IntegrityError:
            raise SessionAlreadyExists(info.id, store=self.location) from None

    def _save_header(self, conn: sqlite3.Connection, info: SessionInfo, receipt: WriteReceipt) -> None:
        cur = conn.execute(
            "UPDATE sessions SET parent_id = ?, header = ?, updated_at = ? WHERE id = ?",
            (
                info.parent_id,
                header_json(info, receipt),
                info.updated_at.isoformat(),
                info.id,
            ),
        )
        if cur.rowcount == 0:
            raise SessionNotFound(info.id, store=self.location)

    @staticmethod
    def _exists(conn: sqlite3.Connection, session_id: str) -> bool:
        return conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def _require(self, conn: sqlite3.Connection, session_id: str) -> tuple[int, str]:
        row = conn.execute("SELECT last_seq, totals FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(session_id, store=self.location)
        return int(row[0]), str(row[1])

    def _append(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        events: Sequence[SessionEvent],
        receipt: WriteReceipt,
    ) -> None:
        last_seq, totals_json = self._require(conn, session_id)
        stored, bodies, repaired = storable_bodies(events, exclude_seq=True)
        try:
            conn.execute(_INSERT_EVENTS, (session_id, last_seq, bodies))
        except sqlite3.IntegrityError:  # a replay: some of these ids are stored already
            known = {
                row[0] for row in conn.execute(_KNOWN_IDS, (session_id, json.dumps([e.id for e in stored])))
            }
            fresh = []
            for event in stored:
                if event.id not in known:
                    known.add(event.id)
                    fresh.append(event)
            receipt.duplicates += len(stored) - len(fresh)
            stored = fresh
            if stored:
                conn.execute(_INSERT_EVENTS, (session_id, last_seq, event_bodies(stored, exclude_seq=True)))
        receipt.last_seqs[session_id] = last_seq + len(stored)
        if not stored:
            return
        receipt.appended += len(stored)
        if repaired:
            kept = {e.id for e in stored}
            receipt.note_repaired(r for r in repaired if r.event_id in kept)
        totals = SessionTotals.model_validate_json(totals_json)
        for event in stored:
            totals.fold(event)
        conn.execute(
            "UPDATE sessions SET last_seq = ?, updated_at = ?, totals = ? WHERE id = ?",
            (last_seq + len(stored), stored[-1].timestamp.isoformat(), totals.model_dump_json(), session_id),
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
        return parse_events(body for (body,) in rows)

    def last_seq(self, session_id: str) -> int:
        with self._read("last_seq") as conn:
            return self._require(conn, session_id)[0]

    def read_since(self, session_id: str, after_seq: int) -> tuple[SessionInfo, list[SessionEvent]]:
        with self._read("load") as conn:
            conn.execute("BEGIN")  # one snapshot for the header and the events
            try:
                row = conn.execute(
                    f"SELECT {self._INFO_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                bodies = conn.execute(
                    "SELECT body FROM events WHERE session_id = ? AND seq > ? ORDER BY seq",
                    (session_id, after_seq),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        if row is None:
            raise SessionNotFound(session_id, store=self.location)
        return self._info(row), parse_events(body for (body,) in bodies)

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

    def session_versions(self) -> dict[str, SessionVersion]:
        with self._read("list") as conn:
            rows = conn.execute("SELECT id, created_at, updated_at, last_seq FROM sessions").fetchall()
        parse = datetime.fromisoformat
        return {str(sid): SessionVersion(parse(c), parse(u), int(n)) for sid, c, u, n in rows}

    def load_pages(self, session_id: str) -> dict[str, str]:
        with self._read("load_pages") as conn:
            rows = conn.execute(
                "SELECT page_id, body FROM pages WHERE session_id = ?", (session_id,)
            ).fetchall()
            if not rows:
                self._require(conn, session_id)
        return dict(rows)

    def lock_session(self, session_id: str, timeout: float) -> AbstractContextManager[bool]:
        """See ``SessionLocking``: a byte of a lock file beside the database (POSIX)."""
        if not self._session_locks.supported:
            return nullcontext(False)
        return self._locked(session_id, timeout)

    @contextmanager
    def _locked(self, session_id: str, timeout: float) -> Iterator[bool]:
        try:
            self._create_private()  # the folder, with its private mode, if not made yet
            hold = self._session_locks.hold(session_id, timeout)
            held = hold.__enter__()
        except OSError as exc:
            raise self._error("lock", exc) from exc
        try:
            yield held
        finally:
            hold.__exit__(None, None, None)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
