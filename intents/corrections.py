"""The shop's own intent labels: agents confirm or correct what the bot understood.

They stay in the shop's database (they are its shoppers' words, never part of the repository);
``kefu train`` adds them to the shipped training data, ``kefu intents export`` writes them out
as ``text,intent`` for ``kefu intents eval``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from intents.evaluate import INTENTS
from storage.db import Store

migrations = Migrations("kefu.intents")


class CorrectionError(ValueError):
    """A correction that cannot be stored (unknown intent, empty text)."""


@migrations()
def m001_corrections(db: sqlite_utils.Database) -> None:
    db.table("nlu_corrections").create(
        {
            "id": int,
            "message_id": int,
            "text": str,
            "intent": str,
            "predicted": str,
            "corrected_by": str,
            "corrected_at": float,
        },
        pk="id",
        not_null={"text", "intent", "corrected_at"},
    )
    # One verdict per shopper message: a second click replaces the first.
    db.table("nlu_corrections").create_index(["message_id"], unique=True)


@dataclass(frozen=True)
class Correction:
    """An agent's verdict on one shopper message."""

    text: str
    intent: str
    predicted: str | None
    corrected_by: str | None
    corrected_at: float


def record_correction(
    db: Store,
    *,
    message_id: int | None,
    text: str,
    intent: str,
    predicted: str | None,
    agent: str | None,
    now: float,
) -> None:
    """Store (or replace) the verdict on one message."""
    text = text.strip()
    if intent not in INTENTS:
        raise CorrectionError(f"unknown intent {intent!r}")
    if not text:
        raise CorrectionError("the message has no text to learn from")
    with db.atomic():
        db.execute(
            "INSERT INTO nlu_corrections (message_id, text, intent, predicted, corrected_by, corrected_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
            "intent = excluded.intent, corrected_by = excluded.corrected_by, corrected_at = excluded.corrected_at",
            [message_id, text, intent, predicted, agent, now],
        )


def list_corrections(db: Store) -> list[Correction]:
    """Every verdict, oldest first."""
    rows = db.execute(
        "SELECT text, intent, predicted, corrected_by, corrected_at FROM nlu_corrections ORDER BY corrected_at, id"
    ).fetchall()
    return [Correction(str(r[0]), str(r[1]), r[2], r[3], float(r[4])) for r in rows]


def training_pairs(db: Store) -> list[tuple[str, str]]:
    """(text, intent) of every verdict, one per distinct text (the latest wins)."""
    latest: dict[str, str] = {}
    for correction in list_corrections(db):
        latest[correction.text] = correction.intent
    return sorted(latest.items())


def export_csv(db: Store, path: Path) -> int:
    """Write the verdicts as a ``text,intent`` CSV (what ``kefu intents eval`` reads); returns the count."""
    pairs = training_pairs(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "intent"])
        writer.writerows(pairs)
    return len(pairs)
