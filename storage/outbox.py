"""The durable outbox queue: rows waiting for delivery, leased to one sender, retried with backoff.

Texts to shoppers (``outbound``) and notifications to staff (``notifications``) are both queues
of this kind: a row is ``pending`` until a delivery attempt gives it a final state, a claim
leases it (moves ``next_attempt_at`` past the lease) so that one sender in any process tries it,
and a failure that may pass is retried after ``backoff``. The claim is one statement
(``UPDATE ... RETURNING``) that PostgreSQL will run with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from storage.db import DbRunner, Store

logger = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"
QUEUES = ("outbound", "notifications")  # the table names this module may be given

migrations = Migrations("kefu.storage")


@migrations()
def m001_notifications(db: sqlite_utils.Database) -> None:
    # Databases made before the queue moved here got this table from the reviews' first migration.
    if db.table("notifications").exists():
        return
    db.table("notifications").create(
        {
            "id": int,
            "channel": str,
            "source": str,
            "title": str,
            "body": str,
            "payload": str,
            "state": str,
            "attempts": int,
            "next_attempt_at": float,
            "last_error": str,
            "created_at": float,
            "sent_at": float,
        },
        pk="id",
        defaults={"attempts": 0, "state": "pending"},
    )
    # One notification per channel per source event (a timer firing, an escalation): exactly once.
    db.table("notifications").create_index(["source", "channel"], unique=True)
    db.table("notifications").create_index(["state", "next_attempt_at"])


class DeliveryError(Exception):
    """A delivery that failed for now (network, server error): the row is tried again later."""


@dataclass(frozen=True)
class Delivered:
    """The outcome of one attempt that needs no retry: ``sent`` or a final failure state."""

    state: str = SENT
    error: str | None = None


def backoff(attempts: int) -> float:
    """Seconds before retry number ``attempts + 1``: 2, 4, 8 … capped at 10 minutes."""
    return float(min(600, 2 ** (attempts + 1)))


def _table(name: str) -> str:
    if name not in QUEUES:
        raise ValueError(f"{name} is not an outbox queue")
    return name


def claim_due(db: Store, queue: str, *, now: float, lease_seconds: float, limit: int = 20) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due rows of ``queue`` so only one sender delivers each."""
    table = _table(queue)
    with db.atomic():
        rows = db.execute(
            f"UPDATE {table} SET next_attempt_at = ? WHERE id IN ("  # noqa: S608 - table from QUEUES
            f"SELECT id FROM {table} WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?) "
            "RETURNING *",
            [now + lease_seconds, now, limit],
        )
        columns = [c[0] for c in rows.description]
        found = [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]
    return sorted(found, key=lambda r: int(r["id"]))


def renew_lease(db: Store, queue: str, ids: list[int], *, held_until: float, until: float) -> set[int]:
    """Move the lease on ``ids`` from ``held_until`` to ``until``; return the ids still leased to this sender.

    A row whose lease ran out and was claimed by another sender has a different ``next_attempt_at``
    and is left to that sender.
    """
    table = _table(queue)
    if not ids:
        return set()
    marks = ", ".join("?" * len(ids))
    with db.atomic():
        rows = db.execute(
            f"UPDATE {table} SET next_attempt_at = ? "  # noqa: S608 - table from QUEUES, marks are placeholders
            f"WHERE id IN ({marks}) AND state = 'pending' AND next_attempt_at = ? RETURNING id",
            [until, *ids, held_until],
        ).fetchall()
    return {int(row[0]) for row in rows}


def mark(
    db: Store,
    queue: str,
    row_id: int,
    *,
    state: str,
    now: float,
    error: str | None = None,
    retry_at: float | None = None,
) -> None:
    """Record an attempt's outcome: a final state, or pending with the time of the next try."""
    table = _table(queue)
    with db.atomic():
        db.execute(
            f"UPDATE {table} SET state = ?, attempts = attempts + 1, last_error = ?, "  # noqa: S608 - table from QUEUES
            "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, "
            "next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?",
            [state, error, state, now, retry_at, row_id],
        )


def queue_notification(
    db: Store,
    *,
    source: str,
    channels: list[str],
    title: str,
    body: str,
    payload: dict[str, Any],
    now: float,
) -> int:
    """Queue one notification to staff per channel for an event, once: a repeated source is ignored."""
    queued = 0
    with db.atomic():
        for channel in channels:
            cursor = db.execute(
                "INSERT INTO notifications (channel, source, title, body, payload, state, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (source, channel) DO NOTHING",
                [channel, source, title, body, json.dumps(payload, ensure_ascii=False), now, now],
            )
            queued += cursor.rowcount
    return queued


def notification_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON payload of a stored notification."""
    return dict(json.loads(row.get("payload") or "{}"))


Deliver = Callable[[dict[str, Any]], Awaitable[Delivered]]


class OutboxWorker:
    """Delivers one queue's due rows through ``deliver``; rows survive restarts, so a crash loses nothing.

    ``deliver`` returns a ``Delivered`` outcome or raises ``DeliveryError`` for a failure that may
    pass; after ``max_attempts`` such failures the row is ``failed``. A claim holds its rows for
    ``lease_seconds``, so a row claimed by a process that died is tried again that soon; before
    each row the worker renews the lease on the rest of its batch if less than ``attempt_seconds``
    (the longest one delivery may take; a slower one counts as failed for now) is left.
    """

    def __init__(
        self,
        runner: DbRunner,
        queue: str,
        deliver: Deliver,
        clock: Callable[[], float],
        *,
        max_attempts: int,
        lease_seconds: float = 20.0,
        attempt_seconds: float = 12.0,
    ) -> None:
        self.runner = runner
        self.queue = _table(queue)
        self.deliver = deliver
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.attempt_seconds = attempt_seconds
        self.wake = asyncio.Event()

    async def deliver_due(self) -> int:
        """Try every due row once; return how many were handled."""
        claimed_at = self.clock()
        rows = await self.runner.run(claim_due, self.queue, now=claimed_at, lease_seconds=self.lease_seconds)
        held_until = claimed_at + self.lease_seconds
        handled = 0
        while rows:
            now = self.clock()
            if now + self.attempt_seconds > held_until:
                ids = [int(r["id"]) for r in rows]
                until = now + self.lease_seconds
                kept = await self.runner.run(renew_lease, self.queue, ids, held_until=held_until, until=until)
                if len(kept) < len(ids):
                    logger.warning("%s: lease ran out on %s rows; another sender has them", self.queue, len(ids) - len(kept))
                rows = [r for r in rows if int(r["id"]) in kept]
                held_until = until
                if not rows:
                    break
            await self._attempt(rows.pop(0))
            handled += 1
        return handled

    async def _attempt(self, row: dict[str, Any]) -> None:
        retry_at = None
        try:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that lands as the
                # delivery finishes, and then shutdown waits forever on this loop.
                async with asyncio.timeout(self.attempt_seconds):
                    outcome = await self.deliver(row)
            except TimeoutError as exc:
                raise DeliveryError(f"no outcome within {self.attempt_seconds:g} s") from exc
        except DeliveryError as exc:
            attempts = int(row["attempts"])
            if attempts + 1 >= self.max_attempts:
                outcome = Delivered(FAILED, str(exc))
            else:
                outcome, retry_at = Delivered(PENDING, str(exc)), self.clock() + backoff(attempts)
            logger.warning("%s %s: attempt %s failed (%s)", self.queue, row["id"], attempts + 1, exc)
        await self.runner.run(
            mark, self.queue, int(row["id"]), state=outcome.state, now=self.clock(), error=outcome.error, retry_at=retry_at
        )

    async def run_forever(self, interval: float = 1.0) -> None:
        """Deliver whenever woken or every ``interval`` seconds."""
        while True:
            try:
                while await self.deliver_due():
                    pass
            except Exception:  # keep the loop alive; the rows stay queued for the next pass
                logger.exception("%s outbox pass failed", self.queue)
            try:
                await asyncio.wait_for(self.wake.wait(), interval)
            except TimeoutError:
                pass
            self.wake.clear()
