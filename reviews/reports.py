"""Manager reports: every figure computed in SQL over the stored reviews, cases and conversations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kb.hours import CHINA
from reviews.store import OVERDUE
from storage.db import Store

# The customer-service figures come from the bot's own tables: the caller passes the bot's
# function (bot.conversations.service_figures), so reviews never reads them itself.
ServiceFigures = Callable[[Store, float, float], dict[str, Any]]


@dataclass(frozen=True)
class ReportFilter:
    """Date range (Unix seconds, until exclusive), and optionally one product or category."""

    since: float
    until: float
    sku: str | None = None
    category: str | None = None

    def skus(self, db: Store) -> list[str] | None:
        """The products in scope, or None for all of them."""
        if self.sku:
            return [self.sku]
        if self.category:
            return [r[0] for r in db.execute("SELECT sku FROM products WHERE category = ?", [self.category])]
        return None


def _scope(alias: str, time_column: str, flt: ReportFilter, skus: list[str] | None) -> tuple[str, list[Any]]:
    """SQL condition and parameters for the time range and products (placeholders only)."""
    where = f"{alias}.{time_column} >= ? AND {alias}.{time_column} < ?"
    params: list[Any] = [flt.since, flt.until]
    if skus is not None:
        where += f" AND {alias}.sku IN ({', '.join('?' * len(skus)) or 'NULL'})"
        params += skus
    return where, params


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


def _median(db: Store, sql: str, params: list[Any]) -> float | None:
    """Median of a one-column query's values (SQLite has no median)."""
    count = db.execute(f"SELECT count(*) FROM ({sql}) AS t", params).fetchone()[0]
    if not count:
        return None
    rows = db.execute(f"SELECT v FROM ({sql}) AS t ORDER BY v LIMIT {2 - count % 2} OFFSET {(count - 1) // 2}", params).fetchall()
    return float(sum(r[0] for r in rows) / len(rows))


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d")


def compute_report(
    db: Store,
    flt: ReportFilter,
    *,
    response_sla: float = 1800,
    resolution_sla: float = 86400,
    now: float,
    service: ServiceFigures,
) -> Report:
    """Every section of the manager report for the filter.

    Two scans do the heavy work, each over a covering index: reviews grouped by day and product,
    and aspect tags grouped by product and keyword; the sections are summed up from those.
    """
    report = Report(flt)
    skus = flt.skus(db)
    where, params = _scope("r", "created_ts", flt, skus)
    offset = 8 * 3600  # days and weeks in China time
    cells = db.execute(
        f"SELECT floor((r.created_ts + {offset}) / 86400) AS d, r.sku, count(*), "
        "sum(CASE WHEN r.rating >= 4 THEN 1 ELSE 0 END), sum(CASE WHEN r.sentiment = 'positive' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN r.sentiment = 'negative' THEN 1 ELSE 0 END), sum(r.rating) FROM reviews r "
        f"WHERE {where} GROUP BY d, r.sku",
        params,
    ).fetchall()
    days: dict[int, list[int]] = {}
    per_sku: dict[str, list[int]] = {}
    for day, sku, n, good, pos, neg, stars in cells:
        d = int(day)
        for bucket in (days.setdefault(d, [0, 0, 0, 0, 0]), per_sku.setdefault(sku or "", [0, 0, 0, 0, 0])):
            bucket[0] += n
            bucket[1] += good
            bucket[2] += pos
            bucket[3] += neg
            bucket[4] += stars
    total = sum(v[0] for v in days.values())
    good, positive, negative = (sum(v[i] for v in days.values()) for i in (1, 2, 3))
    stars_total = sum(v[4] for v in days.values())
    weeks: dict[str, list[int]] = {}
    for d, (n, g, p, neg, _stars) in sorted(days.items()):
        day = datetime.fromtimestamp(d * 86400 - offset, CHINA).date()
        report.daily.append(
            {
                "date": day.isoformat(),
                "reviews": n,
                "good_rate": _share(g, n),
                "positive_rate": _share(p, n),
                "negative_rate": _share(neg, n),
            }
        )
        acc = weeks.setdefault((day - timedelta(days=day.weekday())).isoformat(), [0, 0, 0])
        acc[0] += n
        acc[1] += g
        acc[2] += p
    report.weekly = [
        {"week_of": week, "reviews": n, "good_rate": _share(g, n), "positive_rate": _share(p, n)}
        for week, (n, g, p) in sorted(weeks.items())
    ]
    report.sentiment = [
        {"sentiment": name, "reviews": count, "share": _share(count, total)}
        for name, count in (("positive", positive), ("neutral", total - positive - negative), ("negative", negative))
    ]
    # Trend: the good-review rate of the range's last 7 days against the 7 days before.
    last_day = int((flt.until - 1 + offset) // 86400)
    recent = [v for d, v in days.items() if last_day - 7 < d <= last_day]
    before = [v for d, v in days.items() if last_day - 14 < d <= last_day - 7]
    recent_rate = _share(sum(v[1] for v in recent), sum(v[0] for v in recent))
    before_rate = _share(sum(v[1] for v in before), sum(v[0] for v in before))
    report.summary = {
        "reviews": total,
        "average_rating": round(stars_total / total, 2) if total else None,
        "good_rate": _share(good, total),
        "positive_rate": _share(positive, total),
        "good_rate_last_7_days": recent_rate,
        "good_rate_previous_7_days": before_rate,
        "good_rate_trend": round(recent_rate - before_rate, 4) if recent_rate is not None and before_rate is not None else None,
    }
    # Aspect tags: a review counts once per keyword and once per aspect polarity (deduplicated at ingest).
    a_where, a_params = _scope("a", "created_ts", flt, skus)
    tags = db.execute(
        f"SELECT a.sku, a.aspect, a.polarity, a.keyword, count(*) FROM review_aspects a WHERE {a_where} "
        "GROUP BY a.sku, a.aspect, a.polarity, a.keyword",
        a_params,
    ).fetchall()
    keyword_counts: dict[str, int] = {}
    aspect_counts: dict[str, list[int]] = {}
    complaints: dict[str, dict[str, int]] = {}
    for sku, aspect, polarity, keyword, n in tags:
        acc = aspect_counts.setdefault(aspect, [0, 0, 0])
        acc[0] += n
        acc[1] += n if polarity == "positive" else 0
        acc[2] += n if polarity == "negative" else 0
        if keyword:
            keyword_counts[keyword] = keyword_counts.get(keyword, 0) + n
            if polarity == "negative":
                per = complaints.setdefault(sku or "", {})
                per[keyword] = per.get(keyword, 0) + n
    for keyword, n in sorted(keyword_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:30]:
        example = db.execute(
            f"SELECT r.content FROM review_aspects a JOIN reviews r USING (review_id) WHERE {a_where} AND a.keyword = ? LIMIT 1",
            [*a_params, keyword],
        ).fetchone()
        report.keywords.append(
            {"keyword": keyword, "reviews": n, "share": _share(n, total), "example": example[0] if example else ""}
        )
    for aspect, (n, pos, neg) in sorted(aspect_counts.items(), key=lambda kv: -kv[1][0]):
        report.aspects.append({"aspect": aspect, "reviews": n, "share": _share(n, total), "positive": pos, "negative": neg})
    names = dict(db.execute("SELECT sku, name FROM products").fetchall())
    for sku, (n, _g, _p, neg, stars) in sorted(per_sku.items(), key=lambda kv: (-kv[1][0], kv[0])):
        top = sorted(complaints.get(sku, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        report.products.append(
            {
                "sku": sku,
                "name": names.get(sku, ""),
                "reviews": n,
                "average_rating": round(stars / n, 2),
                "negative_share": _share(neg, n),
                "top_complaints": "、".join(k for k, _ in top),
            }
        )
    # Negative-review handling (cases opened in the range).
    c_where, c_params = _scope("c", "opened_at", flt, skus)
    n_cases, responded_in_time, resolved_in_time, open_now, overdue = db.execute(
        "SELECT count(*), "
        "sum(CASE WHEN c.responded_at IS NOT NULL AND c.responded_at - c.opened_at <= ? THEN 1 ELSE 0 END), "
        "sum(CASE WHEN c.resolved_at IS NOT NULL AND c.resolved_at - c.opened_at <= ? THEN 1 ELSE 0 END), "
        "sum(CASE WHEN c.state IN ('open', 'responded') THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN {OVERDUE} THEN 1 ELSE 0 END) "
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
    report.service = service(db, flt.since, flt.until)
    return report


def _minutes(seconds: float | None) -> float | None:
    return round(seconds / 60, 1) if seconds is not None else None


def _hours(seconds: float | None) -> float | None:
    return round(seconds / 3600, 2) if seconds is not None else None


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


def claim_push(db: Store, period: str, now: float) -> bool:
    """Record that this week's push is being sent; False if it was already."""
    cursor = db.execute(
        "INSERT INTO report_pushes (period, sent_at) VALUES (?, ?) ON CONFLICT (period) DO NOTHING", [period, now]
    )
    return cursor.rowcount == 1


def push_weekly_report(
    db: Store,
    schedule: str,
    channels: list[str],
    now: float,
    service: ServiceFigures,
) -> str | None:
    """Queue this week's summary (the last 7 days) once, when its scheduled time has passed."""
    from storage.outbox import queue_notification

    due = due_push_period(schedule, now)
    if due is None:
        return None
    period, scheduled = due
    with db.atomic():
        if not claim_push(db, period, now):
            return None
        report = compute_report(db, ReportFilter(scheduled - 7 * 86400, scheduled), now=now, service=service)
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
