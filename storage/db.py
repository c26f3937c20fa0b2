"""SQLite plumbing shared by every store: open, migrate, and run work off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

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
