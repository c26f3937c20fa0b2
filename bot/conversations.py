"""Conversations: per-shopper context, the handoff queue and the measures kept for reports.

A conversation is open from a shopper's first message until it is closed (goodbye, agent
resolve, or inactivity); state says who answers: the bot, the queue, or an agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage.db import Store, lock_for_transaction, percentile

BOT, QUEUED, AGENT, CLOSED = "bot", "queued", "agent", "closed"
IDLE_CLOSE_SECONDS = 2 * 3600  # a bot conversation idle this long counts as finished


class ConversationChangedError(Exception):
    """Another turn saved the conversation (or opened one) since this turn read it: run the turn again."""


@dataclass
class Conversation:
    """The open conversation of one shopper, as the dialogue sees it (``id`` 0: not stored yet)."""

    id: int
    openid: str
    state: str
    misunderstandings: int
    context: dict[str, Any] = field(default_factory=dict)
    handoff_reason: str | None = None
    idle_id: int | None = None  # an idle bot conversation this one replaces, closed when this is stored
    version: int = 0  # as read; each save of what the dialogue remembers checks it and adds one


def current_conversation(db: Store, openid: str, now: float) -> Conversation:
    """The shopper's open conversation as it stands, or a new one not stored yet (read only: the
    turn's changes are written once, with the reply, by ``save_turn``)."""
    row = db.execute(
        "SELECT id, state, misunderstandings, context, handoff_reason, last_message_at, version FROM conversations "
        "WHERE openid = ? AND state != 'closed' ORDER BY id DESC LIMIT 1",
        [openid],
    ).fetchone()
    if row is None:
        return Conversation(0, openid, BOT, 0, {})
    if row[1] == BOT and row[5] < now - IDLE_CLOSE_SECONDS:
        return Conversation(0, openid, BOT, 0, {}, idle_id=row[0])
    return Conversation(row[0], openid, row[1], row[2], json.loads(row[3] or "{}"), row[4], version=row[6])


def store_conversation(db: Store, conv: Conversation, now: float, *, context: bool = True) -> int:
    """Write the conversation's row and return its id: opened if new (closing the idle one it replaces),
    its last message time and, with ``context``, what the dialogue remembers, under the version the turn
    read. Raises ConversationChangedError if another turn saved it, or opened one, since."""
    with db.atomic():
        if conv.idle_id is not None:
            db.execute(
                "UPDATE conversations SET state = 'closed', closed_at = last_message_at, outcome = 'bot_idle' "
                "WHERE id = ? AND state = 'bot'",
                [conv.idle_id],
            )
            conv.idle_id = None
        if conv.id == 0:
            lock_for_transaction(db, f"conversation:{conv.openid}")  # two turns must not both open one
            opened = db.execute(
                "SELECT id FROM conversations WHERE openid = ? AND state != 'closed' ORDER BY id DESC LIMIT 1",
                [conv.openid],
            ).fetchone()
            if opened:
                raise ConversationChangedError(f"conversation {opened[0]} of {conv.openid} opened meanwhile")
            # RETURNING rather than the cursor's lastrowid: the same statement runs on PostgreSQL.
            rows = db.execute(
                "INSERT INTO conversations (openid, state, context, misunderstandings, started_at, last_message_at) "
                "VALUES (?, 'bot', '{}', 0, ?, ?) RETURNING id",
                [conv.openid, now, now],
            ).fetchall()
            conv.id = int(rows[0][0])
        if not context:
            db.execute("UPDATE conversations SET last_message_at = ? WHERE id = ?", [now, conv.id])
            return conv.id
        cursor = db.execute(
            "UPDATE conversations SET last_message_at = ?, context = ?, misunderstandings = ?, version = version + 1 "
            "WHERE id = ? AND version = ?",
            [now, json.dumps(conv.context, ensure_ascii=False), conv.misunderstandings, conv.id, conv.version],
        )
        if cursor.rowcount != 1:
            raise ConversationChangedError(f"conversation {conv.id} saved by another turn since version {conv.version}")
        conv.version += 1
        return conv.id


@dataclass(frozen=True)
class Handoff:
    """A turn's request for an agent: why, and when it was made (the queue's order)."""

    reason: str
    at: float


@dataclass(frozen=True)
class TurnRecord:
    """What one turn changes in its conversation, written with the reply in one transaction."""

    conv: Conversation
    dedup_key: str
    now: float
    save_context: bool = True
    replied_at: float | None = None  # when the bot answered (None: no bot reply)
    presale: bool = False
    fast: bool = False
    close_as: str | None = None  # close the conversation with this outcome
    handoff: Handoff | None = None  # put the conversation in the agents' queue


def save_turn(db: Store, record: TurnRecord) -> None:
    """Store the turn: the conversation row with what the dialogue remembers (under its version), the
    message's link to it, the response measures, a handoff and a closing goodbye (a savepoint inside the
    reply's transaction). Raises ConversationChangedError, writing nothing, if another turn saved first."""
    conv = record.conv
    with db.atomic():
        store_conversation(db, conv, record.now, context=record.save_context)
        db.execute("UPDATE messages SET conversation_id = ? WHERE dedup_key = ?", [conv.id, record.dedup_key])
        if record.replied_at is not None:
            db.execute(
                "UPDATE conversations SET first_response_at = COALESCE(first_response_at, ?), "
                "presale_questions = presale_questions + ?, presale_fast = presale_fast + ? WHERE id = ?",
                [record.replied_at, int(record.presale), int(record.presale and record.fast), conv.id],
            )
        if record.handoff is not None:
            enqueue_handoff(db, conv.id, record.handoff.reason, record.handoff.at)
        if record.close_as:
            close_conversation(db, conv.id, record.close_as, record.now)


def enqueue_handoff(db: Store, conversation_id: int, reason: str, now: float) -> int:
    """Put the conversation in the agents' queue; return its position (1 = next)."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET state = 'queued', needed_human = 1, handoff_reason = ?, "
            "queued_at = COALESCE(queued_at, ?) WHERE id = ? AND state IN ('bot', 'queued')",
            [reason, now, conversation_id],
        )
        return queue_position(db, conversation_id)


def handoff_position(db: Store, conversation_id: int, now: float) -> int:
    """The position ``enqueue_handoff`` at ``now`` would give the conversation (0: not stored yet), read
    only: the turn's handoff is written with its reply."""
    row = db.execute(
        "SELECT count(*) FROM conversations WHERE state = 'queued' AND id != ? AND queued_at <= "
        "COALESCE((SELECT queued_at FROM conversations WHERE id = ?), ?)",
        [conversation_id, conversation_id, now],
    ).fetchone()
    return int(row[0]) + 1


def queue_position(db: Store, conversation_id: int) -> int:
    """Position of a queued conversation (1 = next)."""
    row = db.execute(
        "SELECT count(*) FROM conversations WHERE state = 'queued' AND queued_at <= "
        "(SELECT queued_at FROM conversations WHERE id = ?)",
        [conversation_id],
    ).fetchone()
    return int(row[0])


def close_conversation(db: Store, conversation_id: int, outcome: str, now: float) -> None:
    """Close a conversation with its outcome."""
    with db.atomic():
        db.execute(
            "UPDATE conversations SET state = 'closed', closed_at = ?, outcome = ? WHERE id = ? AND state != 'closed'",
            [now, outcome, conversation_id],
        )


def queue(db: Store, agent: str, limit: int = 100) -> list[dict[str, Any]]:
    """Conversations for the console: waiting ones first (oldest first), then the agent's own."""
    return list(
        db.query(
            "SELECT c.id, c.openid, c.state, c.handoff_reason, c.queued_at, c.claimed_at, c.agent, c.escalated_at, "
            "c.last_message_at, "
            "(SELECT text FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1) "
            "AS last_text FROM conversations c WHERE c.state = 'queued' OR (c.state = 'agent' AND c.agent = ?) "
            "ORDER BY c.state = 'agent', c.queued_at LIMIT ?",
            [agent, limit],
        )
    )


def conversation(db: Store, conversation_id: int) -> dict[str, Any] | None:
    """One conversation row."""
    return next(iter(db.query("SELECT * FROM conversations WHERE id = ?", [conversation_id])), None)


def transcript(db: Store, conversation_id: int) -> list[dict[str, Any]]:
    """Shopper messages (with what the bot understood) and every reply, in time order."""
    conv = conversation(db, conversation_id)
    if conv is None:
        return []
    end = conv["closed_at"] or 1e18
    inbound = db.query(
        "SELECT 'in' AS direction, id, received_at AS at, kind, text, intent, confidence, NULL AS sender, "
        "NULL AS state, NULL AS last_error FROM messages WHERE conversation_id = ?",
        [conversation_id],
    )
    outbound = db.query(
        "SELECT 'out' AS direction, id, created_at AS at, NULL AS kind, text, NULL AS intent, NULL AS confidence, "
        "COALESCE(agent, sender) AS sender, state, last_error FROM outbound "
        "WHERE openid = ? AND created_at >= ? AND created_at <= ?",
        [conv["openid"], conv["started_at"], end],
    )
    return sorted([*inbound, *outbound], key=lambda r: (r["at"], r["direction"] == "out"))


def search_history(db: Store, query: str, limit: int = 100) -> list[dict[str, Any]]:
    """Messages and replies containing ``query``, newest first; Latin letters in either case."""
    # % and _ are LIKE's wildcards: a shopper's "100%" is searched for literally. Both sides are lowered:
    # SQLite's LIKE ignores ASCII case and PostgreSQL's does not.
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    return list(
        db.query(
            "SELECT * FROM (SELECT m.conversation_id, m.openid, m.received_at AS at, 'in' AS direction, m.text "
            "FROM messages m WHERE LOWER(m.text) LIKE ? ESCAPE '\\' UNION ALL SELECT NULL, o.openid, o.created_at, 'out', o.text "
            "FROM outbound o WHERE LOWER(o.text) LIKE ? ESCAPE '\\') AS found ORDER BY at DESC LIMIT ?",
            [like, like, limit],
        )
    )


def window_open(db: Store, openid: str, now: float) -> bool:
    """Is WeChat's 48-hour customer-service window open for this shopper?"""
    row = db.execute("SELECT max(received_at) FROM messages WHERE openid = ? AND channel = 'wechat'", [openid]).fetchone()
    return bool(row and row[0] and now - row[0] < 48 * 3600)


# Below this confidence a message goes to the NLU inbox even when the bot answered it.
REVIEW_BELOW = 0.6
UNSURE_REPLIES = ("nlu_fallback", "clarified", "kb_match", "kb_only")


def nlu_inbox(db: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Shopper messages the bot was unsure about, clarified or handed off, not yet reviewed; newest first."""
    return list(
        db.query(
            "SELECT m.id, m.conversation_id, m.openid, m.received_at AS at, m.text, m.intent AS replied_as, "
            "m.nlu_intent, m.nlu_confidence, m.handed_off FROM messages m "
            "LEFT JOIN nlu_corrections c ON c.message_id = m.id "
            "WHERE c.id IS NULL AND m.kind = 'text' AND m.nlu_intent IS NOT NULL "
            "AND (m.nlu_confidence < ? OR m.handed_off = 1 OR m.intent IN (?, ?, ?, ?)) "
            "ORDER BY m.received_at DESC, m.id DESC LIMIT ?",
            [REVIEW_BELOW, *UNSURE_REPLIES, limit],
        )
    )


def inbox_message(db: Store, message_id: int) -> dict[str, Any] | None:
    """One shopper message with what the model predicted."""
    return next(iter(db.query("SELECT id, text, nlu_intent FROM messages WHERE id = ?", [message_id])), None)


def recent_corrections(db: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The latest verdicts, newest first."""
    return list(
        db.query(
            "SELECT text, intent, predicted, corrected_by, corrected_at FROM nlu_corrections "
            "ORDER BY corrected_at DESC, id DESC LIMIT ?",
            [limit],
        )
    )


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def service_figures(db: Store, since: float, until: float) -> dict[str, Any]:
    """Customer service: messages, conversations, bot resolution, handoffs, latency, 15-second pre-sale answers."""
    span = [since, until]
    messages = db.execute("SELECT count(*) FROM messages WHERE received_at >= ? AND received_at < ?", span).fetchone()[0]
    conversations, human, presale, presale_fast = db.execute(
        "SELECT count(*), sum(needed_human), sum(presale_questions), sum(presale_fast) FROM conversations "
        "WHERE started_at >= ? AND started_at < ?",
        span,
    ).fetchone()
    latency = (
        "SELECT answered_at - received_at AS v FROM messages "
        "WHERE received_at >= ? AND received_at < ? AND answered_at IS NOT NULL"
    )
    p50 = percentile(db, latency, span, 50)
    p95 = percentile(db, latency, span, 95)
    return {
        "messages": messages,
        "conversations": conversations,
        "bot_resolution_rate": _share(conversations - (human or 0), conversations),
        "handoff_rate": _share(human or 0, conversations),
        "reply_latency_p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
        "reply_latency_p95_ms": round(p95 * 1000, 1) if p95 is not None else None,
        "presale_questions": presale or 0,
        "presale_within_15_s": _share(presale_fast or 0, presale or 0),
    }
