"""``kefu intents eval FILE.csv``: per-intent precision and recall on a labelled set."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from intents.client import FALLBACK, OUT_OF_SCOPE, NluClient

INTENTS = (
    "greet",
    "goodbye",
    "thanks",
    "ask_price",
    "ask_stock",
    "ask_product_info",
    "ask_shipping",
    "order_status",
    "change_order",
    "cancel_order",
    "return_refund",
    "exchange",
    "complaint",
    "ask_promotion",
    "ask_invoice",
    "ask_payment",
    "human_agent",
    "out_of_scope",
)


class EvalFileError(ValueError):
    """The evaluation file is not a ``text,intent`` CSV."""


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """Rows of (text, intent) from a CSV with a ``text,intent`` header."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"text", "intent"} <= set(reader.fieldnames):
            raise EvalFileError(f"{path}: the header must have the columns text,intent")
        rows = []
        for number, row in enumerate(reader, start=2):
            text, intent = (row.get("text") or "").strip(), (row.get("intent") or "").strip()
            if not text or not intent:
                raise EvalFileError(f"{path}: row {number}: text and intent must not be empty")
            rows.append((text, intent))
    return rows


@dataclass(frozen=True)
class IntentReport:
    """Predictions against the truth, and the figures derived from them."""

    pairs: tuple[tuple[str, str], ...]  # (expected, predicted)

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def accuracy(self) -> float:
        return sum(e == p for e, p in self.pairs) / self.n if self.n else 0.0

    def per_intent(self) -> dict[str, tuple[float, float, float, int]]:
        """precision, recall, f1 and support for every intent seen."""
        labels = sorted({e for e, _ in self.pairs} | {p for _, p in self.pairs})
        out: dict[str, tuple[float, float, float, int]] = {}
        for label in labels:
            tp = sum(e == p == label for e, p in self.pairs)
            predicted = sum(p == label for _, p in self.pairs)
            support = sum(e == label for e, _ in self.pairs)
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[label] = (precision, recall, f1, support)
        return out

    @property
    def macro_f1(self) -> float:
        scores = [f1 for _, _, f1, support in self.per_intent().values() if support]
        return sum(scores) / len(scores) if scores else 0.0

    def confusions(self, top: int = 10) -> list[tuple[tuple[str, str], int]]:
        """The most frequent (expected, predicted) mistakes."""
        return Counter((e, p) for e, p in self.pairs if e != p).most_common(top)


async def evaluate(client: NluClient, rows: Iterable[tuple[str, str]]) -> IntentReport:
    """Classify every row; a fallback prediction counts as out_of_scope."""
    pairs = []
    for text, expected in rows:
        parse = await client.parse(text)
        predicted = OUT_OF_SCOPE if parse.intent == FALLBACK else parse.intent
        pairs.append((expected, predicted))
    return IntentReport(tuple(pairs))


def format_report(report: IntentReport) -> str:
    """The printed report; its last line is ``accuracy=… macro_f1=… n=…``."""
    lines = [f"{'intent':<18} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}"]
    for label, (precision, recall, f1, support) in report.per_intent().items():
        lines.append(f"{label:<18} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f} {support:>4}")
    confusions = report.confusions()
    if confusions:
        lines.append("most confused (expected -> predicted):")
        lines.extend(f"  {e} -> {p}: {count}" for (e, p), count in confusions)
    lines.append(f"accuracy={report.accuracy:.3f} macro_f1={report.macro_f1:.3f} n={report.n}")
    return "\n".join(lines)
