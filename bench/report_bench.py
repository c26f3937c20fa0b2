"""Report generation time over 10k, 100k and 1M generated reviews (target: under 5 s for 1M)."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import server
from bench.common import DEMO, BenchContext
from bot import conversations as conv_store
from kb.importer import import_dir
from reviews.aspects import RULES
from reviews.reports import ReportFilter, compute_report
from storage.db import open_db

DAY = 86400
START = 1_761_926_400.0  # 2025-11-01 00:00 China time
SIZES = (10_000, 100_000, 1_000_000)


def generate(path: Path, count: int, seed: int = 5) -> None:
    """Reviews over 90 days with aspects and cases, written straight into a fresh database."""
    rng = random.Random(seed)
    db = open_db(path, server.MIGRATIONS)
    import_dir(db, DEMO)
    skus = [r["sku"] for r in db.table("products").rows]
    phrases = [(rule.name, rule.good_phrase, rule.bad_phrase) for rule in RULES]
    reviews, aspects, cases = [], [], []
    for i in range(count):
        ts = START + rng.random() * 90 * DAY
        rating = rng.choices([1, 2, 3, 4, 5], weights=[6, 4, 8, 25, 57])[0]
        sentiment = "positive" if rating >= 4 else "negative" if rating <= 2 else "neutral"
        rid = f"G{i:07d}"
        sku = rng.choice(skus)
        reviews.append((rid, sku, f"o{i % 5000}", rating, "生成的评价", "", ts, ts, sentiment, 0.5, 0))
        for aspect, good, bad in rng.sample(phrases, rng.randint(0, 2)):
            positive = rating >= 4
            aspects.append((rid, aspect, "positive" if positive else "negative", good if positive else bad, "", ts, sku))
        if sentiment == "negative":
            responded = ts + rng.expovariate(1 / 1500)
            resolved = responded + rng.expovariate(1 / 40000) if rng.random() < 0.9 else None
            cases.append((rid, "resolved" if resolved else "responded", ts, ts + 1800, ts + DAY, responded, resolved, sku))
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO reviews (review_id, sku, openid, rating, content, order_id, created_ts, received_ts, sentiment, "
            "probability, needs_look, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')",
            reviews,
        )
        db.conn.executemany(
            "INSERT INTO review_aspects (review_id, aspect, polarity, keyword, clause, created_ts, sku) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            aspects,
        )
        db.conn.executemany(
            "INSERT INTO cases (review_id, state, opened_at, response_due, resolution_due, responded_at, resolved_at, sku) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            cases,
        )
    db.execute("ANALYZE")
    db.close()


async def run(ctx: BenchContext) -> list[str]:
    """Time the full 90-day report, and one product's, at each size."""
    lines = []
    for size in SIZES:
        path = Path(tempfile.mkdtemp(prefix="kefu-report-")) / "report.db"
        started = time.perf_counter()
        generate(path, size)
        built = time.perf_counter() - started
        db = open_db(path, server.MIGRATIONS)
        try:
            flt = ReportFilter(START, START + 90 * DAY)
            started = time.perf_counter()
            report = compute_report(db, flt, now=START + 91 * DAY, service=conv_store.service_figures)
            full = time.perf_counter() - started
            started = time.perf_counter()
            compute_report(
                db,
                ReportFilter(START, START + 90 * DAY, category="茶叶"),
                now=START + 91 * DAY,
                service=conv_store.service_figures,
            )
            category = time.perf_counter() - started
        finally:
            db.close()
        lines.append(
            f"{size:>9,} reviews: full report {full:.2f} s, one category {category:.2f} s "
            f"(good rate {report.summary['good_rate']:.3f}, {report.cases['cases']:,} cases; data generated in {built:.0f} s)"
        )
    return lines
