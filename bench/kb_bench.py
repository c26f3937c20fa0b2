"""Knowledge-base search: held-out top-1/top-3 and the latency of one search."""

from __future__ import annotations

import time

from bench.common import TESTS, BenchContext, demo_db, demo_kb, latency_line
from kb.evaluate import evaluate, read_questions


async def run(ctx: BenchContext) -> list[str]:
    """Evaluate on tests/fixtures/kb_heldout.csv (never tuned on) and time each search."""
    kb = demo_kb(demo_db(), encoder=ctx.encoder)
    rows = read_questions(TESTS / "kb_heldout.csv")
    report = evaluate(kb, rows)
    timings = []
    for question, _ in rows:
        started = time.perf_counter()
        kb.search(question)
        timings.append(time.perf_counter() - started)
    return [
        f"kb held-out: top1={report.top1:.3f} top3={report.top3:.3f} n={report.n}",
        latency_line("kb search latency", timings),
    ]
