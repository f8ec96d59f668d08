"""The PostgreSQL store's schema and its versioned migrations, run when a store opens.

Every table lives in one PostgreSQL schema (``sessionware`` unless the URL names another
with ``?schema=``), so sessionware's tables never mix with an application's. The schema
version is a row of ``meta``; opening a store takes a transaction-level advisory lock,
reads it and applies the migrations it lacks, in order, in that one transaction: any
number of processes may open the same database at once, and exactly one migrates.

A database written by a newer sessionware (a version above ``SCHEMA_VERSION``) is refused
rather than written with an older layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

Migration = Callable[[str], list[str]]


def _v1(schema: str) -> list[str]:
    """Sessions, their append-only event log (numbered at commit, unique event ids), pages."""
    s = schema
    return [
        f"""CREATE TABLE {s}.sessions (
            id TEXT PRIMARY KEY,
            parent_id TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            last_seq BIGINT NOT NULL DEFAULT 0,
            header TEXT NOT NULL,
            totals TEXT NOT NULL
        )""",
        f"CREATE INDEX sessions_by_parent ON {s}.sessions (parent_id, created_at)",
        f"CREATE INDEX sessions_by_created ON {s}.sessions (created_at)",
        f"""CREATE TABLE {s}.events (
            session_id TEXT NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
            seq BIGINT NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (session_id, seq),
            UNIQUE (session_id, event_id)
        )""",
        f"""CREATE TABLE {s}.pages (
            session_id TEXT NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
            page_id TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (session_id, page_id)
        )""",
    ]


MIGRATIONS: tuple[Migration, ...] = (_v1,)
"""Migration ``i`` brings a database from version ``i`` to ``i + 1``."""
SCHEMA_VERSION = len(MIGRATIONS)

# Any constant works: it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x5E55_10A5


class NewerSchema(Exception):
    """The database was written by a newer sessionware."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"written by a newer sessionware (schema {found}, this version reads {SCHEMA_VERSION})"
        )
        self.found = found


def migrate(conn: Any, schema: str) -> int:
    """Create or upgrade the tables in ``schema`` on the psycopg connection ``conn``
    (one transaction); returns the version found before. Raises ``NewerSchema``."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {schema}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'").fetchone()
        found = int(row[0]) if row is not None else 0
        if found > SCHEMA_VERSION:
            raise NewerSchema(found)
        for step in MIGRATIONS[found:]:
            for statement in step(schema):
                conn.execute(statement)
        if found < SCHEMA_VERSION:
            conn.execute(
                f"INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(SCHEMA_VERSION),),
            )
    return found
