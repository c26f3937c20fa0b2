"""Small helpers shared by the tests and the benchmarks."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from typing import Any

from storage.db import dialect, open_db


def free_port() -> int:
    """An unused loopback port, for a server started as its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The new_db fixture (tests/conftest.py): a database name in, what open_db takes out.
NewDb = Callable[[str], str]


def on_postgres(db: object) -> bool:
    """Whether a test's database is PostgreSQL (under `make test-postgres`)."""
    return dialect(db) == "postgresql"


def insert_failure(db: object) -> type[Exception]:
    """The exception an insert stopped by fail_on_insert raises on ``db``'s backend."""
    if on_postgres(db):
        import psycopg

        return psycopg.errors.RaiseException
    return sqlite3.IntegrityError


def fail_on_insert(db: Any, table: str) -> None:
    """Make every insert into ``table`` fail, as a crash or a full disk at that step would (drop it with allow_insert)."""
    if on_postgres(db):
        db.execute(
            f"CREATE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
        )
        db.execute(f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION fail_{table}()")
    else:
        db.execute(f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk full'); END")


def allow_insert(db: Any, table: str) -> None:
    """Drop the trigger fail_on_insert made."""
    db.execute(f"DROP TRIGGER fail_{table}" + (f" ON {table}" if on_postgres(db) else ""))


def peek(target: str, sql: str, params: list[Any] | None = None) -> list[Any]:
    """The rows of one query on a test's database (a file or a URL), on a connection of its own."""
    db = open_db(target)
    try:
        return [tuple(row) for row in db.execute(sql, params or [])]
    finally:
        db.close()
