"""Taking reviews in (CSV file or JSON batch): validate, tag, store, and open cases for negative ones.

Idempotent by review_id; a bad row is reported with its row number and reason, good rows are kept.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reviews import store
from reviews.aspects import tag_aspects
from reviews.sentiment import Judgement, judge
from reviews.workflow import SlaPolicy, open_case
from storage.db import Store

COLUMNS = ("review_id", "order_id", "sku", "openid", "rating", "content", "created_at")
MAX_BATCH = 500
_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")


class ReviewBatchError(ValueError):
    """The whole request or file is unusable (wrong header, too many rows, not a list)."""


@dataclass(frozen=True)
class RowProblem:
    """Why one row was not taken."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass
class IngestResult:
    """What happened to a batch."""

    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    cases: list[int] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            "added": len(self.added),
            "duplicates": len(self.duplicates),
            "cases_opened": self.cases,
            "flagged_for_review": self.flagged,
            "errors": [{"row": p.row, "reason": p.reason} for p in self.problems],
        }


def validate(number: int, raw: dict[str, Any]) -> store.ReviewRow | RowProblem:
    """One row of a CSV file or JSON batch (``number`` counts from 1 for the first data row)."""
    review_id = str(raw.get("review_id") or "").strip()
    if not _ID.match(review_id):
        return RowProblem(number, "review_id is missing or has characters other than letters, digits, - _ . :")
    try:
        rating = int(str(raw.get("rating", "")).strip())
    except ValueError:
        return RowProblem(number, f"rating '{raw.get('rating')}' is not a whole number from 1 to 5")
    if not 1 <= rating <= 5:
        return RowProblem(number, f"rating {rating} is not from 1 to 5")
    content = str(raw.get("content") or "").strip()
    if not content:
        return RowProblem(number, "content is empty")
    if len(content) > 5000:
        return RowProblem(number, "content is longer than 5000 characters")
    created = str(raw.get("created_at") or "").strip()
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return RowProblem(number, f"created_at '{created}' is not ISO 8601")
    if moment.tzinfo is None:
        return RowProblem(number, f"created_at '{created}' has no time zone (e.g. +08:00)")
    return store.ReviewRow(
        review_id=review_id,
        order_id=str(raw.get("order_id") or "").strip(),
        sku=str(raw.get("sku") or "").strip(),
        openid=str(raw.get("openid") or "").strip(),
        rating=rating,
        content=content,
        created_at=moment.isoformat(),
        created_ts=moment.timestamp(),
    )


def rows_from_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Numbered rows of a reviews CSV (row 2 is the first data row, as a spreadsheet shows it)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ReviewBatchError(f"the header lacks {', '.join(missing)} (expected {','.join(COLUMNS)})")
    return [(number, row) for number, row in enumerate(reader, start=2)]


def rows_from_json(data: Any) -> list[tuple[int, dict[str, Any]]]:
    """Numbered rows of a JSON batch: a list of objects, or {"reviews": [...]}; row 1 is the first."""
    items = data.get("reviews") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ReviewBatchError('expected a JSON list of reviews or {"reviews": [...]}')
    if len(items) > MAX_BATCH:
        raise ReviewBatchError(f"at most {MAX_BATCH} reviews per request, got {len(items)}")
    return [(i, item if isinstance(item, dict) else {}) for i, item in enumerate(items, start=1)]


def prepare(rows: Iterable[tuple[int, dict[str, Any]]]) -> tuple[list[store.ReviewRow], list[RowProblem]]:
    """Validate rows; a review_id repeated within the batch is a problem on its later rows."""
    good: list[store.ReviewRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for number, raw in rows:
        result = validate(number, raw)
        if isinstance(result, RowProblem):
            problems.append(result)
        elif result.review_id in seen:
            problems.append(RowProblem(number, f"review_id {result.review_id} already on row {seen[result.review_id]}"))
        else:
            seen[result.review_id] = number
            good.append(result)
    return good, problems


def store_reviews(
    db: Store,
    reviews: list[store.ReviewRow],
    judgements: list[Judgement],
    now: float,
    policy: SlaPolicy,
    problems: list[RowProblem] | None = None,
) -> IngestResult:
    """Store new reviews with their tags and open a case for each negative one, atomically."""
    result = IngestResult(problems=list(problems or []))
    with db.atomic():
        existing = store.existing_review_ids(db, [r.review_id for r in reviews])
        for review, verdict in zip(reviews, judgements, strict=True):
            if review.review_id in existing:
                result.duplicates.append(review.review_id)
                continue
            db.table("reviews").insert(
                {
                    **review.__dict__,
                    "received_ts": now,
                    "sentiment": verdict.sentiment,
                    "probability": round(verdict.probability, 4),
                    "needs_look": int(verdict.needs_look),
                }
            )
            db.table("review_aspects").insert_all(
                {
                    "review_id": review.review_id,
                    "aspect": t.aspect,
                    "polarity": t.polarity,
                    "keyword": t.keyword,
                    "clause": t.clause,
                    "created_ts": review.created_ts,
                    "sku": review.sku,
                }
                for t in _unique_tags(review.content)
            )
            result.added.append(review.review_id)
            if verdict.needs_look:
                result.flagged.append(review.review_id)
            if verdict.sentiment == "negative":
                case_id = open_case(db, review.review_id, now, policy)
                if case_id is not None:
                    result.cases.append(case_id)
    return result


def _unique_tags(text: str) -> list[Any]:
    """Aspect tags with repeats (the same aspect, polarity and keyword in two clauses) dropped,
    so a report counts each review once per keyword."""
    seen: set[tuple[str, str, str | None]] = set()
    unique = []
    for tag in tag_aspects(text):
        key = (tag.aspect, tag.polarity, tag.keyword)
        if key not in seen:
            seen.add(key)
            unique.append(tag)
    return unique


def judge_reviews(model: Any, reviews: list[store.ReviewRow]) -> list[Judgement]:
    """Sentiment of every review from its text and stars (blocking: runs the model)."""
    if not reviews:
        return []
    probabilities = model.predict_proba([r.content for r in reviews])
    return [judge(float(p), r.rating) for p, r in zip(probabilities, reviews, strict=True)]
