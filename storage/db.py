"""Database plumbing shared by every store: open, migrate, and run work off the event loop.

The default backend is a SQLite file; a ``postgresql://`` URL opens PostgreSQL instead (storage/pg.py),
behind the same ``Store`` interface and the same migrations. On SQLite, writes go through one writer
connection on one thread; reads that need no writer (reports, exports, the knowledge base's loads,
pages that only show) go to a pool of read-only connections, as datasette splits
``execute_write_fn`` from ``execute_fn``. In WAL mode a reader sees every write committed before its
read began and neither blocks the writer nor waits for it. On PostgreSQL, writes go to a pool of
writer connections (row locks keep concurrent writers apart, as they must across replicas) and
reads to a pool of read-only REPEATABLE READ transactions, both on threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import sqlite_utils
from sqlite_utils import Migrations

if TYPE_CHECKING:
    from storage.pg import PgDatabase, PgPools

P = ParamSpec("P")
T = TypeVar("T")

READERS = 3  # read connections per runner: datasette's default num_sql_threads
WRITERS = 4  # writer connections per runner on PostgreSQL (SQLite has one writer)

# What the entry point gives each package's commands: the database, opened with every migration set.
OpenDatabase = Callable[[str], "sqlite_utils.Database | PgDatabase"]


def is_postgres_url(target: str | Path) -> bool:
    """Whether ``target`` (a ``KEFU_DB`` value) is a PostgreSQL URL rather than a SQLite file path."""
    return str(target).startswith(("postgresql://", "postgres://"))


def files_folder(target: str | Path, fallback: Path) -> Path:
    """Where the shop's files that live beside its database go (its own sentiment model, Rasa's log):
    the SQLite file's folder, or ``fallback`` for a PostgreSQL database, which has no folder."""
    return fallback if is_postgres_url(target) else Path(target).parent


def open_db(path: str | Path, migration_sets: Iterable[Migrations] = ()) -> sqlite_utils.Database | PgDatabase:
    """Open (creating if needed) the database and apply pending migrations: a WAL-mode SQLite file, or
    the PostgreSQL database of a ``postgresql://`` URL."""
    if is_postgres_url(path):
        from storage.pg import open_pg  # psycopg is loaded only by those who use PostgreSQL

        return open_pg(str(path), migration_sets)
    return open_sqlite(path, migration_sets)


def open_sqlite(path: str | Path, migration_sets: Iterable[Migrations] = ()) -> sqlite_utils.Database:
    """Open (creating if needed) a WAL-mode SQLite database and apply pending migrations."""
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


def open_reader(path: str | Path) -> sqlite_utils.Database:
    """A read-only connection to an existing WAL database: any write on it raises sqlite3.OperationalError."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA query_only = ON")
    return db


def database_file(db: sqlite_utils.Database) -> str | None:
    """The file behind a connection, or None for an in-memory database."""
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file) or None
    return None


def dialect(db: object) -> str:
    """``"postgresql"`` or ``"sqlite"``: for the few statements that must differ between the two."""
    return str(getattr(db, "dialect", "sqlite"))


def skip_locked(db: object) -> str:
    """The locking clause a claim's inner SELECT ends with: on PostgreSQL, concurrent claimers skip each
    other's rows instead of waiting for them (on SQLite the one writer already keeps claims apart)."""
    return " FOR UPDATE SKIP LOCKED" if dialect(db) == "postgresql" else ""


def lock_for_transaction(db: Store, key: str) -> None:
    """Hold a lock named ``key`` until the caller's transaction ends, so a check and the insert it decides
    on are not raced by another writer. On PostgreSQL writers run side by side (a pool, replicas): a
    transaction-scoped advisory lock. On SQLite nothing to do: one writer per process, and a write after
    another process's commit fails on its stale snapshot instead of going through."""
    if dialect(db) == "postgresql":
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [key])


class DbRunner:
    """Runs store functions off the event loop. SQLite: writes on one writer thread with its one
    connection, reads on a pool of threads, each with its own read-only connection. PostgreSQL: writes
    on a pool of ``writers`` threads and connections, reads on a pool of read-only connections."""

    def __init__(self, db: sqlite_utils.Database | PgDatabase, readers: int = READERS, writers: int = WRITERS) -> None:
        self.db = db
        self._pg: PgPools | None = None
        self._path: str | None = None
        if dialect(db) == "postgresql":
            from storage.pg import PgDatabase, PgPools

            assert isinstance(db, PgDatabase)
            self._pg = PgPools(db.url, writers=writers, readers=readers)
            self._executor = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="kefu-db")
            self._read_pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
                max_workers=readers, thread_name_prefix="kefu-db-read"
            )
        else:
            assert isinstance(db, sqlite_utils.Database)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-db")
            self._path = database_file(db)
            # An in-memory database is one connection's own: its reads go to the writer.
            self._read_pool = (
                ThreadPoolExecutor(max_workers=readers, thread_name_prefix="kefu-db-read") if self._path and readers > 0 else None
            )
        self.writers = writers if self._pg else 1  # threads that write
        self.readers = readers if self._read_pool else 0  # threads that read on their own connections
        self._local = threading.local()
        self._readers: list[sqlite_utils.Database] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn(db, *args, **kwargs)`` on a writer thread: every write goes this way."""
        loop = asyncio.get_running_loop()
        if self._pg is not None:
            pools = self._pg
            return await loop.run_in_executor(self._executor, lambda: pools.write(fn, *args, **kwargs))
        return await loop.run_in_executor(self._executor, lambda: fn(self.db, *args, **kwargs))

    async def read(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn(db, *args, **kwargs)`` on a read connection of the pool, in one read transaction.

        ``fn`` sees every write committed before it began and nothing committed while it runs; a write
        inside it raises (sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction). An
        in-memory SQLite database reads on the writer thread.
        """
        if self._read_pool is None:
            return await self.run(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        if self._pg is not None:
            pools = self._pg
            return await loop.run_in_executor(self._read_pool, lambda: pools.read(fn, *args, **kwargs))
        return await loop.run_in_executor(self._read_pool, lambda: self._read(fn, *args, **kwargs))

    def _read(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            assert self._path is not None
            db = open_reader(self._path)
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        # One snapshot for the whole function: a report's many queries agree with each other.
        db.execute("BEGIN")
        try:
            return fn(db, *args, **kwargs)
        finally:
            if db.conn.in_transaction:
                db.conn.rollback()  # nothing to keep: the connection cannot write

    def close(self) -> None:
        """Finish queued work and close every connection: the readers', then the writers' (once; again is a no-op)."""
        if self._closed:
            return
        self._closed = True
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True)
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._executor.submit(self.db.close).result()
        self._executor.shutdown(wait=True)
        if self._pg is not None:
            self._pg.close()


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

    sqlite_utils.Database satisfies it (SQLite, the embedded default); storage.pg.PgDatabase
    provides the same few calls on PostgreSQL. SQL passed to ``execute``/``query`` is portable: ``?``
    placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING``, no SQLite-only functions. Schema
    changes are not part of it: the migrations make them, through sqlite-utils' schema calls that
    PgDatabase also answers.
    """

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor: ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]: ...

    def atomic(self) -> AbstractContextManager[Any]: ...

    def table(self, table_name: str) -> Rows: ...


def as_store(db: sqlite_utils.Database | PgDatabase) -> Store:
    """Either backend as the interface store functions take (mypy checks here that both fit)."""
    return db


def percentile(db: Store, sql: str, params: list[Any], pct: float) -> float | None:
    """The nearest-rank ``pct`` percentile of a one-column query's values (``v``); None when it has no rows."""
    count = db.execute(f"SELECT count(*) FROM ({sql}) AS t", params).fetchone()[0]  # noqa: S608 - the caller's fixed SQL
    if not count:
        return None
    offset = max(0, min(count - 1, math.ceil(pct / 100 * count) - 1))
    return float(db.execute(f"SELECT v FROM ({sql}) AS t ORDER BY v LIMIT 1 OFFSET {offset}", params).fetchone()[0])  # noqa: S608
