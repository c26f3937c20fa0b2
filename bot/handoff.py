"""What agents do with a handed-off conversation, and the escalation of one nobody claims.

Each use case that changes several rows is one function in one write transaction: an error
anywhere (the conversation is no longer the agent's, the text breaks a compliance rule) rolls
back every row, and a crash leaves either all of it or none. A change of who holds the
conversation bumps its version, so a bot turn running meanwhile is re-run on the new state.
"""

from __future__ import annotations

from bot import conversations as conv_store
from bot import store, texts
from storage.db import Store, skip_locked
from storage.outbox import queue_notification


class HandoffError(Exception):
    """An agent's action that does not fit the conversation's state (shown to the agent)."""


def claim(db: Store, conversation_id: int, agent: str, now: float) -> None:
    """Take a queued conversation."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE conversations SET state = 'agent', agent = ?, claimed_at = ?, version = version + 1, "
            "first_response_at = COALESCE(first_response_at, ?) WHERE id = ? AND state = 'queued'",
            [agent, now, now, conversation_id],
        )
        if cursor.rowcount != 1:
            raise HandoffError("这个会话已被其他客服接入")


def reply(db: Store, conversation_id: int, agent: str, text: str, now: float) -> int:
    """Queue the agent's reply to the shopper: only in a conversation the agent holds."""
    if not text:
        raise HandoffError("回复内容不能为空")
    with db.atomic():
        conv = conv_store.conversation(db, conversation_id)
        if conv is None or conv["state"] != conv_store.AGENT or conv["agent"] != agent:
            raise HandoffError("请先接入会话再回复")
        return store.enqueue_text(db, openid=conv["openid"], text=text, sender="agent", agent=agent, now=now)


def resolve(db: Store, conversation_id: int, agent: str, now: float) -> None:
    """Close a conversation the agent handled."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE conversations SET state = 'closed', closed_at = ?, outcome = 'agent_resolved', version = version + 1 "
            "WHERE id = ? AND state = 'agent' AND agent = ?",
            [now, conversation_id, agent],
        )
        if cursor.rowcount != 1:
            raise HandoffError("只能结束自己接待中的会话")


def hand_back(db: Store, conversation_id: int, agent: str, now: float) -> None:
    """Give the conversation back to the bot and tell the shopper, together."""
    with db.atomic():
        row = db.execute(
            "UPDATE conversations SET state = 'bot', agent = NULL, misunderstandings = 0, version = version + 1 "
            "WHERE id = ? AND state = 'agent' AND agent = ? RETURNING openid",
            [conversation_id, agent],
        ).fetchone()
        if row is None:
            raise HandoffError("只能交还自己接待中的会话")
        store.enqueue_text(db, openid=row[0], text=texts.AGENT_HANDBACK, sender="bot", now=now)


def escalate_unclaimed(db: Store, now: float, wait_seconds: float, channels: list[str]) -> list[int]:
    """Apologise to each shopper nobody claimed within ``wait_seconds`` and tell the managers, once.

    Marking the conversation, the apology and the managers' notifications commit together, one
    conversation per transaction, so a crash never leaves one marked without its apology.
    """
    due = [
        r[0]
        for r in db.execute(
            "SELECT id FROM conversations WHERE state = 'queued' AND escalated_at IS NULL AND queued_at <= ? ORDER BY id",
            [now - wait_seconds],
        )
    ]
    done = []
    for conversation_id in due:
        with db.atomic():
            row = db.execute(
                "UPDATE conversations SET escalated_at = ? WHERE id IN (SELECT id FROM conversations "  # noqa: S608 - fixed clause
                f"WHERE id = ? AND escalated_at IS NULL AND state = 'queued'{skip_locked(db)}) RETURNING openid",
                [now, conversation_id],
            ).fetchone()
            if row is None:
                continue  # claimed or escalated meanwhile, by this process or another
            openid = str(row[0])
            store.enqueue_text(db, openid=openid, text=texts.ESCALATION_APOLOGY, sender="bot", now=now)
            queue_notification(
                db,
                source=f"handoff:{conversation_id}",
                channels=channels,
                title="顾客等待人工超时",
                body=f"会话 #{conversation_id}（{openid}）转人工后 {int(wait_seconds // 60)} 分钟无人接入",
                payload={"conversation_id": conversation_id},
                now=now,
            )
            done.append(conversation_id)
    return done
