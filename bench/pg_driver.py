"""Threads and a pool of blocking psycopg connections, or psycopg's async driver: which serves kefu's
store functions on PostgreSQL better?

``python -m bench.pg_driver`` starts a throwaway PostgreSQL server (tests/pg_cluster.py) and runs one
message's database work (store it with its dedup key, then mark it answered and queue its reply in one
transaction: what every message costs) ``MESSAGES`` times at several concurrencies, three ways:

- ``threads+pool``: the real store functions (bot/store.py) through ``DbRunner``: a pool of writer
  threads, each with a pooled connection (what kefu runs);
- ``async``: the same statements awaited on psycopg's ``AsyncConnectionPool`` (what an async
  rewrite of every store function would run);
- ``sqlite``: the same store functions through ``DbRunner`` on a SQLite file, for scale.

It prints messages per second and the p50/p99 of one message's database time for each.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot import store
from storage.db import WRITERS, DbRunner, open_db
from storage.pg import configure
from tests.pg_cluster import cluster

MESSAGES = 2000
CONCURRENCY = (1, 8, 32)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100 * len(ordered)))]


async def drive(one: Callable[[int], Awaitable[None]], concurrency: int, offset: int) -> tuple[float, list[float]]:
    """Run ``one(i)`` for MESSAGES values of i, ``concurrency`` at a time; the rate and each call's seconds."""
    queue = iter(range(offset, offset + MESSAGES))
    times: list[float] = []

    async def worker() -> None:
        for i in queue:
            started = time.perf_counter()
            await one(i)
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return MESSAGES / (time.perf_counter() - started), times


def through_runner(runner: DbRunner) -> Callable[[int], Awaitable[None]]:
    """One message's work through the store functions and a DbRunner."""

    async def one(i: int) -> None:
        message_id = await runner.run(
            store.record_inbound,
            dedup_key=f"m{i}",
            channel="wechat",
            openid=f"o{i % 50}",
            kind="text",
            text="这款茶叶多少钱",
            payload={},
            now=1000.0,
            lease_seconds=30,
        )
        assert message_id is not None
        await runner.run(
            store.finish_message,
            message_id,
            openid=f"o{i % 50}",
            text="西湖龙井 128 元",
            inband_by=None,
            clock=lambda: 1000.0,
            intent="price",
            confidence=0.9,
        )

    return one


def through_async(pool: AsyncConnectionPool) -> Callable[[int], Awaitable[None]]:
    """The same statements awaited on the async driver."""

    async def one(i: int) -> None:
        async with pool.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(
                    "INSERT INTO messages (dedup_key, channel, openid, kind, text, payload, received_at, state, lease_until) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, 'received', %s) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
                    [f"m{i}", "wechat", f"o{i % 50}", "text", "这款茶叶多少钱", json.dumps({}), 1000.0, 1030.0],
                )
                row = await cur.fetchone()
                assert row is not None
            async with conn.transaction():
                await conn.execute(
                    "UPDATE messages SET state = 'answered', answered_at = %s, intent = %s, confidence = %s, "
                    "nlu_intent = %s, nlu_confidence = %s, handed_off = %s WHERE id = %s AND state = 'received'",
                    [1000.0, "price", 0.9, None, None, 0, row[0]],
                )
                await conn.execute(
                    "INSERT INTO outbound (message_id, openid, text, sender, agent, state, created_at, sent_at, next_attempt_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    [row[0], f"o{i % 50}", "西湖龙井 128 元", "bot", None, "pending", 1000.0, None, 1000.0],
                )

    return one


def line(name: str, concurrency: int, rate: float, times: list[float]) -> str:
    p50, p99 = statistics.median(times) * 1000, percentile(times, 99) * 1000
    return f"{name:13} concurrency {concurrency:2}: {rate:6.0f} messages/s, p50 {p50:5.2f} ms, p99 {p99:6.2f} ms"


async def run(url: str, folder: Path) -> list[str]:
    """Every way at every concurrency, each on a fresh schema."""
    admin = psycopg.connect(url, autocommit=True)
    lines = []
    offset = 0
    for concurrency in CONCURRENCY:
        for name in ("threads+pool", "async", "sqlite"):
            schema = f"b_{name.replace('+', '_')}_{concurrency}"
            admin.execute(f"CREATE SCHEMA {schema}")
            target = f"{url}?options=-csearch_path%3D{schema}"
            if name == "sqlite":
                target = str(folder / f"{schema}.db")
            db = open_db(target, [store.migrations])
            if name == "async":
                db.close()
                pool = AsyncConnectionPool(
                    target, min_size=WRITERS, max_size=WRITERS, open=False, configure=_aconfigure, kwargs={"autocommit": True}
                )
                await pool.open(wait=True)
                rate, times = await drive(through_async(pool), concurrency, offset)
                await pool.close()
            else:
                runner = DbRunner(db)
                rate, times = await drive(through_runner(runner), concurrency, offset)
                runner.close()
            offset += MESSAGES
            lines.append(line(name, concurrency, rate, times))
            print(lines[-1], flush=True)
    admin.close()
    return lines


async def _aconfigure(conn: psycopg.AsyncConnection[object]) -> None:
    configure(conn)


def main() -> int:
    """Start the server, measure, print."""
    print(f"{MESSAGES} messages per run; {WRITERS} writer connections for both PostgreSQL drivers", flush=True)
    with cluster() as url, tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(url, Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
