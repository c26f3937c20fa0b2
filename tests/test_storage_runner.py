"""The database runner: writer threads and connections (one on SQLite), and a pool of read-only connections beside them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from storage.db import READERS, DbRunner, open_db
from tests.helpers import NewDb, on_postgres

MakeRunner = Callable[[sqlite_utils.Database], DbRunner]


def create_notes(db: sqlite_utils.Database) -> None:
    db.table("notes").create({"id": int, "text": str}, pk="id")


def add_note(db: sqlite_utils.Database, text: str) -> None:
    db.table("notes").insert({"text": text})


def notes(db: sqlite_utils.Database) -> list[str]:
    return [str(r[0]) for r in db.execute("SELECT text FROM notes ORDER BY id").fetchall()]


def thread_name(db: sqlite_utils.Database) -> str:
    return threading.current_thread().name


def backend_pid(db: Any) -> int:
    return int(db.execute("SELECT pg_backend_pid()").fetchone()[0])


def read_only_error(db: object) -> tuple[type[Exception], str]:
    """What a write in a read transaction raises, and what its message says."""
    if on_postgres(db):
        import psycopg

        return psycopg.errors.ReadOnlySqlTransaction, "read-only transaction"
    return sqlite3.OperationalError, "readonly"


@pytest.fixture
def path(new_db: NewDb) -> str:
    path = new_db("runner.db")
    db = open_db(path)
    create_notes(db)
    db.close()
    return path


async def test_a_read_sees_every_write_committed_before_it(path: str, make_runner: MakeRunner) -> None:
    runner = make_runner(open_db(path))
    await runner.run(add_note, "through the writer")
    assert await runner.read(notes) == ["through the writer"]
    other = open_db(path)  # another process's connection, as `kefu reviews import` has
    add_note(other, "from another connection")
    other.close()
    assert await runner.read(notes) == ["through the writer", "from another connection"]
    assert (await runner.run(thread_name)).startswith("kefu-db_")
    assert (await runner.read(thread_name)).startswith("kefu-db-read_")


async def test_a_read_cannot_write(path: str, make_runner: MakeRunner) -> None:
    runner = make_runner(open_db(path))
    refused, says = read_only_error(runner.db)
    with pytest.raises(refused, match=says):
        await runner.read(add_note, "slipped in")
    with pytest.raises(refused, match=says):
        await runner.read(lambda db: db.execute("CREATE TABLE other (x TEXT)"))
    assert await runner.run(notes) == []
    assert await runner.read(notes) == []  # the connection that refused is still good for reading


async def test_a_long_read_does_not_block_a_write(path: str, make_runner: MakeRunner) -> None:
    runner = make_runner(open_db(path))
    await runner.run(add_note, "before")
    reading, written = threading.Event(), threading.Event()

    def long_read(db: sqlite_utils.Database) -> tuple[list[str], list[str], bool]:
        first = notes(db)  # the read transaction has its snapshot from here on
        reading.set()
        # The wait only keeps a broken runner from hanging the suite: the write must land meanwhile.
        landed = written.wait(60)
        return first, notes(db), landed

    read = asyncio.ensure_future(runner.read(long_read))
    assert await asyncio.to_thread(reading.wait, 60)
    await runner.run(add_note, "during")  # while the read holds its transaction open
    written.set()
    first, second, landed = await read
    assert landed  # the write completed before the read ended
    assert first == second == ["before"]  # one read, one snapshot: the write made during it is not seen
    assert await runner.read(notes) == ["before", "during"]


async def test_reads_run_side_by_side(path: str, make_runner: MakeRunner) -> None:
    runner = make_runner(open_db(path))
    together = threading.Barrier(READERS)

    def read_with_the_others(db: sqlite_utils.Database) -> str:
        together.wait(60)  # passes only when READERS reads run at once
        return thread_name(db)

    names = await asyncio.gather(*(runner.read(read_with_the_others) for _ in range(READERS)))
    assert len(set(names)) == READERS


async def test_an_in_memory_database_reads_on_its_writer(make_runner: MakeRunner) -> None:
    runner = make_runner(open_db(":memory:"))  # one connection's own: no other connection can see it
    await runner.run(create_notes)
    await runner.run(add_note, "kept")
    assert await runner.read(notes) == ["kept"]
    assert (await runner.read(thread_name)).startswith("kefu-db_")


async def test_close_closes_every_connection(path: str) -> None:
    runner = DbRunner(open_db(path))  # no fixture: closing is what is tested
    together = threading.Barrier(READERS)

    def read_with_the_others(db: sqlite_utils.Database) -> list[str]:
        together.wait(60)  # every reader thread opens its own connection
        return notes(db)

    await runner.run(add_note, "one")
    assert await asyncio.gather(*(runner.read(read_with_the_others) for _ in range(READERS))) == [["one"]] * READERS
    if on_postgres(runner.db):
        # The server's own list of connections: none of the runner's is left in it.
        backends = {await runner.run(backend_pid), *await asyncio.gather(*(runner.read(backend_pid) for _ in range(READERS)))}
        backends.add(backend_pid(runner.db))
        runner.close()
        watcher = open_db(path)
        try:
            # A backend leaves the list a moment after its client hangs up (on a busy machine, later).
            for _ in range(50):
                left = watcher.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(?)", [sorted(backends)]).fetchall()
                if not left:
                    break
                await asyncio.sleep(0.1)
            assert not left
        finally:
            watcher.close()
    else:
        wal = Path(path).with_name(Path(path).name + "-wal")
        assert wal.exists()
        runner.close()
        # SQLite removes the write-ahead log when the last connection to the database closes.
        assert not wal.exists()
    with pytest.raises(RuntimeError):
        await runner.read(notes)
    with pytest.raises(RuntimeError):
        await runner.run(notes)
    runner.close()  # again: nothing left to close, no error
