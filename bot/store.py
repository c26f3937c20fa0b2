"""Storage of shopper messages, outbound replies (the outbox) and the shared access_token.

Times are Unix seconds (floats) passed in by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from kb.compliance import ensure_compliant
from storage.db import Store, skip_locked

migrations = Migrations("kefu.bot")

# Outbound states. "inband" was returned in the HTTP answer to WeChat itself.
PENDING, SENT, INBAND, WINDOW_CLOSED, QUOTA, FAILED = (
    "pending",
    "sent",
    "inband",
    "window_closed",
    "quota",
    "failed",
)
FINAL_STATES = (SENT, INBAND, WINDOW_CLOSED, QUOTA, FAILED)


@migrations()
def m001_messages(db: sqlite_utils.Database) -> None:
    db.table("messages").create(
        {
            "id": int,
            "dedup_key": str,
            "channel": str,
            "openid": str,
            "kind": str,
            "text": str,
            "payload": str,
            "received_at": float,
            "state": str,
            "lease_until": float,
            "intent": str,
            "confidence": float,
            "answered_at": float,
        },
        pk="id",
        not_null={"dedup_key", "openid", "kind", "received_at", "state"},
        defaults={"state": "received", "lease_until": 0.0},
    )
    db.table("messages").create_index(["dedup_key"], unique=True)
    db.table("messages").create_index(["state", "lease_until"])
    db.table("messages").create_index(["openid", "received_at"])
    db.table("outbound").create(
        {
            "id": int,
            "message_id": int,
            "openid": str,
            "text": str,
            "sender": str,
            "state": str,
            "attempts": int,
            "next_attempt_at": float,
            "last_error": str,
            "created_at": float,
            "sent_at": float,
        },
        pk="id",
        not_null={"openid", "text", "state", "created_at"},
        defaults={"attempts": 0, "next_attempt_at": 0.0, "sender": "bot"},
    )
    # One bot answer per inbound message, whichever process or retry produced it.
    db.execute(
        "CREATE UNIQUE INDEX idx_outbound_bot_reply ON outbound(message_id) WHERE message_id IS NOT NULL AND sender = 'bot'"
    )
    db.table("outbound").create_index(["state", "next_attempt_at"])
    db.table("wechat_token").create(
        {"appid": str, "access_token": str, "expires_at": float, "refreshing_until": float},
        pk="appid",
        defaults={"expires_at": 0.0, "refreshing_until": 0.0},
    )


@migrations()
def m002_conversations(db: sqlite_utils.Database) -> None:
    db.table("conversations").create(
        {
            "id": int,
            "openid": str,
            "state": str,
            "context": str,
            "misunderstandings": int,
            "started_at": float,
            "last_message_at": float,
            "first_response_at": float,
            "needed_human": int,
            "handoff_reason": str,
            "queued_at": float,
            "claimed_at": float,
            "agent": str,
            "escalated_at": float,
            "closed_at": float,
            "outcome": str,
            "presale_questions": int,
            "presale_fast": int,
        },
        pk="id",
        not_null={"openid", "state", "started_at"},
        defaults={
            "misunderstandings": 0,
            "needed_human": 0,
            "context": "{}",
            "presale_questions": 0,
            "presale_fast": 0,
        },
    )
    db.table("conversations").create_index(["openid", "state"])
    db.table("conversations").create_index(["state", "queued_at"])
    db.table("messages").add_column("conversation_id", int)
    db.table("outbound").add_column("conversation_id", int)


@migrations()
def m003_console(db: sqlite_utils.Database) -> None:
    # The console's own tables (users, sessions, notes, canned replies) were made here before
    # console/store.py had its migrations; they are made there now.
    db.table("outbound").add_column("agent", str)
    db.table("messages").create_index(["conversation_id"])


@dataclass(frozen=True)
class Understood:
    """What the intent model made of a message, kept for the agents' NLU inbox."""

    intent: str
    confidence: float
    handed_off: bool = False


@migrations()
def m004_understood(db: sqlite_utils.Database) -> None:
    # What the intent model said of each message, for the NLU inbox (the reply's intent may be
    # "clarified" or "kb_match" instead).
    db.table("messages").add_column("nlu_intent", str)
    db.table("messages").add_column("nlu_confidence", float)
    db.table("messages").add_column("handed_off", int, not_null_default=0)


@migrations()
def m005_conversation_version(db: sqlite_utils.Database) -> None:
    # Every save of what the dialogue remembers checks and bumps it: of two messages of one shopper
    # answered at once, the second turn runs again instead of overwriting the first (issue 14).
    db.table("conversations").add_column("version", int, not_null_default=0)


def record_inbound(
    db: Store,
    *,
    dedup_key: str,
    channel: str,
    openid: str,
    kind: str,
    text: str,
    payload: dict[str, Any],
    now: float,
    lease_seconds: float,
) -> int | None:
    """Store a message and lease it for processing; None when it was seen before."""
    with db.atomic():
        row = db.execute(
            "INSERT INTO messages (dedup_key, channel, openid, kind, text, payload, received_at, state, lease_until) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'received', ?) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            [dedup_key, channel, openid, kind, text, json.dumps(payload, ensure_ascii=False), now, now + lease_seconds],
        ).fetchone()
    return None if row is None else int(row[0])


def finish_message(
    db: Store,
    message_id: int,
    *,
    openid: str,
    text: str | None,
    inband_by: float | None,
    clock: Callable[[], float],
    intent: str | None,
    confidence: float | None,
    understood: Understood | None = None,
    persist: Callable[[Store], None] | None = None,
) -> Finished | None:
    """Mark a message answered and store its reply: sent in band, or queued for the API.

    The reply counts as sent in band only if this write commits before ``inband_by`` (WeChat stops
    waiting for the HTTP answer); otherwise, or with ``inband_by`` None, it is queued for the
    customer-service API. Returns None when another worker had already answered the message.
    """
    nlu = (understood.intent, understood.confidence, int(understood.handed_off)) if understood else (None, None, 0)
    with db.atomic():
        now = clock()
        cursor = db.execute(
            "UPDATE messages SET state = 'answered', answered_at = ?, intent = ?, confidence = ?, "
            "nlu_intent = ?, nlu_confidence = ?, handed_off = ? WHERE id = ? AND state = 'received'",
            [now, intent, confidence, *nlu, message_id],
        )
        if cursor.rowcount == 0:
            return None
        if persist is not None:
            persist(db)  # the conversation's side of the turn, in this same transaction
        if text is None:
            return Finished(None, inband=False)
        # The UPDATE above holds the write lock: the time read now bounds when this commits.
        inband = inband_by is not None and clock() < inband_by
        outbound_id = enqueue_text(
            db, openid=openid, text=text, sender="bot", now=now, message_id=message_id, state=INBAND if inband else PENDING
        )
        return Finished(outbound_id, inband=inband)


@dataclass(frozen=True)
class Finished:
    """A stored reply: its outbound row (None for no text), and whether it goes in the HTTP answer."""

    outbound_id: int | None
    inband: bool


def enqueue_text(
    db: Store,
    *,
    openid: str,
    text: str,
    sender: str,
    now: float,
    message_id: int | None = None,
    agent: str | None = None,
    state: str = PENDING,
) -> int:
    """Queue a text to a shopper (bot replies, agent replies, notices): every outbound text comes here.

    The compliance check is made here, so no path can queue a text that breaks the review or
    sharing rules: ComplianceError rolls back the caller's whole transaction. A text in state
    ``inband`` went out in the HTTP answer to WeChat itself and is recorded as sent.
    """
    ensure_compliant(text)
    with db.atomic():
        row = db.execute(
            "INSERT INTO outbound (message_id, openid, text, sender, agent, state, created_at, sent_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [message_id, openid, text, sender, agent, state, now, now if state == INBAND else None, now],
        ).fetchone()
        return int(row[0])


def claim_stale_messages(db: Store, *, now: float, lease_seconds: float, limit: int = 20) -> list[dict[str, Any]]:
    """Take over messages whose processing lease ran out (their process died), oldest first.

    One statement leases and returns them, so two processes never take the same message (on
    PostgreSQL the inner SELECT takes ``FOR UPDATE SKIP LOCKED``).
    """
    with db.atomic():
        cursor = db.execute(
            "UPDATE messages SET lease_until = ? WHERE id IN (SELECT id FROM messages "  # noqa: S608 - fixed clause
            f"WHERE state = 'received' AND channel = 'wechat' AND lease_until < ? ORDER BY id LIMIT ?{skip_locked(db)}) "
            "RETURNING id, dedup_key, channel, openid, kind, text, payload, received_at",
            [now + lease_seconds, now, limit],
        )
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return sorted(rows, key=lambda r: int(r["id"]))


def outbound_state(db: Store, outbound_id: int) -> dict[str, Any]:
    """One outbound row, for callers that show delivery state."""
    return dict(db.table("outbound").get(outbound_id))


def pending_outbound_count(db: Store) -> int:
    """How many texts still wait for delivery."""
    return int(db.execute("SELECT count(*) FROM outbound WHERE state = 'pending'").fetchone()[0])


def read_token(db: Store, appid: str, now: float, margin: float) -> str | None:
    """The shared access_token if it is still valid for at least ``margin`` seconds."""
    row = db.execute("SELECT access_token, expires_at FROM wechat_token WHERE appid = ?", [appid]).fetchone()
    if row and row[0] and row[1] - margin > now:
        return str(row[0])
    return None


def claim_token_refresh(db: Store, appid: str, now: float, hold: float, margin: float) -> bool:
    """Become the one refresher for ``hold`` seconds, if nobody is and no valid token exists."""
    with db.atomic():
        db.execute(
            "INSERT INTO wechat_token (appid, expires_at, refreshing_until) VALUES (?, 0, 0) ON CONFLICT (appid) DO NOTHING",
            [appid],
        )
        # The validity check sits in the same statement, so a process that read "no token"
        # just before another stored one does not fetch a second token.
        cursor = db.execute(
            "UPDATE wechat_token SET refreshing_until = ? WHERE appid = ? AND refreshing_until < ? "
            "AND NOT (access_token IS NOT NULL AND access_token != '' AND expires_at - ? > ?)",
            [now + hold, appid, now, margin, now],
        )
        return cursor.rowcount == 1


def store_token(db: Store, appid: str, token: str, expires_at: float) -> None:
    """Save a fresh token for every process and release the refresh claim."""
    with db.atomic():
        db.execute(
            "UPDATE wechat_token SET access_token = ?, expires_at = ?, refreshing_until = 0 WHERE appid = ?",
            [token, expires_at, appid],
        )


def forget_token(db: Store, appid: str, token: str) -> None:
    """Drop a token WeChat called invalid, unless another process already replaced it."""
    with db.atomic():
        db.execute("UPDATE wechat_token SET expires_at = 0 WHERE appid = ? AND access_token = ?", [appid, token])
