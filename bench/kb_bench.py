"""Knowledge-base search on every shop: kefu's ranking beside the plain e5 baseline, and latency.

Per shop three figures: kefu with the shipped reranker (fitted on every dev shop's dev questions, so
in-sample for the dev shops but the demo's held-out set), kefu with a reranker fitted on the other
shops alone (what a shop kefu has never seen can expect; the worst of these is the headline), and the
plain e5 baseline (every FAQ question, alternative, answer and product text ranked by cosine alone,
with the cosine answer / don't-know lines).
"""

from __future__ import annotations

import time

from bench import tune_kb
from bench.common import BenchContext, demo_db, demo_kb, latency_line, shops
from kb.evaluate import evaluate, read_questions
from kb.search import KnowledgeBase


async def run(ctx: BenchContext) -> list[str]:
    """top-1/top-3 per shop for kefu (shipped and left out) and the baseline, then the worst shop."""
    lines = []
    sets = {s.name: s for s in tune_kb.load_sets(ctx.encoder)}
    worst: tuple[float, str] | None = None
    for shop in shops():
        db = demo_db(shop=shop.folder)
        rows = read_questions(shop.questions)
        kb = demo_kb(db, encoder=ctx.encoder)
        report = evaluate(kb, rows)
        plain = KnowledgeBase(ctx.encoder, reranked=False)
        plain.load(db)
        base = evaluate(plain, rows)
        line = f"kb {shop.name}: top1={report.top1:.3f} top3={report.top3:.3f}"
        if shop.name in sets:
            others = [s for s in sets.values() if s.name != shop.name]
            left_out, _ = tune_kb.score(sets[shop.name], tune_kb.fit(others, ctx.encoder, ""))
            line += f" left-out top1={left_out:.3f}"
            if worst is None or left_out < worst[0]:
                worst = (left_out, shop.name)
        elif shop.held_out:
            line += " (held out: never tuned on)"
            if worst is None or report.top1 < worst[0]:
                worst = (report.top1, shop.name)
        lines.append(f"{line} (e5 baseline top1={base.top1:.3f} top3={base.top3:.3f}) n={report.n}")
        if shop.name == "demo":
            timings = []
            for question, _ in rows:
                started = time.perf_counter()
                kb.search(question)
                timings.append(time.perf_counter() - started)
            lines.append(latency_line("kb search latency", timings))
        db.close()
    if worst:
        lines.append(f"kb worst shop (left out, or held out): {worst[1]} top1={worst[0]:.3f}")
    return lines
