"""The negative-review workflow: a case per negative review, 30-minute / 24-hour deadlines,
reminders and escalations fired exactly once from timers kept in the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kb.hours import BusinessHours
from reviews import store
from storage.db import Store, skip_locked
from storage.outbox import queue_notification

logger = logging.getLogger(__name__)


class CaseError(Exception):
    """An action that does not fit the case's state or lacks what it needs."""


@dataclass(frozen=True)
class SlaPolicy:
    """Deadlines, counted in clock time or, with a calendar, in opening hours."""

    first_response: float = 30 * 60
    resolution: float = 24 * 3600
    remind_response_before: float = 10 * 60
    remind_resolution_before: float = 4 * 3600
    calendar: BusinessHours | None = None

    def due(self, start: float, seconds: float) -> float:
        """When ``seconds`` of (working) time have passed after ``start``."""
        return self.calendar.add_working_time(start, seconds) if self.calendar else start + seconds


def open_case(db: Store, review_id: str, now: float, policy: SlaPolicy) -> int | None:
    """Open a case with its four timers; None if the review already has one."""
    with db.atomic():
        response_due = policy.due(now, policy.first_response)
        resolution_due = policy.due(now, policy.resolution)
        # The product is copied onto the case so reports filter cases without a join. One statement decides
        # (the unique review_id), so two workers opening the same review's case cannot both get one.
        row = db.execute(
            "INSERT INTO cases (review_id, state, opened_at, response_due, resolution_due, sku) "
            "VALUES (?, 'open', ?, ?, ?, (SELECT sku FROM reviews WHERE review_id = ?)) "
            "ON CONFLICT (review_id) DO NOTHING RETURNING id",
            [review_id, now, response_due, resolution_due, review_id],
        ).fetchone()
        if row is None:
            return None
        case_id = int(row[0])
        timers = [
            ("remind_response", response_due - policy.remind_response_before),
            ("breach_response", response_due),
            ("remind_resolution", resolution_due - policy.remind_resolution_before),
            ("breach_resolution", resolution_due),
        ]
        db.table("case_timers").insert_all([{"case_id": case_id, "kind": kind, "due_at": max(now, due)} for kind, due in timers])
        store.add_event(db, case_id, now, "opened", "system", "差评自动建单")
    return case_id


def _case_state(db: Store, case_id: int) -> str:
    row = db.execute("SELECT state FROM cases WHERE id = ?", [case_id]).fetchone()
    if row is None:
        raise CaseError(f"no case {case_id}")
    return str(row[0])


def record_response(db: Store, case_id: int, now: float, actor: str, note: str) -> None:
    """The first response to the shopper: open -> responded (later responses only add to the timeline)."""
    with db.atomic():
        state = _case_state(db, case_id)
        if state in (store.RESOLVED, store.CLOSED):
            raise CaseError("这个工单已结束")
        if state == store.OPEN:
            db.execute("UPDATE cases SET state = 'responded', responded_at = ? WHERE id = ?", [now, case_id])
        store.add_event(db, case_id, now, "responded", actor, note)


def resolve_case(db: Store, case_id: int, now: float, actor: str, outcome: str, note: str) -> None:
    """Resolve with an outcome; "no_action" needs a reason."""
    if outcome not in store.OUTCOMES:
        raise CaseError(f"处理结果必须是 {', '.join(store.OUTCOMES)} 之一")
    if outcome == "no_action" and not note.strip():
        raise CaseError("不处理时必须填写原因")
    with db.atomic():
        state = _case_state(db, case_id)
        if state in (store.RESOLVED, store.CLOSED):
            raise CaseError("这个工单已结束")
        db.execute(
            "UPDATE cases SET state = 'resolved', resolved_at = ?, responded_at = COALESCE(responded_at, ?), "
            "outcome = ?, outcome_note = ? WHERE id = ?",
            [now, now, outcome, note, case_id],
        )
        store.add_event(db, case_id, now, "resolved", actor, f"{outcome}：{note}" if note else outcome)


def close_case(db: Store, case_id: int, now: float, actor: str, note: str) -> None:
    """Close without resolving (duplicate, spam, withdrawn by the shopper)."""
    if not note.strip():
        raise CaseError("关闭工单必须填写原因")
    with db.atomic():
        if _case_state(db, case_id) == store.CLOSED:
            raise CaseError("这个工单已关闭")
        db.execute("UPDATE cases SET state = 'closed', closed_at = ? WHERE id = ?", [now, case_id])
        store.add_event(db, case_id, now, "closed", actor, note)


_TITLES = {
    "remind_response": "差评即将超时未响应",
    "breach_response": "差评超过30分钟未响应，已升级",
    "remind_resolution": "差评即将超过24小时未解决",
    "breach_resolution": "差评超过24小时未解决，已升级",
}


def _relevant(kind: str, state: str) -> bool:
    if kind.endswith("_response"):
        return state == store.OPEN
    return state in (store.OPEN, store.RESPONDED)


def fire_due_timers(db: Store, now: float, channels: list[str]) -> list[int]:
    """Fire every due timer once: a timeline event, an escalation on breach, one notification per channel.

    Claiming the timer, the event and the notifications commit together, so a crash either
    leaves the timer unfired (it fires after restart) or fired with its notifications queued.
    """
    fired: list[int] = []
    due = [
        r[0] for r in db.execute("SELECT id FROM case_timers WHERE fired_at IS NULL AND due_at <= ? ORDER BY due_at, id", [now])
    ]
    for timer_id in due:
        with db.atomic():
            # On PostgreSQL a timer another process is firing right now is skipped, not waited for.
            claimed = db.execute(
                "UPDATE case_timers SET fired_at = ? WHERE id IN "  # noqa: S608 - fixed clause
                f"(SELECT id FROM case_timers WHERE id = ? AND fired_at IS NULL{skip_locked(db)})",
                [now, timer_id],
            )
            if claimed.rowcount != 1:
                continue  # another process fired it (or is firing it)
            case_id, kind, due_at = db.execute(
                "SELECT case_id, kind, due_at FROM case_timers WHERE id = ?", [timer_id]
            ).fetchone()
            case = store.get_case(db, case_id)
            assert case is not None
            if not _relevant(kind, case["state"]):
                db.execute("UPDATE case_timers SET result = 'skipped' WHERE id = ?", [timer_id])
                continue
            db.execute("UPDATE case_timers SET result = 'fired' WHERE id = ?", [timer_id])
            title = _TITLES[kind]
            if kind.startswith("breach"):
                db.execute("UPDATE cases SET escalated = 1 WHERE id = ?", [case_id])
            store.add_event(db, case_id, now, kind, "system", title)
            body = f"工单 #{case_id}｜{case['rating']}星｜商品 {case['sku'] or '-'}｜{case['content'][:60]}"
            queue_notification(
                db,
                source=f"timer:{timer_id}",
                channels=channels,
                title=title,
                body=body,
                payload={"case_id": case_id, "kind": kind, "due_at": due_at},
                now=now,
            )
            fired.append(timer_id)
    if fired:
        logger.info("fired %d case timers", len(fired))
    return fired
