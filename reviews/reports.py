"""Manager reports: every figure computed in SQL over the stored reviews, cases and conversations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from reviews.hours import CHINA


@dataclass(frozen=True)
class ReportFilter:
    """Date range (Unix seconds, until exclusive), and optionally one product or category."""

    since: float
    until: float
    sku: str | None = None
    category: str | None = None

    def review_where(self, alias: str = "r") -> tuple[str, list[Any]]:
        """SQL condition and parameters selecting the reviews in scope."""
        where = [f"{alias}.created_ts >= ?", f"{alias}.created_ts < ?"]
        params: list[Any] = [self.since, self.until]
        if self.sku:
            where.append(f"{alias}.sku = ?")
            params.append(self.sku)
        if self.category:
            where.append(f"{alias}.sku IN (SELECT sku FROM products WHERE category = ?)")
            params.append(self.category)
        return " AND ".join(where), params


@dataclass
class Report:
    """All sections; each is a title, column names and rows (also what the exports write)."""

    filter: ReportFilter
    summary: dict[str, Any] = field(default_factory=dict)
    daily: list[dict[str, Any]] = field(default_factory=list)
    weekly: list[dict[str, Any]] = field(default_factory=list)
    sentiment: list[dict[str, Any]] = field(default_factory=list)
    keywords: list[dict[str, Any]] = field(default_factory=list)
    aspects: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    cases: dict[str, Any] = field(default_factory=dict)
    service: dict[str, Any] = field(default_factory=dict)


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _median(db: sqlite_utils.Database, sql: str, params: list[Any]) -> float | None:
    """Median of a one-column query's values (SQLite has no median)."""
    count = db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
    if not count:
        return None
    rows = db.execute(
        f"SELECT v FROM ({sql}) ORDER BY v LIMIT {2 - count % 2} OFFSET {(count - 1) // 2}", params
    ).fetchall()
    return float(sum(r[0] for r in rows) / len(rows))


def _percentile(db: sqlite_utils.Database, sql: str, params: list[Any], pct: float) -> float | None:
    count = db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
    if not count:
        return None
    offset = max(0, min(count - 1, math.ceil(pct / 100 * count) - 1))  # nearest rank
    return float(db.execute(f"SELECT v FROM ({sql}) ORDER BY v LIMIT 1 OFFSET {offset}", params).fetchone()[0])


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d")


def compute_report(
    db: sqlite_utils.Database,
    flt: ReportFilter,
    *,
    response_sla: float = 1800,
    resolution_sla: float = 86400,
    now: float,
) -> Report:
    """Every section of the manager report for the filter."""
    report = Report(flt)
    where, params = flt.review_where()
    offset = 8 * 3600  # days and weeks in China time
    # Reviews per day: totals, 4-5 stars, positive sentiment.
    rows = db.execute(
        f"SELECT CAST((r.created_ts + {offset}) / 86400 AS INTEGER) AS d, count(*), sum(r.rating >= 4), "
        f"sum(r.sentiment = 'positive'), sum(r.sentiment = 'negative'), avg(r.rating) FROM reviews r "
        f"WHERE {where} GROUP BY d ORDER BY d",
        params,
    ).fetchall()
    total = good = positive = negative = 0
    rating_sum = 0.0
    for d, n, g, p, neg, avg in rows:
        report.daily.append(
            {
                "date": _day(d * 86400 - offset),
                "reviews": n,
                "good_rate": _share(g, n),
                "positive_rate": _share(p, n),
                "negative_rate": _share(neg, n),
            }
        )
        total, good, positive, negative = total + n, good + g, positive + p, negative + neg
        rating_sum += avg * n
    weeks: dict[str, list[int]] = {}
    for d, n, g, p, _neg, _avg in rows:
        day = datetime.fromtimestamp(d * 86400 - offset, CHINA).date()
        monday = (day - timedelta(days=day.weekday())).isoformat()
        acc = weeks.setdefault(monday, [0, 0, 0])
        acc[0] += n
        acc[1] += g
        acc[2] += p
    report.weekly = [
        {"week_of": week, "reviews": n, "good_rate": _share(g, n), "positive_rate": _share(p, n)}
        for week, (n, g, p) in sorted(weeks.items())
    ]
    neutral = total - positive - negative
    report.sentiment = [
        {"sentiment": name, "reviews": count, "share": _share(count, total)}
        for name, count in (("positive", positive), ("neutral", neutral), ("negative", negative))
    ]
    # Trend: the good-review rate of the last 7 days of the range against the 7 days before.
    week = 7 * 86400
    recent = db.execute(
        f"SELECT count(*), sum(r.rating >= 4) FROM reviews r WHERE {where} AND r.created_ts >= ?",
        [*params, flt.until - week],
    ).fetchone()
    before = db.execute(
        f"SELECT count(*), sum(r.rating >= 4) FROM reviews r WHERE {where} AND r.created_ts >= ? AND r.created_ts < ?",
        [*params, flt.until - 2 * week, flt.until - week],
    ).fetchone()
    recent_rate, before_rate = _share(recent[1] or 0, recent[0]), _share(before[1] or 0, before[0])
    report.summary = {
        "reviews": total,
        "average_rating": round(rating_sum / total, 2) if total else None,
        "good_rate": _share(good, total),
        "positive_rate": _share(positive, total),
        "good_rate_last_7_days": recent_rate,
        "good_rate_previous_7_days": before_rate,
        "good_rate_trend": round(recent_rate - before_rate, 4)
        if recent_rate is not None and before_rate is not None
        else None,
    }
    # Keywords and aspects: the share of reviews that mention them.
    a_where, a_params = flt.review_where("a")
    for row in db.execute(
        f"SELECT a.keyword, count(DISTINCT a.review_id) AS n, min(a.review_id) FROM review_aspects a "
        f"WHERE {a_where} AND a.keyword IS NOT NULL GROUP BY a.keyword ORDER BY n DESC, a.keyword LIMIT 30",
        a_params,
    ).fetchall():
        example = db.execute("SELECT content FROM reviews WHERE review_id = ?", [row[2]]).fetchone()
        report.keywords.append(
            {
                "keyword": row[0],
                "reviews": row[1],
                "share": _share(row[1], total),
                "example": example[0] if example else "",
            }
        )
    for row in db.execute(
        f"SELECT a.aspect, count(DISTINCT a.review_id), sum(a.polarity = 'positive'), sum(a.polarity = 'negative') "
        f"FROM review_aspects a WHERE {a_where} GROUP BY a.aspect ORDER BY 2 DESC",
        a_params,
    ).fetchall():
        report.aspects.append(
            {
                "aspect": row[0],
                "reviews": row[1],
                "share": _share(row[1], total),
                "positive": row[2],
                "negative": row[3],
            }
        )
    # Per product.
    complaints: dict[str, list[str]] = {}
    for sku, keyword, _n in db.execute(
        f"SELECT a.sku, a.keyword, count(*) AS n FROM review_aspects a WHERE {a_where} AND a.polarity = 'negative' "
        "AND a.keyword IS NOT NULL GROUP BY a.sku, a.keyword ORDER BY a.sku, n DESC",
        a_params,
    ).fetchall():
        if len(complaints.setdefault(sku or "", [])) < 3:
            complaints[sku or ""].append(keyword)
    for sku, name, n, avg, neg in db.execute(
        f"SELECT r.sku, p.name, count(*), avg(r.rating), sum(r.sentiment = 'negative') FROM reviews r "
        f"LEFT JOIN products p ON p.sku = r.sku WHERE {where} GROUP BY r.sku ORDER BY count(*) DESC",
        params,
    ).fetchall():
        report.products.append(
            {
                "sku": sku,
                "name": name or "",
                "reviews": n,
                "average_rating": round(avg, 2),
                "negative_share": _share(neg, n),
                "top_complaints": "、".join(complaints.get(sku or "", [])),
            }
        )
    # Negative-review handling (cases opened in the range).
    c_where = "c.opened_at >= ? AND c.opened_at < ?"
    c_params: list[Any] = [flt.since, flt.until]
    if flt.sku or flt.category:
        c_where += f" AND c.review_id IN (SELECT r.review_id FROM reviews r WHERE {where})"
        c_params += params
    n_cases, responded_in_time, resolved_in_time, open_now, overdue = db.execute(
        f"SELECT count(*), sum(c.responded_at IS NOT NULL AND c.responded_at - c.opened_at <= ?), "
        f"sum(c.resolved_at IS NOT NULL AND c.resolved_at - c.opened_at <= ?), sum(c.state IN ('open', 'responded')), "
        "sum((c.state = 'open' AND c.response_due < ?) "
        "OR (c.state IN ('open', 'responded') AND c.resolution_due < ?)) "
        f"FROM cases c WHERE {c_where}",
        [response_sla, resolution_sla, now, now, *c_params],
    ).fetchone()
    report.cases = {
        "cases": n_cases,
        "responded_within_30_min": _share(responded_in_time or 0, n_cases),
        "resolved_within_24_h": _share(resolved_in_time or 0, n_cases),
        "open": open_now or 0,
        "overdue": overdue or 0,
        "median_minutes_to_response": _minutes(
            _median(
                db,
                f"SELECT c.responded_at - c.opened_at AS v FROM cases c WHERE {c_where} AND c.responded_at IS NOT NULL",
                c_params,
            )
        ),
        "median_hours_to_resolution": _hours(
            _median(
                db,
                f"SELECT c.resolved_at - c.opened_at AS v FROM cases c WHERE {c_where} AND c.resolved_at IS NOT NULL",
                c_params,
            )
        ),
    }
    report.service = service_figures(db, flt)
    return report


def _minutes(seconds: float | None) -> float | None:
    return round(seconds / 60, 1) if seconds is not None else None


def _hours(seconds: float | None) -> float | None:
    return round(seconds / 3600, 2) if seconds is not None else None


def service_figures(db: sqlite_utils.Database, flt: ReportFilter) -> dict[str, Any]:
    """Customer service: messages, conversations, bot resolution, handoffs, latency, 15-second pre-sale answers."""
    span = [flt.since, flt.until]
    messages = db.execute("SELECT count(*) FROM messages WHERE received_at >= ? AND received_at < ?", span).fetchone()[
        0
    ]
    conversations, human, presale, presale_fast = db.execute(
        "SELECT count(*), sum(needed_human), sum(presale_questions), sum(presale_fast) FROM conversations "
        "WHERE started_at >= ? AND started_at < ?",
        span,
    ).fetchone()
    latency = (
        "SELECT answered_at - received_at AS v FROM messages "
        "WHERE received_at >= ? AND received_at < ? AND answered_at IS NOT NULL"
    )
    p50 = _percentile(db, latency, span, 50)
    p95 = _percentile(db, latency, span, 95)
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


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleError(ValueError):
    """A weekly-push schedule that cannot be read."""


def parse_schedule(spec: str) -> tuple[int, int, int]:
    """``"mon 09:00"`` -> (weekday, hour, minute) in China time."""
    try:
        day, clock = spec.strip().lower().split()
        hour, minute = (int(x) for x in clock.split(":"))
        weekday = _DAYS.index(day)
    except ValueError:
        raise ScheduleError(f"weekly push schedule '{spec}' should look like 'mon 09:00'") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ScheduleError(f"weekly push schedule '{spec}' has no such time")
    return weekday, hour, minute


def due_push_period(spec: str, now: float) -> tuple[str, float] | None:
    """The ISO week whose push is due at ``now`` and that week's scheduled moment, if it has passed."""
    weekday, hour, minute = parse_schedule(spec)
    moment = datetime.fromtimestamp(now, CHINA)
    monday = (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    scheduled = monday + timedelta(days=weekday, hours=hour, minutes=minute)
    if moment < scheduled:
        return None
    year, week, _ = scheduled.isocalendar()
    return f"{year}-W{week:02d}", scheduled.timestamp()


def weekly_summary(report: Report) -> str:
    """The few lines a manager reads in WeCom or WeChat."""
    s, c, v = report.summary, report.cases, report.service

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    return "\n".join(
        [
            f"评价 {s['reviews']} 条，好评率 {pct(s['good_rate'])}（前一周 {pct(s['good_rate_previous_7_days'])}）",
            f"差评工单 {c['cases']} 个：30分钟内响应 {pct(c['responded_within_30_min'])}，"
            f"24小时内解决 {pct(c['resolved_within_24_h'])}，超时未结 {c['overdue']} 个",
            f"客服会话 {v['conversations']} 个，机器人独立解决 {pct(v['bot_resolution_rate'])}",
            "热门关键词：" + "、".join(f"{k['keyword']} {pct(k['share'])}" for k in report.keywords[:5]),
        ]
    )


def claim_push(db: sqlite_utils.Database, period: str, now: float) -> bool:
    """Record that this week's push is being sent; False if it was already."""
    cursor = db.execute("INSERT OR IGNORE INTO report_pushes (period, sent_at) VALUES (?, ?)", [period, now])
    return cursor.rowcount == 1


def push_weekly_report(db: sqlite_utils.Database, schedule: str, channels: list[str], now: float) -> str | None:
    """Queue this week's summary (the last 7 days) once, when its scheduled time has passed."""
    from reviews.store import queue_notification

    due = due_push_period(schedule, now)
    if due is None:
        return None
    period, scheduled = due
    with db.atomic():
        if not claim_push(db, period, now):
            return None
        report = compute_report(db, ReportFilter(scheduled - 7 * 86400, scheduled), now=now)
        queue_notification(
            db,
            source=f"report:{period}",
            channels=channels,
            title=f"kefu 周报 {period}",
            body=weekly_summary(report),
            payload={"period": period},
            now=now,
        )
    return period
