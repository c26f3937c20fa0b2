"""SQLite plumbing shared by every store: open, migrate, and run work off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import sqlite_utils
from sqlite_utils import Migrations

P = ParamSpec("P")
T = TypeVar("T")


def open_db(path: str | Path, migration_sets: Iterable[Migrations] = ()) -> sqlite_utils.Database:
    """Open (creating if needed) a WAL-mode database and apply pending migrations."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # One connection used from one worker thread at a time (see DbRunner), so it may
    # be created on another thread than the one that uses it.
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA foreign_keys = ON")
    if str(path) != ":memory:":
        db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    for migrations in migration_sets:
        migrations.apply(db)
    return db


class DbRunner:
    """Runs store functions on one dedicated thread: one writer, never on the event loop."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-db")

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn(db, *args, **kwargs)`` on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self.db, *args, **kwargs))

    def close(self) -> None:
        """Finish queued work and close the connection."""
        self._executor.submit(self.db.close).result()
        self._executor.shutdown(wait=True)


class Cursor(Protocol):
    """What a statement gives back: its rows, and how many rows a write changed."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Rows(Protocol):
    """The few row helpers of one table that store functions use."""

    @property
    def count(self) -> int: ...

    @property
    def rows(self) -> Iterator[dict[str, Any]]: ...

    def exists(self) -> bool: ...

    def get(self, pk_values: Any) -> dict[str, Any]: ...

    def rows_where(
        self,
        where: str | None = None,
        where_args: Sequence[Any] | None = None,
        order_by: str | None = None,
        select: str = "*",
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]: ...

    def insert(self, record: dict[str, Any]) -> Any: ...

    def insert_all(self, records: Iterable[dict[str, Any]]) -> Any: ...

    def upsert(self, record: dict[str, Any], pk: Any = ...) -> Any: ...

    def upsert_all(self, records: Iterable[dict[str, Any]], pk: Any = ...) -> Any: ...


class Store(Protocol):
    """The one small interface every store function is written against.

    sqlite_utils.Database satisfies it (SQLite, the embedded default); a PostgreSQL backend
    provides the same few calls. SQL passed to ``execute``/``query`` is portable: ``?``
    placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING``, no SQLite-only functions. Schema
    changes are not part of it: each backend applies the migrations its own way.
    """

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor: ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]: ...

    def atomic(self) -> AbstractContextManager[Any]: ...

    def table(self, table_name: str) -> Rows: ...


def as_store(db: sqlite_utils.Database) -> Store:
    """The SQLite database as the interface store functions take (mypy checks here that it fits)."""
    return db
