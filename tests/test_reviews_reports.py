"""Report figures against hand-computed fixtures, the three export formats, and the weekly push."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from openpyxl import load_workbook

import server
from bot import conversations as conv_store
from kb.importer import import_dir
from reviews.exports import render_html, write_report
from reviews.ingest import prepare, rows_from_csv, store_reviews
from reviews.reports import ReportFilter, compute_report, due_push_period, push_weekly_report
from reviews.sentiment import judge
from reviews.workflow import SlaPolicy, record_response, resolve_case
from storage.db import open_db
from tests.conftest import DEMO, ROOT
from tests.helpers import NewDb

DAY = 86400
MON = 1_763_913_600.0  # 2025-11-24 00:00 China time, a Monday
HEADER = "review_id,order_id,sku,openid,rating,content,created_at\n"
# Ten reviews over two days: 6 of 4-5 stars; texts chosen so the aspect keywords are known.
ROWS = """R01,,TEA-001,o1,5,物流很快，包装严实,2025-11-24T10:00:00+08:00
R02,,TEA-001,o2,5,物流快，茶很香,2025-11-24T11:00:00+08:00
R03,,TEA-001,o3,4,包装很好,2025-11-24T12:00:00+08:00
R04,,TEA-001,o4,1,包装破了,2025-11-24T13:00:00+08:00
R05,,ELE-001,o5,2,物流太慢了,2025-11-24T14:00:00+08:00
R06,,ELE-001,o6,5,客服很专业,2025-11-25T10:00:00+08:00
R07,,ELE-001,o7,5,客服专业，物流快,2025-11-25T11:00:00+08:00
R08,,ELE-001,o8,4,还行,2025-11-25T12:00:00+08:00
R09,,CLO-001,o9,1,质量太差了,2025-11-25T13:00:00+08:00
R10,,CLO-001,o10,3,一般,2025-11-25T14:00:00+08:00
"""


@pytest.fixture
def db(new_db: NewDb) -> Iterator[sqlite_utils.Database]:
    database = open_db(new_db("report.db"), server.MIGRATIONS)
    import_dir(database, DEMO)
    good, problems = prepare(rows_from_csv(HEADER + ROWS))
    assert not problems
    # Text verdicts from the stars (3 stars neutral), so the expected figures are exact.
    verdicts = [judge({5: 0.95, 4: 0.8, 3: 0.5, 2: 0.2, 1: 0.05}[r.rating], r.rating) for r in good]
    for review, verdict in zip(good, verdicts, strict=True):
        store_reviews(database, [review], [verdict], review.created_ts, SlaPolicy())
    cases = {r["review_id"]: r["id"] for r in database.table("cases").rows}
    # R04: answered after 10 minutes, resolved after 2 hours; R05: answered after 40 minutes; R09 untouched.
    opened = {r["id"]: r["opened_at"] for r in database.table("cases").rows}
    record_response(database, cases["R04"], opened[cases["R04"]] + 600, "a", "已联系")
    resolve_case(database, cases["R04"], opened[cases["R04"]] + 7200, "a", "refund", "")
    record_response(database, cases["R05"], opened[cases["R05"]] + 2400, "a", "已联系")
    # Conversations: 4 in range, 1 needed a person; pre-sale: 5 questions, 4 within 15 s.
    database.table("conversations").insert_all(
        [
            {
                "openid": f"c{i}",
                "state": "closed",
                "started_at": MON + 3600 * (i + 1),
                "needed_human": int(i == 0),
                "presale_questions": [2, 1, 2, 0][i],
                "presale_fast": [2, 1, 1, 0][i],
                "context": "{}",
                "misunderstandings": 0,
            }
            for i in range(4)
        ]
    )
    database.table("messages").insert_all(
        [
            {
                "dedup_key": f"m{i}",
                "channel": "wechat",
                "openid": "c0",
                "kind": "text",
                "text": "x",
                "received_at": MON + 100 * i,
                "state": "answered",
                "answered_at": MON + 100 * i + latency,
            }
            for i, latency in enumerate([0.1, 0.2, 0.3, 0.4, 2.0])
        ]
    )
    yield database
    database.close()


def full_range() -> ReportFilter:
    return ReportFilter(MON, MON + 7 * DAY)


def test_figures_match_hand_computed_values(db: sqlite_utils.Database) -> None:
    report = compute_report(db, full_range(), now=MON + 3 * DAY, service=conv_store.service_figures)
    assert report.summary["reviews"] == 10
    assert report.summary["good_rate"] == 0.6
    assert report.summary["average_rating"] == 3.5  # 35 stars / 10
    assert [(d["date"], d["reviews"], d["good_rate"]) for d in report.daily] == [
        ("2025-11-24", 5, 0.6),
        ("2025-11-25", 5, 0.6),
    ]
    assert [(w["week_of"], w["reviews"]) for w in report.weekly] == [("2025-11-24", 10)]
    assert {s["sentiment"]: s["reviews"] for s in report.sentiment} == {"positive": 6, "neutral": 1, "negative": 3}
    shares = {k["keyword"]: k["share"] for k in report.keywords}
    assert shares["物流快"] == 0.3 and shares["包装好"] == 0.2 and shares["服务专业"] == 0.2
    assert shares["包装破损"] == 0.1 and shares["物流慢"] == 0.1 and shares["质量差"] == 0.1
    products = {p["sku"]: p for p in report.products}
    assert products["TEA-001"]["reviews"] == 4 and products["TEA-001"]["average_rating"] == 3.75
    assert products["TEA-001"]["negative_share"] == 0.25 and products["TEA-001"]["top_complaints"] == "包装破损"
    assert products["CLO-001"]["name"] == "男士轻薄羽绒服 90白鸭绒"
    assert report.cases["cases"] == 3
    assert report.cases["responded_within_30_min"] == pytest.approx(0.3333, abs=1e-4)
    assert report.cases["resolved_within_24_h"] == pytest.approx(0.3333, abs=1e-4)
    assert report.cases["open"] == 2
    assert report.cases["overdue"] == 2  # R05 past 24 h unresolved, R09 past both deadlines
    assert report.cases["median_minutes_to_response"] == 25.0  # (10 + 40) / 2
    assert report.cases["median_hours_to_resolution"] == 2.0
    assert report.service["conversations"] == 4
    assert report.service["bot_resolution_rate"] == 0.75
    assert report.service["handoff_rate"] == 0.25
    assert report.service["presale_within_15_s"] == 0.8
    assert report.service["messages"] == 5
    assert report.service["reply_latency_p50_ms"] == 300.0
    assert report.service["reply_latency_p95_ms"] == 2000.0


def test_filters_by_product_and_category(db: sqlite_utils.Database) -> None:
    by_sku = compute_report(
        db, ReportFilter(MON, MON + 7 * DAY, sku="ELE-001"), now=MON + 3 * DAY, service=conv_store.service_figures
    )
    assert by_sku.summary["reviews"] == 4 and by_sku.cases["cases"] == 1
    by_category = compute_report(
        db, ReportFilter(MON, MON + 7 * DAY, category="茶叶"), now=MON + 3 * DAY, service=conv_store.service_figures
    )
    assert by_category.summary["reviews"] == 4 and by_category.summary["good_rate"] == 0.75
    one_day = compute_report(db, ReportFilter(MON + DAY, MON + 2 * DAY), now=MON + 3 * DAY, service=conv_store.service_figures)
    assert one_day.summary["reviews"] == 5


def test_exports(db: sqlite_utils.Database, tmp_path: Path) -> None:
    report = compute_report(db, full_range(), now=MON + 3 * DAY, service=conv_store.service_figures)
    write_report(report, "xlsx", tmp_path / "r.xlsx")
    book = load_workbook(tmp_path / "r.xlsx")
    assert book.sheetnames == [
        "概览",
        "每日好评率",
        "每周好评率",
        "情感分布",
        "关键词",
        "方面",
        "商品",
        "差评处理",
        "客服",
    ]
    overview = {row[0]: row[1] for row in book["概览"].iter_rows(min_row=2, values_only=True)}
    assert overview["评价数"] == 10 and overview["好评率（4-5星）"] == 0.6
    keywords = {row[0]: row[2] for row in book["关键词"].iter_rows(min_row=2, values_only=True)}
    assert keywords["物流快"] == 0.3
    write_report(report, "csv", tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert ["机器人独立解决率", "0.75"] in rows
    html = render_html(report)
    assert html.startswith("<!doctype html>") and html.count("<svg") == 3
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "物流快" in html and "60.0%" in html


def test_report_command_writes_all_three_formats(db: sqlite_utils.Database, new_db: NewDb, tmp_path: Path) -> None:
    path = new_db("report.db")
    for fmt in ("html", "xlsx", "csv"):
        out = tmp_path / f"week.{fmt}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "--db",
                str(path),
                "report",
                "--since",
                "2025-11-24",
                "--until",
                "2025-11-30",
                "--format",
                fmt,
                "--out",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "10 reviews" in result.stdout and out.stat().st_size > 0


def test_weekly_push_once_per_week(db: sqlite_utils.Database) -> None:
    schedule = "mon 09:00"
    next_monday = MON + 7 * DAY
    assert due_push_period(schedule, next_monday + 8 * 3600) is None  # 08:00, before the scheduled 09:00
    assert push_weekly_report(db, schedule, ["console", "wecom"], next_monday + 8 * 3600, conv_store.service_figures) is None
    period = push_weekly_report(db, schedule, ["console", "wecom"], next_monday + 9 * 3600 + 60, conv_store.service_figures)
    assert period == "2025-W49"
    assert push_weekly_report(db, schedule, ["console", "wecom"], next_monday + 10 * 3600, conv_store.service_figures) is None
    rows = list(db.table("notifications").rows_where("source = ?", ["report:2025-W49"]))
    assert [r["channel"] for r in rows] == ["console", "wecom"]
    assert "评价 10 条，好评率 60.0%" in rows[0]["body"]
