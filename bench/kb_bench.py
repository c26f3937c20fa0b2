"""Knowledge-base search on every shop: kefu's ranking beside the plain e5 baseline, and latency."""

from __future__ import annotations

import time

from bench.common import BenchContext, demo_db, demo_kb, latency_line, shops
from kb.evaluate import evaluate, read_questions
from kb.search import Thresholds

# The baseline: every FAQ question, alt question, answer and product text ranked by e5 cosine
# alone (no name bonuses), with the same answer / don't-know thresholds.
BASELINE = Thresholds(mention_bonus=0.0, faq_product_bonus=0.0)


async def run(ctx: BenchContext) -> list[str]:
    """top-1/top-3 per shop for kefu and the baseline (questions never tuned on for the demo), then the worst shop."""
    lines = []
    worst: tuple[float, str] | None = None
    for shop in shops():
        db = demo_db(shop=shop.folder)
        rows = read_questions(shop.questions)
        kb = demo_kb(db, encoder=ctx.encoder)
        report = evaluate(kb, rows)
        base = evaluate(demo_kb(db, BASELINE, encoder=ctx.encoder), rows)
        lines.append(
            f"kb {shop.name}: top1={report.top1:.3f} top3={report.top3:.3f} "
            f"(e5 baseline top1={base.top1:.3f} top3={base.top3:.3f}) n={report.n}"
        )
        if worst is None or report.top1 < worst[0]:
            worst = (report.top1, shop.name)
        if shop.name == "demo":
            timings = []
            for question, _ in rows:
                started = time.perf_counter()
                kb.search(question)
                timings.append(time.perf_counter() - started)
            lines.append(latency_line("kb search latency", timings))
        db.close()
    if worst:
        lines.append(f"kb worst shop: {worst[1]} top1={worst[0]:.3f}")
    return lines
