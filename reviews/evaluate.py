"""``kefu reviews eval FILE.csv``: sentiment accuracy on labelled reviews (a neutral verdict is an error)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from reviews.sentiment import text_label

_LABELS = {
    "positive": "positive",
    "negative": "negative",
    "1": "positive",
    "0": "negative",
    "pos": "positive",
    "neg": "negative",
}


class EvalFileError(ValueError):
    """The file is not a ``text,label`` CSV."""


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(text, positive|negative) rows; the label may also be 1/0. Also reads ``label,review`` corpora."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        text_col = "text" if "text" in fields else "review" if "review" in fields else None
        if text_col is None or "label" not in fields:
            raise EvalFileError(f"{path}: the header must have the columns text,label")
        rows = []
        for number, row in enumerate(reader, start=2):
            text = (row.get(text_col) or "").strip()
            label = _LABELS.get((row.get("label") or "").strip().lower())
            if label is None:
                raise EvalFileError(f"{path}: row {number}: label must be positive/negative or 1/0")
            if text:
                rows.append((text, label))
    return rows


@dataclass(frozen=True)
class SentimentReport:
    """(expected, predicted) pairs; predicted may be neutral."""

    pairs: tuple[tuple[str, str], ...]

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def accuracy(self) -> float:
        return sum(e == p for e, p in self.pairs) / self.n if self.n else 0.0

    @property
    def neutral_rate(self) -> float:
        return sum(p == "neutral" for _, p in self.pairs) / self.n if self.n else 0.0

    @property
    def macro_f1(self) -> float:
        scores = []
        for label in ("positive", "negative"):
            tp = sum(e == p == label for e, p in self.pairs)
            predicted = sum(p == label for _, p in self.pairs)
            actual = sum(e == label for e, _ in self.pairs)
            precision = tp / predicted if predicted else 0.0
            recall = tp / actual if actual else 0.0
            scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        return sum(scores) / len(scores)


def report_from_probabilities(rows: list[tuple[str, str]], probabilities: list[float]) -> SentimentReport:
    """Label each text from its P(positive) (text only: no stars in an evaluation file)."""
    return SentimentReport(tuple((label, text_label(p)) for (_, label), p in zip(rows, probabilities, strict=True)))


def format_report(report: SentimentReport) -> str:
    """Confusion table, then ``accuracy=… macro_f1=… neutral_rate=… n=…``."""
    lines = [f"{'expected / predicted':<22}{'positive':>9}{'neutral':>9}{'negative':>9}"]
    for expected in ("positive", "negative"):
        counts = [
            sum(e == expected and p == predicted for e, p in report.pairs) for predicted in ("positive", "neutral", "negative")
        ]
        lines.append(f"{expected:<22}{counts[0]:>9}{counts[1]:>9}{counts[2]:>9}")
    lines.append(
        f"accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} neutral_rate={report.neutral_rate:.3f} n={report.n}"
    )
    return "\n".join(lines)
