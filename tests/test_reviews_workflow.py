"""The negative-review workflow: cases, deadlines, reminders and escalations fired exactly once."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import sqlite_utils

import server
from kb.hours import BusinessHours
from reviews import store
from reviews.ingest import prepare, rows_from_csv, store_reviews
from reviews.sentiment import judge
from reviews.workflow import CaseError, SlaPolicy, close_case, fire_due_timers, open_case, record_response, resolve_case
from storage.db import open_db
from tests.helpers import NewDb

T0 = 1_764_036_000.0  # 2025-11-25 10:00 China time
CSV_HEADER = "review_id,order_id,sku,openid,rating,content,created_at\n"


@pytest.fixture
def db(new_db: NewDb) -> Iterator[sqlite_utils.Database]:
    database = open_db(new_db("reviews.db"), server.MIGRATIONS)
    yield database
    database.close()


def ingest(db: sqlite_utils.Database, text: str, now: float = T0, policy: SlaPolicy | None = None) -> list[int]:
    good, problems = prepare(rows_from_csv(CSV_HEADER + text))
    # The verdicts come from the stars here (the text model is tested with the real model elsewhere).
    judgements = [judge(0.9 if r.rating >= 4 else 0.1, r.rating) for r in good]
    return store_reviews(db, good, judgements, now, policy or SlaPolicy(), problems).cases


def notifications(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    return [(r["source"], r["channel"]) for r in db.table("notifications").rows_where(order_by="id")]


def test_negative_review_opens_case_with_30_minute_and_24_hour_deadlines(db: sqlite_utils.Database) -> None:
    cases = ingest(
        db,
        "R1,O1,TEA-001,oA,1,茶叶发霉了,2025-11-25T09:50:00+08:00\nR2,O2,TEA-001,oB,5,很好喝,2025-11-25T09:55:00+08:00\n",
    )
    assert len(cases) == 1
    case = store.get_case(db, cases[0])
    assert case is not None
    assert case["review_id"] == "R1" and case["state"] == "open"
    assert case["response_due"] == T0 + 1800
    assert case["resolution_due"] == T0 + 86400
    timers = {r["kind"]: r["due_at"] for r in db.table("case_timers").rows}
    assert timers == {
        "remind_response": T0 + 1200,
        "breach_response": T0 + 1800,
        "remind_resolution": T0 + 86400 - 4 * 3600,
        "breach_resolution": T0 + 86400,
    }


def test_reminders_and_escalations_fire_once_each(db: sqlite_utils.Database) -> None:
    [case_id] = ingest(db, "R1,,TEA-001,oA,2,太慢了,2025-11-25T09:50:00+08:00\n")
    assert fire_due_timers(db, T0 + 1199, ["console"]) == []
    assert len(fire_due_timers(db, T0 + 1200, ["console", "wecom"])) == 1
    assert len(fire_due_timers(db, T0 + 1200, ["console", "wecom"])) == 0  # exactly once
    assert len(fire_due_timers(db, T0 + 1801, ["console", "wecom"])) == 1
    case = store.get_case(db, case_id)
    assert case is not None and case["escalated"] == 1
    assert [n for n in notifications(db)] == [
        ("timer:1", "console"),
        ("timer:1", "wecom"),
        ("timer:2", "console"),
        ("timer:2", "wecom"),
    ]
    kinds = [e["kind"] for e in store.case_timeline(db, case_id)]
    assert kinds == ["opened", "remind_response", "breach_response"]


def test_responding_in_time_skips_the_response_escalation(db: sqlite_utils.Database) -> None:
    [case_id] = ingest(db, "R1,,TEA-001,oA,1,少发了一盒,2025-11-25T09:50:00+08:00\n")
    record_response(db, case_id, T0 + 600, "xiaomei", "已联系顾客补发")
    fired = fire_due_timers(db, T0 + 3600, ["console"])
    assert fired == []
    assert {r["kind"]: r["result"] for r in db.table("case_timers").rows if r["fired_at"]} == {
        "remind_response": "skipped",
        "breach_response": "skipped",
    }
    resolve_case(db, case_id, T0 + 7200, "xiaomei", "replacement", "补发已签收")
    assert fire_due_timers(db, T0 + 90000, ["console"]) == []
    case = store.get_case(db, case_id)
    assert case is not None and case["state"] == "resolved" and case["outcome"] == "replacement"
    assert notifications(db) == []


def test_late_resolution_escalates(db: sqlite_utils.Database) -> None:
    [case_id] = ingest(db, "R1,,TEA-001,oA,1,坏了,2025-11-25T09:50:00+08:00\n")
    record_response(db, case_id, T0 + 60, "xiaomei", "已回复")
    fired = fire_due_timers(db, T0 + 86401, ["console"])
    assert len(fired) == 2  # remind and breach of the resolution
    assert [e["kind"] for e in store.case_timeline(db, case_id)][-2:] == ["remind_resolution", "breach_resolution"]


def test_case_actions_check_their_inputs(db: sqlite_utils.Database) -> None:
    [case_id] = ingest(db, "R1,,TEA-001,oA,1,坏了,2025-11-25T09:50:00+08:00\n")
    with pytest.raises(CaseError, match="之一"):
        resolve_case(db, case_id, T0, "a", "bribe", "")
    with pytest.raises(CaseError, match="原因"):
        resolve_case(db, case_id, T0, "a", "no_action", " ")
    with pytest.raises(CaseError, match="原因"):
        close_case(db, case_id, T0, "a", "")
    close_case(db, case_id, T0, "a", "重复评价")
    with pytest.raises(CaseError):
        record_response(db, case_id, T0, "a", "x")


def test_business_hours_calendar_stops_the_clock_overnight(db: sqlite_utils.Database) -> None:
    calendar = BusinessHours.parse("mon-sun 09:00-18:00")
    evening = T0 + 7.75 * 3600  # 17:45 China time
    [case_id] = ingest(db, "R1,,TEA-001,oA,1,坏了,2025-11-25T17:40:00+08:00\n", now=evening, policy=SlaPolicy(calendar=calendar))
    case = store.get_case(db, case_id)
    assert case is not None
    assert case["response_due"] == T0 + 23 * 3600 + 15 * 60  # 15 minutes today, then 09:00-09:15 tomorrow


def fire_when_both_are_ready(path: str, ready: Barrier, passes: Queue[tuple[float, list[int], float]]) -> None:
    """One kefu process's pass over the due timers, started together with the other's."""
    db = open_db(path)
    ready.wait(120)
    started = time.monotonic()  # one clock for every process on the machine
    fired = fire_due_timers(db, T0 + 2000, ["console"])
    passes.put((started, fired, time.monotonic()))
    db.close()


def test_two_processes_fire_each_timer_once(new_db: NewDb) -> None:
    path = new_db("shared.db")
    db = open_db(path, server.MIGRATIONS)
    # Many cases, so that the two passes overlap for a good while (each fires a timer per transaction).
    ingest(db, "".join(f"R{i},,TEA-001,o{i},1,坏了,2025-11-25T09:50:00+08:00\n" for i in range(400)))
    due = [r[0] for r in db.execute("SELECT id FROM case_timers WHERE due_at <= ? ORDER BY id", [T0 + 2000])]
    assert len(due) == 800  # each case's response reminder and breach
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: two kefu processes on one file
    ready, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=fire_when_both_are_ready, args=(str(path), ready, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    passes: list[tuple[float, list[int], float]] = []
    while len(passes) < len(workers):
        try:
            passes.append(results.get(timeout=1))
        except queue.Empty:
            # Without the guard a second firing breaks notifications' unique (source, channel): the process dies.
            assert all(w.is_alive() or w.exitcode == 0 for w in workers), "a process failed (its traceback is above)"
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    (first_start, first, first_end), (second_start, second, second_end) = passes
    assert max(first_start, second_start) < min(first_end, second_end)  # the two passes ran at the same time
    assert sorted(first + second) == due  # every due timer fired, none by both
    sources = [source for source, _ in notifications(db)]
    assert sorted(sources) == sorted({f"timer:{t}" for t in due})  # one notification each
    db.close()


def test_bad_rows_are_reported_and_good_rows_kept(db: sqlite_utils.Database) -> None:
    text = (
        "R1,,TEA-001,oA,6,太差了,2025-11-25T09:50:00+08:00\n"
        "R2,,TEA-001,oA,1,,2025-11-25T09:50:00+08:00\n"
        "R3,,TEA-001,oA,1,坏了,2025-11-25 09:50\n"
        "R4,,TEA-001,oA,一,坏了,2025-11-25T09:50:00+08:00\n"
        "R5,,TEA-001,oA,5,很好,2025-11-25T09:50:00+08:00\n"
        "R5,,TEA-001,oA,5,很好,2025-11-25T09:50:00+08:00\n"
    )
    good, problems = prepare(rows_from_csv(CSV_HEADER + text))
    assert [g.review_id for g in good] == ["R5"]
    assert [str(p) for p in problems] == [
        "row 2: rating 6 is not from 1 to 5",
        "row 3: content is empty",
        "row 4: created_at '2025-11-25 09:50' has no time zone (e.g. +08:00)",
        "row 5: rating '一' is not a whole number from 1 to 5",
        "row 7: review_id R5 already on row 6",
    ]


def test_two_workers_opening_one_reviews_case_get_one_case(db: sqlite_utils.Database, new_db: NewDb) -> None:
    ingest(db, "R1,,TEA-001,oA,5,很好,2025-11-25T09:50:00+08:00\n")  # a good review: no case yet
    other = open_db(new_db("reviews.db"), server.MIGRATIONS)  # a second worker's connection
    opened, release = threading.Event(), threading.Event()
    got: dict[str, int | None] = {}

    def first() -> None:
        with db.atomic():  # its transaction still open when the second worker tries
            got["first"] = open_case(db, "R1", T0, SlaPolicy())
            opened.set()
            release.wait(10)

    def second() -> None:
        opened.wait(10)
        got["second"] = open_case(other, "R1", T0, SlaPolicy())

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for worker in workers:
        worker.start()
    opened.wait(10)
    time.sleep(0.3)  # the second is waiting on the first's transaction
    release.set()
    for worker in workers:
        worker.join(20)
    other.close()
    assert got["first"] is not None and got == {"first": got["first"], "second": None}
    assert db.table("cases").count == 1 and db.table("case_timers").count == 4
    assert open_case(db, "R1", T0 + 60, SlaPolicy()) is None  # and again, later


def test_reimport_is_idempotent(db: sqlite_utils.Database) -> None:
    row = "R1,,TEA-001,oA,1,坏了,2025-11-25T09:50:00+08:00\n"
    assert len(ingest(db, row)) == 1
    assert ingest(db, row) == []
    assert db.table("reviews").count == 1 and db.table("cases").count == 1
