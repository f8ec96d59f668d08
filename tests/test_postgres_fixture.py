"""The PostgreSQL fixture: a real server, run by an unprivileged user, reachable on loopback."""

from __future__ import annotations

import os

import psycopg
import pytest
from postgres_server import PostgresServer

pytestmark = pytest.mark.postgres


def test_the_server_answers_queries_on_its_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT current_database(), inet_server_addr()::text").fetchone()
    assert row == ("sessionware", "127.0.0.1/32")


def test_the_server_never_runs_as_root(postgres_server: PostgresServer) -> None:
    assert postgres_server.process is not None
    with open(f"/proc/{postgres_server.process.pid}/status") as status:
        uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    assert int(uid) != 0
    if os.geteuid() == 0:
        assert postgres_server.user is not None and int(uid) == postgres_server.user.pw_uid


def test_a_new_database_is_empty_and_separate(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("fixture_check")
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)
