"""Tune the search thresholds on the development set (bench/data/kb_dev.csv), never the test set.

Prints the best values found; they are copied into ``kb.search.Thresholds`` by hand.
"""

from __future__ import annotations

import dataclasses
import itertools

from bench.common import DATA, demo_db, demo_kb
from kb.evaluate import read_questions
from kb.search import UNKNOWN


def main() -> None:
    """Grid-search the bonuses and thresholds, maximising top-1 on the dev set."""
    kb = demo_kb(demo_db())
    rows = read_questions(DATA / "kb_dev.csv")
    raw = [(kb.raw_scores(q), expected) for q, expected in rows]
    base = kb.thresholds
    best_score, best_t = -1.0, base
    grid = itertools.product(
        [0.0, 0.02, 0.04, 0.06, 0.08, 0.1],  # mention_bonus
        [0.0, 0.01, 0.02, 0.03, 0.05],  # faq_product_bonus
        [0.86, 0.87, 0.88, 0.89, 0.895, 0.9, 0.905, 0.91, 0.915, 0.92, 0.93],  # clarify (the don't-know line)
    )
    for mention, faq_bonus, clarify in grid:
        # Between clarify and answer the bot asks which entry was meant; the band is kept narrow.
        kb.thresholds = dataclasses.replace(
            base, mention_bonus=mention, faq_product_bonus=faq_bonus, clarify=clarify, answer=clarify + 0.02
        )
        right = 0
        for (best, mentioned), expected in raw:
            result = kb.rank(best, mentioned)
            label = "none" if result.decision == UNKNOWN else (result.top.label if result.top else "none")
            right += label == expected
        score = right / len(raw)
        if score > best_score:
            best_score, best_t = score, kb.thresholds
    print(f"dev top1={best_score:.3f} n={len(raw)} with {best_t}")


if __name__ == "__main__":
    main()
