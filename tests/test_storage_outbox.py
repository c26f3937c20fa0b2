"""The outbox's lease: a row held by a sender that died is retried soon; a long batch keeps its rows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storage.db import DbRunner, open_db
from storage.outbox import Delivered, OutboxWorker, claim_due, migrations, queue_notification
from tests.conftest import Clock
from tests.helpers import NewDb


def queue(runner_db: Any, n: int, now: float) -> None:
    for i in range(n):
        queue_notification(runner_db, source=f"event-{i}", channels=["log"], title=f"t{i}", body="", payload={}, now=now)


async def test_row_leased_by_a_dead_sender_is_delivered_after_the_lease(
    new_db: NewDb, clock: Clock, make_runner: Callable[..., DbRunner]
) -> None:
    db = open_db(new_db("q.db"), [migrations])
    runner = make_runner(db)
    queue(db, 1, clock())
    # A sender claimed the row and died before recording any outcome.
    assert len(claim_due(db, "notifications", now=clock(), lease_seconds=20)) == 1
    sent: list[str] = []

    async def deliver(row: dict[str, Any]) -> Delivered:
        sent.append(row["title"])
        return Delivered()

    worker = OutboxWorker(runner, "notifications", deliver, clock, max_attempts=3, lease_seconds=20)
    clock.now += 19
    assert await worker.deliver_due() == 0
    clock.now += 2
    assert await worker.deliver_due() == 1
    assert sent == ["t0"]
    assert db.execute("SELECT state FROM notifications").fetchone()[0] == "sent"


async def test_long_batch_renews_its_lease_so_no_other_sender_takes_its_rows(
    new_db: NewDb, clock: Clock, make_runner: Callable[..., DbRunner]
) -> None:
    db = open_db(new_db("q.db"), [migrations])
    runner = make_runner(db)
    queue(db, 6, clock())
    sent: list[str] = []
    other: list[dict[str, Any]] = []

    async def slow_deliver(row: dict[str, Any]) -> Delivered:
        sent.append(row["title"])
        clock.now += 4  # each delivery takes 4 s: six of them outlast the 20 s lease
        # Another sender polling meanwhile finds nothing due: the rest of the batch stays leased.
        other.extend(claim_due(db, "notifications", now=clock(), lease_seconds=20))
        return Delivered()

    worker = OutboxWorker(runner, "notifications", slow_deliver, clock, max_attempts=3, lease_seconds=20, attempt_seconds=5)
    assert await worker.deliver_due() == 6
    assert sent == [f"t{i}" for i in range(6)]
    assert other == []
    assert [r[0] for r in db.execute("SELECT state FROM notifications ORDER BY id")] == ["sent"] * 6


class PausedAfterClaim(Clock):
    """A clock whose second reading comes 25 s after the first, with another sender's claim between:
    the process was paused (a stalled VM, a stopped container) right after it claimed."""

    def __init__(self, start: float, meanwhile: Callable[[float], None]) -> None:
        super().__init__(start)
        self.readings = 0
        self.meanwhile = meanwhile

    def __call__(self) -> float:
        self.readings += 1
        if self.readings == 2:
            self.now += 25
            self.meanwhile(self.now)
        return self.now


async def test_rows_whose_lease_ran_out_and_were_taken_are_not_sent_twice(
    new_db: NewDb, clock: Clock, make_runner: Callable[..., DbRunner]
) -> None:
    db = open_db(new_db("q.db"), [migrations])
    runner = make_runner(db)
    queue(db, 3, clock())
    taken: list[dict[str, Any]] = []
    paused = PausedAfterClaim(clock(), lambda now: taken.extend(claim_due(db, "notifications", now=now, lease_seconds=20)))
    sent: list[str] = []

    async def deliver(row: dict[str, Any]) -> Delivered:
        sent.append(row["title"])
        return Delivered()

    worker = OutboxWorker(runner, "notifications", deliver, paused, max_attempts=3, lease_seconds=20, attempt_seconds=5)
    assert await worker.deliver_due() == 0
    assert sent == []
    assert sorted(r["title"] for r in taken) == ["t0", "t1", "t2"]


async def test_delivery_that_hangs_counts_as_failed_for_now(
    new_db: NewDb, clock: Clock, make_runner: Callable[..., DbRunner]
) -> None:
    db = open_db(new_db("q.db"), [migrations])
    runner = make_runner(db)
    queue(db, 1, clock())

    async def hang(row: dict[str, Any]) -> Delivered:
        await asyncio.sleep(30)
        return Delivered()

    worker = OutboxWorker(runner, "notifications", hang, clock, max_attempts=3, lease_seconds=20, attempt_seconds=0.2)
    assert await worker.deliver_due() == 1
    state, attempts, error = db.execute("SELECT state, attempts, last_error FROM notifications").fetchone()
    assert (state, attempts) == ("pending", 1)
    assert "0.2 s" in error


def test_two_concurrent_claimers_never_claim_the_same_row(new_db: NewDb) -> None:
    """Two senders (two connections, two threads) claim from one queue at the same time: every row is
    claimed once. On PostgreSQL the claim's FOR UPDATE SKIP LOCKED is what keeps them apart; without
    it the second UPDATE re-checks only ``id IN (...)`` once the first commits and leases the row again."""
    target = new_db("claims.db")
    setup = open_db(target, [migrations])
    with setup.atomic():
        setup.table("notifications").insert_all(
            {"channel": "log", "source": f"event-{i}", "title": "", "body": "", "payload": "{}", "next_attempt_at": 0.0}
            for i in range(2000)
        )
    setup.close()
    together = threading.Barrier(2)

    def claimer() -> list[int]:
        db = open_db(target)
        claimed: list[int] = []
        try:
            together.wait(30)
            while rows := claim_due(db, "notifications", now=100.0, lease_seconds=600, limit=10):
                claimed.extend(int(r["id"]) for r in rows)
                time.sleep(0.001)  # as a sender delivers between claims: on SQLite the other then gets the lock
        finally:
            db.close()
        return claimed

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = (f.result() for f in [pool.submit(claimer), pool.submit(claimer)])
    assert first and second  # both claimed rows: the two really ran side by side
    assert sorted(first + second) == list(range(1, 2001))  # every row once, none by both
