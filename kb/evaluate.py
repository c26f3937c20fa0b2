"""``kefu kb eval FILE.csv``: how often search puts the expected entry first / in the top 3."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from kb.search import UNKNOWN, KnowledgeBase

_EXPECTED = re.compile(r"^(faq:\S+|sku:\S+|none)$")


class EvalFileError(ValueError):
    """The evaluation file is not a ``question,expected`` CSV."""


def read_questions(path: Path) -> list[tuple[str, str]]:
    """Rows of (question, expected); expected is faq:ID, sku:SKU or none (nothing should match)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"question", "expected"} <= set(reader.fieldnames):
            raise EvalFileError(f"{path}: the header must have the columns question,expected")
        rows = []
        for number, row in enumerate(reader, start=2):
            question, expected = (row.get("question") or "").strip(), (row.get("expected") or "").strip()
            if not question or not _EXPECTED.match(expected):
                raise EvalFileError(f"{path}: row {number}: need a question and expected as faq:ID, sku:SKU or none")
            rows.append((question, expected))
    return rows


@dataclass(frozen=True)
class KbReport:
    """Per question: the expected label and the ranked labels search returned."""

    rows: tuple[tuple[str, str, tuple[str, ...]], ...]

    @property
    def n(self) -> int:
        return len(self.rows)

    def _rate(self, k: int) -> float:
        return sum(expected in ranked[:k] for _, expected, ranked in self.rows) / self.n if self.n else 0.0

    @property
    def top1(self) -> float:
        return self._rate(1)

    @property
    def top3(self) -> float:
        return self._rate(3)


def evaluate(kb: KnowledgeBase, rows: list[tuple[str, str]]) -> KbReport:
    """Search every question; a ``none`` row is right when search says it does not know."""
    out = []
    for question, expected in rows:
        result = kb.search(question)
        ranked = tuple(h.label for h in result.hits)
        if result.decision == UNKNOWN:
            ranked = ("none", *ranked)
        out.append((question, expected, ranked))
    return KbReport(tuple(out))


def format_report(report: KbReport) -> str:
    """Misses first, then the last line ``top1=… top3=… n=…``."""
    lines = [
        f"miss: {question} expected {expected}, got {', '.join(ranked[:3]) or '-'}"
        for question, expected, ranked in report.rows
        if not ranked or ranked[0] != expected
    ]
    lines.append(f"top1={report.top1:.3f} top3={report.top3:.3f} n={report.n}")
    return "\n".join(lines)
