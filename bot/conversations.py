"""Conversations: per-shopper context, the handoff queue and the measures kept for reports.

A conversation is open from a shopper's first message until it is closed (goodbye, agent
resolve, or inactivity); state says who answers: the bot, the queue, or an agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

BOT, QUEUED, AGENT, CLOSED = "bot", "queued", "agent", "closed"
IDLE_CLOSE_SECONDS = 2 * 3600  # a bot conversation idle this long counts as finished


@dataclass
class Conversation:
    """The open conversation of one shopper, as the dialogue sees it."""

    id: int
    openid: str
    state: str
    misunderstandings: int
    context: dict[str, Any] = field(default_factory=dict)


def open_conversation(db: sqlite_utils.Database, openid: str, now: float) -> Conversation:
    """The shopper's open conversation, or a new one (idle bot conversations are closed first)."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET state = 'closed', closed_at = last_message_at, outcome = 'bot_idle' "
            "WHERE openid = ? AND state = 'bot' AND last_message_at < ?",
            [openid, now - IDLE_CLOSE_SECONDS],
        )
        row = db.execute(
            "SELECT id, state, misunderstandings, context FROM conversations WHERE openid = ? AND state != 'closed' "
            "ORDER BY id DESC LIMIT 1",
            [openid],
        ).fetchone()
        if row:
            db.execute("UPDATE conversations SET last_message_at = ? WHERE id = ?", [now, row[0]])
            return Conversation(row[0], openid, row[1], row[2], json.loads(row[3] or "{}"))
        cursor = db.execute(
            "INSERT INTO conversations (openid, state, context, misunderstandings, started_at, last_message_at) "
            "VALUES (?, 'bot', '{}', 0, ?, ?)",
            [openid, now, now],
        )
        return Conversation(int(cursor.lastrowid or 0), openid, BOT, 0, {})


def save_context(db: sqlite_utils.Database, conv: Conversation) -> None:
    """Persist what the dialogue remembers (last product, pending order choice, misunderstandings)."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET context = ?, misunderstandings = ? WHERE id = ?",
            [json.dumps(conv.context, ensure_ascii=False), conv.misunderstandings, conv.id],
        )


def record_bot_reply(db: sqlite_utils.Database, conversation_id: int, *, now: float, presale: bool, fast: bool) -> None:
    """Note the first response time and, for pre-sale questions, whether it came within 15 s."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET first_response_at = COALESCE(first_response_at, ?), "
            "presale_questions = presale_questions + ?, presale_fast = presale_fast + ? WHERE id = ?",
            [now, int(presale), int(presale and fast), conversation_id],
        )


def link_message(db: sqlite_utils.Database, dedup_key: str, conversation_id: int) -> None:
    """Attach a stored message to its conversation."""
    with db.atomic():
        db.execute("UPDATE messages SET conversation_id = ? WHERE dedup_key = ?", [conversation_id, dedup_key])


def enqueue_handoff(db: sqlite_utils.Database, conversation_id: int, reason: str, now: float) -> int:
    """Put the conversation in the agents' queue; return its position (1 = next)."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET state = 'queued', needed_human = 1, handoff_reason = ?, "
            "queued_at = COALESCE(queued_at, ?) WHERE id = ? AND state IN ('bot', 'queued')",
            [reason, now, conversation_id],
        )
        row = db.execute(
            "SELECT count(*) FROM conversations WHERE state = 'queued' AND queued_at <= "
            "(SELECT queued_at FROM conversations WHERE id = ?)",
            [conversation_id],
        ).fetchone()
    return int(row[0])


def queue_position(db: sqlite_utils.Database, conversation_id: int) -> int:
    """Position of a queued conversation (1 = next)."""
    row = db.execute(
        "SELECT count(*) FROM conversations WHERE state = 'queued' AND queued_at <= "
        "(SELECT queued_at FROM conversations WHERE id = ?)",
        [conversation_id],
    ).fetchone()
    return int(row[0])


def close_conversation(db: sqlite_utils.Database, conversation_id: int, outcome: str, now: float) -> None:
    """Close a conversation with its outcome."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET state = 'closed', closed_at = ?, outcome = ? WHERE id = ? AND state != 'closed'",
            [now, outcome, conversation_id],
        )


def unclaimed_overdue(db: sqlite_utils.Database, now: float, wait_seconds: float) -> list[dict[str, Any]]:
    """Queued conversations nobody claimed within ``wait_seconds`` and not yet escalated."""
    return list(
        db.query(
            "SELECT id, openid FROM conversations WHERE state = 'queued' AND escalated_at IS NULL AND queued_at <= ?",
            [now - wait_seconds],
        )
    )


def mark_escalated(db: sqlite_utils.Database, conversation_id: int, now: float) -> bool:
    """Mark an unclaimed conversation escalated (once)."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE conversations SET escalated_at = ? WHERE id = ? AND escalated_at IS NULL AND state = 'queued'",
            [now, conversation_id],
        )
        return cursor.rowcount == 1
