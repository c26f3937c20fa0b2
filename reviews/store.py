"""Reviews, their tags, and negative-review cases with durable timers.

Times are Unix seconds passed in by the caller; review times are also kept as given (ISO 8601).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from storage.db import Store

migrations = Migrations("kefu.reviews")

OPEN, RESPONDED, RESOLVED, CLOSED = "open", "responded", "resolved", "closed"
OUTCOMES = ("refund", "replacement", "coupon", "explanation", "no_action")
TIMER_KINDS = ("remind_response", "breach_response", "remind_resolution", "breach_resolution")


@migrations()
def m001_reviews(db: sqlite_utils.Database) -> None:
    db.table("reviews").create(
        {
            "review_id": str,
            "order_id": str,
            "sku": str,
            "openid": str,
            "rating": int,
            "content": str,
            "created_at": str,
            "created_ts": float,
            "received_ts": float,
            "sentiment": str,
            "probability": float,
            "needs_look": int,
        },
        pk="review_id",
        not_null={"rating", "content", "created_at", "created_ts"},
        defaults={"needs_look": 0},
    )
    # Covering indexes: report queries read only these, never the table rows.
    db.table("reviews").create_index(["created_ts", "rating", "sentiment", "sku"])
    db.table("reviews").create_index(["sku", "created_ts"])
    # created_ts and sku are copied from the review so reports filter aspects without a join.
    db.table("review_aspects").create(
        {
            "review_id": str,
            "aspect": str,
            "polarity": str,
            "keyword": str,
            "clause": str,
            "created_ts": float,
            "sku": str,
        },
        foreign_keys=[("review_id", "reviews", "review_id")],
    )
    db.table("review_aspects").create_index(["review_id"])
    db.table("review_aspects").create_index(["created_ts", "sku", "aspect", "polarity", "keyword"])
    db.table("cases").create(
        {
            "id": int,
            "review_id": str,
            "state": str,
            "opened_at": float,
            "response_due": float,
            "resolution_due": float,
            "responded_at": float,
            "resolved_at": float,
            "closed_at": float,
            "outcome": str,
            "outcome_note": str,
            "escalated": int,
            "sku": str,
        },
        pk="id",
        not_null={"review_id", "state", "opened_at", "response_due", "resolution_due"},
        defaults={"escalated": 0},
        foreign_keys=[("review_id", "reviews", "review_id")],
    )
    db.table("cases").create_index(["review_id"], unique=True)
    db.table("cases").create_index(["state"])
    db.table("cases").create_index(["opened_at", "sku"])
    db.table("report_pushes").create({"period": str, "sent_at": float}, pk="period")
    db.table("case_events").create(
        {"id": int, "case_id": int, "at": float, "kind": str, "actor": str, "note": str},
        pk="id",
        foreign_keys=[("case_id", "cases", "id")],
    )
    db.table("case_events").create_index(["case_id", "at"])
    db.table("case_timers").create(
        {"id": int, "case_id": int, "kind": str, "due_at": float, "fired_at": float, "result": str},
        pk="id",
        foreign_keys=[("case_id", "cases", "id")],
    )
    db.table("case_timers").create_index(["case_id", "kind"], unique=True)
    db.table("case_timers").create_index(["fired_at", "due_at"])
    # The notifications queue is created by storage.outbox's migrations, which run first.


@dataclass(frozen=True)
class ReviewRow:
    """A review ready to store: the CSV/JSON fields plus its tags."""

    review_id: str
    order_id: str
    sku: str
    openid: str
    rating: int
    content: str
    created_at: str
    created_ts: float


def existing_review_ids(db: Store, ids: list[str]) -> set[str]:
    """Which of these review ids are already stored (ingest is idempotent)."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in db.execute(f"SELECT review_id FROM reviews WHERE review_id IN ({marks})", chunk))  # noqa: S608 - placeholders only
    return found


def rated_reviews(db: Store) -> list[tuple[str, int]]:
    """(content, rating) of the shop's reviews whose stars say which way they lean: 3 stars say too little."""
    return [(r["content"], r["rating"]) for r in db.table("reviews").rows_where("rating != 3", select="content, rating")]


def add_event(db: Store, case_id: int, at: float, kind: str, actor: str, note: str = "") -> None:
    """Append to a case's timeline."""
    db.table("case_events").insert({"case_id": case_id, "at": at, "kind": kind, "actor": actor, "note": note})


def get_case(db: Store, case_id: int) -> dict[str, Any] | None:
    """A case with its review."""
    rows = db.query(
        "SELECT c.*, r.content, r.rating, r.sku, r.openid, r.order_id, r.created_at AS review_created_at, "
        "r.sentiment, r.probability, r.needs_look FROM cases c JOIN reviews r USING (review_id) WHERE c.id = ?",
        [case_id],
    )
    return next(iter(rows), None)


def case_timeline(db: Store, case_id: int) -> list[dict[str, Any]]:
    """A case's events, oldest first."""
    return list(db.table("case_events").rows_where("case_id = ?", [case_id], order_by="at, id"))


def review_aspects(db: Store, review_id: str) -> list[dict[str, Any]]:
    """The aspect tags of one review."""
    return list(db.table("review_aspects").rows_where("review_id = ?", [review_id]))


# A case is overdue when it still waits for its first response past the response deadline, or
# for its resolution past the resolution deadline: the one rule the case list and the report share.
# Both placeholders take the time "now".
OVERDUE = "((c.state = 'open' AND c.response_due < ?) OR (c.state IN ('open', 'responded') AND c.resolution_due < ?))"


def list_cases(db: Store, *, state: str | None, now: float, only_overdue: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """Cases for the console list, newest first, each marked ``overdue`` or not at ``now``."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if state:
        where.append("c.state = ?")
        params.append(state)
    if only_overdue:
        where.append(OVERDUE)
        params.extend([now, now])
    # Only the fixed conditions above are joined in; every value is a placeholder.
    sql = (
        "SELECT c.id, c.review_id, c.state, c.opened_at, c.response_due, c.resolution_due, "  # noqa: S608
        f"c.responded_at, c.resolved_at, c.outcome, c.escalated, {OVERDUE} AS overdue, "
        "r.rating, r.content, r.sku FROM cases c JOIN reviews r USING (review_id) WHERE "
        + " AND ".join(where)
        + " ORDER BY c.opened_at DESC LIMIT ?"
    )
    params = [now, now, *params]
    return [dict(r) for r in db.query(sql, [*params, limit])]
