"""PostgreSQL behind the same ``Store`` interface the SQLite stores are written against.

``PgDatabase`` is one psycopg 3 connection that looks, to store functions and to the migrations, like
the few calls of ``sqlite_utils.Database`` they make: ``execute``/``query`` with ``?`` placeholders,
``atomic()`` (a transaction; nested, a savepoint), ``table(name)`` with the row helpers (``get``,
``rows_where``, ``insert``, ``upsert`` ...) and the schema calls the migration functions use
(``create`` with types, primary key, defaults and foreign keys; ``create_index``; ``add_column``;
``exists``). So one migration history, ``sqlite_utils.Migrations`` and its ``_sqlite_migrations``
record, serves both backends, and each migration function runs unchanged on either.

``PgPools`` gives a ``DbRunner`` its connections: a pool of writer connections (row locks, not one
thread, keep concurrent writers apart) and a pool of read-only connections, each read one
REPEATABLE READ transaction (one snapshot, as a SQLite read transaction has).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import psycopg
import sqlite_utils
from psycopg import IsolationLevel
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

T = TypeVar("T")

URL_SCHEMES = ("postgresql://", "postgres://")

# What sqlite-utils' column types become here. An integer primary key of one column is an identity
# column, so it numbers new rows as SQLite's rowid does.
TYPES: dict[Any, str] = {int: "BIGINT", float: "DOUBLE PRECISION", str: "TEXT", bytes: "BYTEA", bool: "BIGINT"}


def is_url(target: object) -> bool:
    """Whether a ``KEFU_DB`` value names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


# A token of SQL: a string literal, a quoted name, a comment, a ``?`` or a ``%``; everything else is copied.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|%", re.DOTALL)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """The statement in psycopg's placeholder style: each ``?`` outside literals, names and comments
    becomes ``%s``; every ``%`` (in literals too, since psycopg reads the whole text) becomes ``%%``."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        return "%s" if text == "?" else text.replace("%", "%%")

    return _TOKENS.sub(replace, sql)


class _BoolAsInteger(Dumper):
    """Python booleans stored as 0/1, as SQLite stores them (the schema has no boolean columns)."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> Buffer:
        return b"1" if obj else b"0"


class _Number(Loader):
    """``numeric`` results (``sum`` of integers, ``avg``) as int or float, as SQLite returns them, not Decimal."""

    def load(self, data: Buffer) -> Any:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def configure(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """The type adaptations every kefu connection to PostgreSQL uses."""
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    conn.adapters.register_loader("numeric", _Number)


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode: a statement outside ``atomic()`` commits by itself."""
    conn = psycopg.connect(url, autocommit=True)
    configure(conn)
    return conn


def quote(name: str) -> str:
    """A table, column or index name as a PostgreSQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def _type(kind: Any) -> str:
    if kind in TYPES:
        return TYPES[kind]
    if isinstance(kind, str):  # sqlite-utils also takes type names
        return {"INTEGER": "BIGINT", "FLOAT": "DOUBLE PRECISION", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}.get(
            kind.upper(), kind.upper()
        )
    raise ValueError(f"no PostgreSQL type for column type {kind!r}")


# Primary keys by (connection target, table): catalogue lookups once per table, not once per get().
_PKS: dict[tuple[str, str], list[str]] = {}


class PgDatabase:
    """One PostgreSQL connection with the calls of ``sqlite_utils.Database`` that kefu's stores and
    migrations make (the ``storage.db.Store`` interface and a few schema calls)."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:
        self.conn = conn
        self.url = url

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        """Run one statement; ``?`` placeholders take ``parameters`` in order."""
        if parameters:
            return self.conn.execute(translate(sql), list(parameters))
        return self.conn.execute(sql)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a query as dictionaries."""
        with self.conn.cursor(row_factory=dict_row) as cursor:
            if params:
                cursor.execute(translate(sql), list(params))
            else:
                cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        return iter(rows)

    def atomic(self) -> AbstractContextManager[Any]:
        """A transaction: committed at the end of the block, rolled back on an exception; nested, a savepoint."""
        return self.conn.transaction()

    def table(self, table_name: str) -> PgTable:
        """One table's row helpers and schema calls."""
        return PgTable(self, table_name)

    def __getitem__(self, table_name: str) -> PgTable:
        return self.table(table_name)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """Held while migrations run, so two processes starting at once do not both apply one."""
        key = int.from_bytes(hashlib.sha256(b"kefu migrations").digest()[:8], "big", signed=True)
        self.execute("SELECT pg_advisory_lock(?)", [key])
        try:
            yield
        finally:
            self.execute("SELECT pg_advisory_unlock(?)", [key])


class PgTable:
    """A table of a ``PgDatabase``: sqlite-utils' ``Table`` calls that kefu uses."""

    def __init__(self, db: PgDatabase, name: str) -> None:
        self.db = db
        self.name = name
        self.last_pk: Any = None

    # Rows

    @property
    def count(self) -> int:
        """How many rows the table has."""
        row = self.db.execute(f"SELECT count(*) FROM {quote(self.name)}").fetchone()  # noqa: S608 - quoted name
        assert row is not None
        return int(row[0])

    @property
    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row."""
        return self.rows_where()

    def rows_where(
        self,
        where: str | None = None,
        where_args: Sequence[Any] | None = None,
        order_by: str | None = None,
        select: str = "*",
        limit: int | None = None,
        offset: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows matching ``where`` (``?`` placeholders), in ``order_by`` order."""
        sql = f"SELECT {select} FROM {quote(self.name)}"  # noqa: S608 - the caller's fixed clauses, quoted name
        if where:
            sql += f" WHERE {where}"
        if order_by:
            # sqlite_utils.Migrations orders its record by rowid: here the primary key keeps that order.
            sql += " ORDER BY " + (", ".join(quote(pk) for pk in self.pks) if order_by == "rowid" else order_by)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset is not None:
            sql += f" OFFSET {int(offset)}"
        return self.db.query(sql, where_args)

    def get(self, pk_values: Any) -> dict[str, Any]:
        """The row with this primary key; sqlite_utils' NotFoundError if there is none."""
        values = list(pk_values) if isinstance(pk_values, list | tuple) else [pk_values]
        where = " AND ".join(f"{quote(pk)} = ?" for pk in self.pks)
        found = list(self.rows_where(where, values, limit=1))
        if not found:
            raise sqlite_utils.db.NotFoundError
        return found[0]

    def insert(self, record: dict[str, Any]) -> PgTable:
        """Add a row; ``last_pk`` is then its primary key (one value, or a tuple for a compound key)."""
        pks = self.pks
        returning = " RETURNING " + ", ".join(quote(pk) for pk in pks) if pks != ["rowid"] else ""
        if record:
            columns = ", ".join(quote(c) for c in record)
            marks = ", ".join("?" * len(record))
            sql = f"INSERT INTO {quote(self.name)} ({columns}) VALUES ({marks}){returning}"  # noqa: S608 - quoted names
        else:
            sql = f"INSERT INTO {quote(self.name)} DEFAULT VALUES{returning}"
        cursor = self.db.execute(sql, list(record.values()))
        row = cursor.fetchone() if returning else None
        self.last_pk = None if row is None else (row[0] if len(row) == 1 else tuple(row))
        return self

    def insert_all(self, records: Iterable[dict[str, Any]]) -> PgTable:
        """Add many rows (records with the same columns go in one batch)."""
        self._write_all(records)
        return self

    def upsert(self, record: dict[str, Any], pk: Any = None) -> PgTable:
        """Insert a row, or update the given columns of the row with its primary key."""
        return self.upsert_all([record], pk=pk)

    def upsert_all(self, records: Iterable[dict[str, Any]], pk: Any = None) -> PgTable:
        """``upsert`` for many rows."""
        keys = [pk] if isinstance(pk, str) else list(pk) if pk else self.pks
        self._write_all(records, conflict_keys=keys)
        return self

    def _write_all(self, records: Iterable[dict[str, Any]], conflict_keys: list[str] | None = None) -> None:
        batches: dict[tuple[str, ...], list[list[Any]]] = {}
        for record in records:
            batches.setdefault(tuple(record), []).append(list(record.values()))
        for columns, values in batches.items():
            suffix = ""
            if conflict_keys is not None:
                updates = [c for c in columns if c not in conflict_keys]
                target = ", ".join(quote(k) for k in conflict_keys)
                if updates:
                    sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in updates)
                    suffix = f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
                else:
                    suffix = f" ON CONFLICT ({target}) DO NOTHING"
            names = ", ".join(quote(c) for c in columns)
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {quote(self.name)} ({names}) VALUES ({marks}){suffix}"  # noqa: S608 - quoted names
            with self.db.conn.cursor() as cursor:
                cursor.executemany(sql, values)

    # Schema

    def exists(self) -> bool:
        """Whether the table exists in the connection's schema."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?)",
            [self.name],
        ).fetchone()
        return bool(row and row[0])

    @property
    def pks(self) -> list[str]:
        """The primary key's columns (``["rowid"]`` for a table without one, as sqlite-utils says)."""
        key = (self.db.url, self.name)
        if key not in _PKS:
            rows = self.db.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(?) AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
                [quote(self.name)],
            ).fetchall()
            if not rows:
                return ["rowid"]
            _PKS[key] = [str(r[0]) for r in rows]
        return _PKS[key]

    def create(
        self,
        columns: dict[str, Any],
        pk: str | Sequence[str] | None = None,
        not_null: Iterable[str] | None = None,
        defaults: dict[str, Any] | None = None,
        foreign_keys: Iterable[tuple[str, str, str]] | None = None,
    ) -> PgTable:
        """Create the table with these column types, primary key, NOT NULL columns, defaults and foreign keys."""
        keys = [pk] if isinstance(pk, str) else list(pk or [])
        required = set(not_null or ())
        defaults = defaults or {}
        parts = []
        for column, kind in columns.items():
            if keys == [column] and kind is int:
                parts.append(f"{quote(column)} BIGINT GENERATED BY DEFAULT AS IDENTITY")
                continue
            part = f"{quote(column)} {_type(kind)}"
            if column in required:
                part += " NOT NULL"
            if column in defaults:
                part += f" DEFAULT {_literal(defaults[column])}"
            parts.append(part)
        if keys:
            parts.append("PRIMARY KEY (" + ", ".join(quote(k) for k in keys) + ")")
        for column, other, other_column in foreign_keys or ():
            parts.append(f"FOREIGN KEY ({quote(column)}) REFERENCES {quote(other)} ({quote(other_column)})")
        self.db.execute(f"CREATE TABLE {quote(self.name)} ({', '.join(parts)})")
        _PKS.pop((self.db.url, self.name), None)
        return self

    def create_index(self, columns: Sequence[str], index_name: str | None = None, unique: bool = False) -> PgTable:
        """An index on these columns, named as sqlite-utils names it."""
        name = index_name or "idx_{}_{}".format(self.name.replace(" ", "_"), "_".join(columns))
        kind = "UNIQUE INDEX" if unique else "INDEX"
        cols = ", ".join(quote(c) for c in columns)
        self.db.execute(f"CREATE {kind} {quote(name)} ON {quote(self.name)} ({cols})")
        return self

    def add_column(self, col_name: str, col_type: Any = None, not_null_default: Any = None) -> PgTable:
        """A new column; with ``not_null_default``, NOT NULL with that default for existing and new rows."""
        sql = f"ALTER TABLE {quote(self.name)} ADD COLUMN {quote(col_name)} {_type(col_type or str)}"
        if not_null_default is not None:
            sql += f" NOT NULL DEFAULT {_literal(not_null_default)}"
        self.db.execute(sql)
        return self


def open_pg(url: str, migration_sets: Iterable[sqlite_utils.Migrations] = ()) -> PgDatabase:
    """Connect and apply pending migrations (under a lock: other processes may start at the same time)."""
    db = PgDatabase(connect(url), url)
    migration_sets = list(migration_sets)
    if migration_sets:
        with db.migration_lock():
            for migrations in migration_sets:
                # The migrations take a sqlite_utils.Database; PgDatabase answers every call they make.
                migrations.apply(db)  # type: ignore[arg-type]
    return db


class PgPools:
    """A runner's connections to PostgreSQL: a pool of writers and a pool of read-only snapshots."""

    def __init__(self, url: str, writers: int, readers: int) -> None:
        self.url = url
        self._writers = ConnectionPool(
            url, min_size=1, max_size=writers, open=True, configure=configure, kwargs={"autocommit": True}, name="kefu-write"
        )
        self._readers = ConnectionPool(
            url, min_size=1, max_size=max(1, readers), open=True, configure=_configure_reader, name="kefu-read"
        )

    def write(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn`` with a writer connection (autocommit; its ``atomic()`` blocks are transactions)."""
        with self._writers.connection() as conn:
            return fn(PgDatabase(conn, self.url), *args, **kwargs)

    def read(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call ``fn`` in one read-only REPEATABLE READ transaction: one snapshot, and a write raises."""
        with self._readers.connection() as conn:
            try:
                return fn(PgDatabase(conn, self.url), *args, **kwargs)
            finally:
                conn.rollback()  # nothing to keep: the transaction cannot write

    def close(self) -> None:
        """Close every pooled connection."""
        self._readers.close()
        self._writers.close()


def _configure_reader(conn: psycopg.Connection[Any]) -> None:
    configure(conn)
    conn.read_only = True
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
