"""Each use case that changes several rows is one write transaction: all of it happens, or none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

import server
from bot import handoff, texts
from bot import store as bot_store
from console.cases import reply_to_case
from kb import store as kb_store
from kb.compliance import ComplianceError
from reviews import store as review_store
from reviews import workflow
from storage.db import open_db
from storage.outbox import claim_due, queue_notification
from tests.helpers import NewDb, allow_insert, fail_on_insert, insert_failure

NOW = 1_764_036_000.0
BANNED = "亲，给个好评返现5元哦"  # a reward for a good review: never sent


@pytest.fixture
def db(new_db: NewDb) -> sqlite_utils.Database:
    database = open_db(new_db("k.db"), server.MIGRATIONS)
    yield database
    database.close()


def outbound(db: sqlite_utils.Database) -> list[dict[str, object]]:
    return [dict(r) for r in db.query("SELECT openid, text, sender, state FROM outbound ORDER BY id")]


def conversation(db: sqlite_utils.Database, openid: str, state: str, **fields: object) -> int:
    row = {"openid": openid, "state": state, "started_at": NOW - 600, "last_message_at": NOW - 600, **fields}
    return int(db.table("conversations").insert(row).last_pk)


def case_for(db: sqlite_utils.Database, openid: str) -> int:
    db.table("reviews").insert(
        {
            "review_id": "R1",
            "order_id": "O1",
            "sku": "TEA-001",
            "openid": openid,
            "rating": 1,
            "content": "包装破了，茶叶撒了一地",
            "created_at": "2025-11-25T10:00:00+08:00",
            "created_ts": NOW - 300,
            "sentiment": "negative",
            "probability": 0.05,
            "needs_look": 0,
        }
    )
    case_id = workflow.open_case(db, "R1", NOW - 300, workflow.SlaPolicy())
    assert case_id is not None
    # The shopper wrote to the official account a minute ago: the 48-hour window is open.
    db.table("messages").insert(
        {
            "dedup_key": "m1",
            "channel": "wechat",
            "openid": openid,
            "kind": "text",
            "text": "在吗",
            "received_at": NOW - 60,
            "state": "answered",
        }
    )
    return case_id


def test_every_text_to_a_shopper_is_checked_where_it_is_queued(db: sqlite_utils.Database) -> None:
    with pytest.raises(ComplianceError) as caught:
        bot_store.enqueue_text(db, openid="o1", text=BANNED, sender="agent", now=NOW)
    assert caught.value.violations[0].rule == "reward_for_review"
    assert outbound(db) == []
    bot_store.enqueue_text(db, openid="o1", text="您好，已为您补发", sender="agent", now=NOW)
    assert [r["text"] for r in outbound(db)] == ["您好，已为您补发"]


def test_replying_to_a_case_resolved_meanwhile_sends_nothing(db: sqlite_utils.Database) -> None:
    case_id = case_for(db, "oShopper")
    workflow.resolve_case(db, case_id, NOW - 10, "li", "refund", "已退款")
    with pytest.raises(workflow.CaseError):
        reply_to_case(db, case_id, "wang", "非常抱歉，我们马上为您补发", NOW)
    assert outbound(db) == []
    assert [e["kind"] for e in review_store.case_timeline(db, case_id)] == ["opened", "resolved"]


def test_a_case_reply_that_breaks_a_rule_leaves_the_case_open(db: sqlite_utils.Database) -> None:
    case_id = case_for(db, "oShopper")
    with pytest.raises(ComplianceError):
        reply_to_case(db, case_id, "wang", "删除差评就给您补偿20元", NOW)
    case = review_store.get_case(db, case_id)
    assert case is not None and case["state"] == "open" and case["responded_at"] is None
    assert outbound(db) == []


def test_a_case_reply_records_the_response_and_queues_the_message_together(db: sqlite_utils.Database) -> None:
    case_id = case_for(db, "oShopper")
    reply_to_case(db, case_id, "wang", "非常抱歉，我们马上为您补发", NOW)
    case = review_store.get_case(db, case_id)
    assert case is not None and case["state"] == "responded" and case["responded_at"] == NOW
    assert outbound(db) == [{"openid": "oShopper", "text": "非常抱歉，我们马上为您补发", "sender": "wang", "state": "pending"}]


def test_escalation_marks_apologises_and_notifies_or_does_none_of_it(db: sqlite_utils.Database) -> None:
    waiting = conversation(db, "oWaiting", "queued", queued_at=NOW - 400, needed_human=1)
    conversation(db, "oRecent", "queued", queued_at=NOW - 100, needed_human=1)
    fail_on_insert(db, "notifications")
    with pytest.raises(insert_failure(db)):
        handoff.escalate_unclaimed(db, NOW, 300, ["console", "wecom"])
    row = db.table("conversations").get(waiting)
    assert row["escalated_at"] is None and outbound(db) == []  # the apology was rolled back with the mark
    allow_insert(db, "notifications")
    assert handoff.escalate_unclaimed(db, NOW, 300, ["console", "wecom"]) == [waiting]
    assert outbound(db) == [{"openid": "oWaiting", "text": texts.ESCALATION_APOLOGY, "sender": "bot", "state": "pending"}]
    assert [r["channel"] for r in claim_due(db, "notifications", now=NOW, lease_seconds=60)] == ["console", "wecom"]
    assert handoff.escalate_unclaimed(db, NOW + 60, 300, ["console", "wecom"]) == []  # once per conversation


def test_handing_back_changes_the_conversation_only_with_its_notice(db: sqlite_utils.Database) -> None:
    conv = conversation(db, "oAgent", "agent", agent="wang", claimed_at=NOW - 60)
    fail_on_insert(db, "outbound")
    with pytest.raises(insert_failure(db)):
        handoff.hand_back(db, conv, "wang", NOW)
    assert db.table("conversations").get(conv)["state"] == "agent"
    allow_insert(db, "outbound")
    with pytest.raises(handoff.HandoffError):
        handoff.hand_back(db, conv, "li", NOW)  # not li's conversation
    before = db.table("conversations").get(conv)["version"]
    handoff.hand_back(db, conv, "wang", NOW)
    after = db.table("conversations").get(conv)
    # A bot turn that read the conversation before the hand-back must not save over it: it is re-run.
    assert after["state"] == "bot" and after["version"] == before + 1
    assert [r["text"] for r in outbound(db)] == [texts.AGENT_HANDBACK]


def test_an_agent_replies_only_in_a_conversation_they_hold(db: sqlite_utils.Database) -> None:
    queued = conversation(db, "oQueued", "queued", queued_at=NOW - 60)
    with pytest.raises(handoff.HandoffError):
        handoff.reply(db, queued, "wang", "您好", NOW)
    handoff.claim(db, queued, "wang", NOW)
    with pytest.raises(handoff.HandoffError):
        handoff.claim(db, queued, "li", NOW)  # already taken
    with pytest.raises(ComplianceError):
        handoff.reply(db, queued, "wang", BANNED, NOW)
    handoff.reply(db, queued, "wang", "您好，我来帮您看看", NOW)
    assert outbound(db) == [{"openid": "oQueued", "text": "您好，我来帮您看看", "sender": "agent", "state": "pending"}]


def test_a_repeated_notification_source_is_queued_once(db: sqlite_utils.Database) -> None:
    first = queue_notification(db, source="timer:1", channels=["console", "wecom"], title="t", body="b", payload={}, now=NOW)
    again = queue_notification(db, source="timer:1", channels=["console", "wecom"], title="t", body="b", payload={}, now=NOW)
    assert (first, again) == (2, 0)


def test_a_database_made_before_the_console_and_storage_migrations_opens(new_db: NewDb) -> None:
    path = new_db("old.db")
    old = open_db(path, server.MIGRATIONS)
    old.table("users").insert({"username": "wang", "password_hash": "x", "role": "agent", "created_at": NOW})
    # As a database made before console/ and storage/ had migration sets of their own: their
    # tables exist (made by the bot's and the reviews' migrations then) and their sets are unapplied.
    old.execute("DELETE FROM _sqlite_migrations WHERE migration_set IN ('kefu.console', 'kefu.storage')")
    old.close()
    again = open_db(path, server.MIGRATIONS)
    assert [r["username"] for r in again.table("users").rows] == ["wang"]
    assert again.table("canned_replies").count == 5  # not seeded twice
    assert {r["migration_set"] for r in again.query("SELECT migration_set FROM _sqlite_migrations")} >= {
        "kefu.console",
        "kefu.storage",
    }
    again.close()


def test_a_sqlite_database_made_before_postgresql_support_opens_unchanged_and_works(tmp_path: Path) -> None:
    # The schema and migration record of a database made by kefu before storage/pg.py (main at 168dc08,
    # dumped with sqlite3's iterdump): opening it applies nothing and re-creates nothing.
    path = tmp_path / "before.db"
    made = sqlite3.connect(path)
    made.executescript((Path(__file__).parent / "fixtures" / "db_before_postgres.sql").read_text(encoding="utf-8"))
    made.close()

    def schema() -> list[tuple[str, str]]:
        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        finally:
            conn.close()

    before = schema()
    db = open_db(path, server.MIGRATIONS)
    assert db.table("_sqlite_migrations").count == 11
    message = bot_store.record_inbound(
        db, dedup_key="m1", channel="wechat", openid="o1", kind="text", text="在吗", payload={}, now=NOW, lease_seconds=30
    )
    assert (
        message == 1
        and bot_store.record_inbound(
            db, dedup_key="m1", channel="wechat", openid="o1", kind="text", text="在吗", payload={}, now=NOW, lease_seconds=30
        )
        is None
    )
    bot_store.enqueue_text(db, openid="o1", text="您好", sender="bot", now=NOW, message_id=message)
    assert [r["text"] for r in claim_due(db, "outbound", now=NOW, lease_seconds=20)] == ["您好"]
    generation = kb_store.generation(db)
    db.table("faq").insert({"id": "f1", "question": "发票", "answer": "可以开"})
    assert kb_store.generation(db) == generation + 1  # the old trigger still counts catalogue changes
    db.close()
    assert schema() == before
