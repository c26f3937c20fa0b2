"""Small helpers shared by the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kb.encoder import Encoder
from kb.search import KnowledgeBase
from storage.db import DbRunner, dialect, open_db


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate`` holds, polling every 20 ms; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def free_port() -> int:
    """An unused loopback port, for a server started as its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StoredVectors:
    """The real encoder with its vectors kept on disk between test runs (the suite embeds the same
    shops and questions every time). The file is named after the encoder and its export's stamp, so
    a new model, export or variant starts an empty one; a text not in it is embedded by the model,
    alone, so its vector does not depend on which tests ran before."""

    def __init__(self, inner: Encoder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self._added = 0
        self._lock = threading.Lock()
        self._vectors = self._stored()

    def _stored(self) -> dict[str, np.ndarray]:
        if not self.path.exists():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                return dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            return {}  # a torn or old file: embed again

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            # One text per run: the int8 model quantises each run's activations with one scale, so a
            # text's vector moves a little with the texts beside it; alone it is the same in every run.
            fresh = np.vstack([self.inner.encode([text]) for text in missing])
            with self._lock:
                self._vectors.update(zip(missing, fresh, strict=True))
                self._added += len(missing)
        if not texts:
            return self.inner.encode([])
        with self._lock:
            return np.vstack([self._vectors[t] for t in texts]).astype(np.float32)

    def save(self) -> None:
        """Write the vectors if any were added (temp file, then rename: a reader never sees half a file)."""
        if not self._added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        vectors = {**self._stored(), **self._vectors}  # what another test process saved meanwhile, too
        texts = list(vectors)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, texts=np.array(texts), vectors=np.vstack([vectors[t] for t in texts]))
        tmp.replace(self.path)


# The new_db fixture (tests/conftest.py): a database name in, what open_db takes out.
NewDb = Callable[[str], str]
# open_shop(name, encoder): a dev shop imported from bench/data/shops, its runner and knowledge base.
OpenShop = Callable[[str, Encoder], tuple[DbRunner, KnowledgeBase]]


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
