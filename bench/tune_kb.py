"""Tune the search bonuses and thresholds across shops, leaving one shop out at a time.

For each shop the grid is searched on the other shops' questions and the winner is scored on the
shop left out; the worst of those scores is what a shop kefu has never seen can expect. The values
tuned on all shops are printed last; they are copied into ``kb.search.Thresholds`` by hand.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

from bench.common import DATA, demo_db, demo_kb, load_encoder, shops
from kb.evaluate import read_questions
from kb.search import UNKNOWN, KnowledgeBase, Thresholds

Raw = list[tuple[tuple[dict[tuple[str, str], float], list[str]], str]]


def grid(base: Thresholds) -> Iterable[Thresholds]:
    """Every combination tried; between clarify and answer the bot asks which entry was meant."""
    for mention, faq_bonus, clarify in itertools.product(
        [0.0, 0.01, 0.02, 0.04],  # mention_bonus
        [0.0, 0.01, 0.02, 0.03, 0.05],  # faq_product_bonus
        [0.86, 0.87, 0.88, 0.89, 0.895, 0.9, 0.905, 0.91, 0.915, 0.92],  # clarify (the don't-know line)
    ):
        yield dataclasses.replace(
            base, mention_bonus=mention, faq_product_bonus=faq_bonus, clarify=clarify, answer=clarify + 0.02
        )


def top1(kb: KnowledgeBase, raw: Raw, thresholds: Thresholds) -> float:
    """Share of questions whose first answer (or "don't know") is the expected one."""
    kb.thresholds = thresholds
    right = 0
    for (best, mentioned), expected in raw:
        result = kb.rank(best, mentioned)
        label = "none" if result.decision == UNKNOWN else (result.top.label if result.top else "none")
        right += label == expected
    return right / len(raw) if raw else 0.0


def main() -> None:
    """Leave-one-shop-out: tune on the rest, score on the one left out; then tune on all."""
    encoder = load_encoder()
    sets: dict[str, tuple[KnowledgeBase, Raw]] = {}
    for shop in shops():
        kb = demo_kb(demo_db(shop=shop.folder), encoder=encoder)
        questions = DATA / "kb_dev.csv" if shop.name == "demo" else shop.questions  # the demo's held-out set stays unseen
        sets[shop.name] = (kb, [(kb.raw_scores(q), e) for q, e in read_questions(questions)])
    base = Thresholds()
    candidates = list(grid(base))

    def mean_top1(names: list[str], t: Thresholds) -> float:
        return sum(top1(*sets[n], t) for n in names) / len(names)

    worst = (1.0, "")
    for left_out in sets:
        rest = [n for n in sets if n != left_out]
        chosen = max(candidates, key=lambda t: mean_top1(rest, t))
        score = top1(*sets[left_out], chosen)
        knobs = f"mention={chosen.mention_bonus} faq={chosen.faq_product_bonus} clarify={chosen.clarify}"
        print(f"left out {left_out}: top1={score:.3f} with {knobs}")
        worst = min(worst, (score, left_out))
    print(f"worst shop left out: {worst[1]} top1={worst[0]:.3f}")
    chosen = max(candidates, key=lambda t: mean_top1(list(sets), t))
    per_shop = " ".join(f"{n}={top1(*sets[n], chosen):.3f}" for n in sets)
    print(f"tuned on all shops: {chosen}\n  {per_shop}")


if __name__ == "__main__":
    main()
