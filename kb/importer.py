"""``kefu kb import`` / ``export``: the shop's CSV files, validated row by row.

A file with any bad row is not imported at all, and every bad row is reported with its
file, row number, column and reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kb import store
from kb.compliance import check_text
from kb.csvfile import csv_text
from kb.encoder import Encoder
from kb.hours import CHINA
from kb.store import ORDER_STATES, id_problem, parse_specs, split_list
from storage.db import Store

COLUMNS = {
    "products.csv": ["sku", "name", "category", "price", "stock", "description", "specs", "aliases", "shipping"],
    "faq.csv": ["id", "question", "answer", "sku", "alt_questions"],
    "orders.csv": [
        "order_id",
        "openid",
        "sku",
        "quantity",
        "status",
        "carrier",
        "tracking_no",
        "address",
        "created_at",
        "updated_at",
    ],
}
TABLES = {"products.csv": ("products", "sku"), "faq.csv": ("faq", "id"), "orders.csv": ("orders", "order_id")}
_PRICE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_STATUS_BY_WORD = {word: code for code, word in ORDER_STATES.items()}


@dataclass(frozen=True)
class RowError:
    """What is wrong with one cell."""

    file: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}, column {self.column}: {self.reason}"


class KbImportError(Exception):
    """One or more rows are invalid; nothing from those files was imported."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass
class ImportSummary:
    """Per file: how many rows were added, changed and unchanged."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable lines, one per file."""
        return [
            f"{name}: {c['added']} added, {c['changed']} changed, {c['unchanged']} unchanged" for name, c in self.counts.items()
        ]


class _Cell(Exception):
    def __init__(self, column: str, reason: str) -> None:
        self.column = column
        self.reason = reason


def _required(row: dict[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise _Cell(column, "must not be empty")
    return value


def _key(row: dict[str, str], column: str) -> str:
    value = _required(row, column)
    problem = id_problem(value)
    if problem:
        raise _Cell(column, problem)
    return value


def _int(row: dict[str, str], column: str, minimum: int) -> int:
    value = _required(row, column)
    try:
        number = int(value)
    except ValueError:
        raise _Cell(column, f"'{value}' is not a whole number") from None
    if number < minimum:
        raise _Cell(column, f"must be at least {minimum}")
    return number


def _time(row: dict[str, str], column: str) -> str:
    value = _required(row, column)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Cell(column, f"'{value}' is not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=CHINA)  # shop backends in China export local time
    return parsed.isoformat()


def _product_row(row: dict[str, str], known_skus: set[str]) -> dict[str, Any]:
    price = _required(row, "price")
    if not _PRICE.match(price):
        raise _Cell("price", f"'{price}' is not a price in yuan such as 12.50")
    yuan, _, cents = price.partition(".")
    try:
        parse_specs(row.get("specs"))
    except ValueError as exc:
        raise _Cell("specs", str(exc)) from None
    return {
        "sku": _key(row, "sku"),
        "name": _required(row, "name"),
        "category": _required(row, "category"),
        "price_fen": int(yuan) * 100 + int((cents + "00")[:2]),
        "stock": _int(row, "stock", 0),
        "description": (row.get("description") or "").strip(),
        "specs": (row.get("specs") or "").strip(),
        "aliases": "|".join(split_list(row.get("aliases"))),
        "shipping": (row.get("shipping") or "").strip(),
    }


def _faq_row(row: dict[str, str], known_skus: set[str]) -> dict[str, Any]:
    sku = (row.get("sku") or "").strip() or None
    if sku and sku not in known_skus:
        raise _Cell("sku", f"unknown product '{sku}'")
    answer = _required(row, "answer")
    violations = check_text(answer)
    if violations:
        raise _Cell("answer", f"{violations[0].explanation}：「{violations[0].excerpt}」")
    return {
        "id": _key(row, "id"),
        "question": _required(row, "question"),
        "answer": answer,
        "sku": sku,
        "alt_questions": "|".join(split_list(row.get("alt_questions"))),
    }


def _order_row(row: dict[str, str], known_skus: set[str]) -> dict[str, Any]:
    sku = _required(row, "sku")
    if sku not in known_skus:
        raise _Cell("sku", f"unknown product '{sku}'")
    status = _required(row, "status")
    code = status if status in ORDER_STATES else _STATUS_BY_WORD.get(status)
    if code is None:
        allowed = ", ".join(f"{c}/{w}" for c, w in ORDER_STATES.items())
        raise _Cell("status", f"'{status}' is not one of {allowed}")
    return {
        "order_id": _key(row, "order_id"),
        "openid": _required(row, "openid"),
        "sku": sku,
        "quantity": _int(row, "quantity", 1),
        "status": code,
        "carrier": (row.get("carrier") or "").strip(),
        "tracking_no": (row.get("tracking_no") or "").strip(),
        "address": (row.get("address") or "").strip(),
        "created_at": _time(row, "created_at"),
        "updated_at": _time(row, "updated_at"),
    }


_PARSERS: dict[str, Callable[[dict[str, str], set[str]], dict[str, Any]]] = {
    "products.csv": _product_row,
    "faq.csv": _faq_row,
    "orders.csv": _order_row,
}


def read_file(path: Path, known_skus: set[str]) -> tuple[list[dict[str, Any]], list[RowError]]:
    """Validate one CSV file; return its clean rows and every error found."""
    name = path.name
    try:
        text = csv_text(path.read_bytes())
    except UnicodeDecodeError as exc:
        return [], [RowError(name, 0, "-", exc.reason)]
    reader = csv.DictReader(io.StringIO(text, newline=""))  # quoted fields may hold line breaks
    header = reader.fieldnames or []
    expected = COLUMNS[name]
    missing = [c for c in expected if c not in header]
    unknown = [c for c in header if c not in expected]
    if missing or unknown:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(unknown)}" if unknown else "",
            )
            if part
        )
        return [], [RowError(name, 1, "header", f"{detail} (expected {','.join(expected)})")]
    rows: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    key_column = TABLES[name][1]
    for number, raw in enumerate(reader, start=2):
        if None in raw:
            errors.append(RowError(name, number, "-", f"{len(header) + len(raw[None])} fields, expected {len(header)}"))
            continue
        try:
            clean = _PARSERS[name](raw, known_skus)
        except _Cell as cell:
            errors.append(RowError(name, number, cell.column, cell.reason))
            continue
        key = clean[key_column]
        if key in seen:
            errors.append(RowError(name, number, key_column, f"'{key}' already on row {seen[key]}"))
            continue
        seen[key] = number
        rows.append(clean)
    return rows, errors


def import_dir(db: Store, folder: Path) -> ImportSummary:
    """Upsert whichever of products.csv, faq.csv and orders.csv the folder holds."""
    present = [name for name in COLUMNS if (folder / name).exists()]
    if not present:
        raise KbImportError([RowError(str(folder), 0, "-", "holds none of products.csv, faq.csv, orders.csv")])
    known = {r["sku"] for r in db.table("products").rows_where(select="sku")}
    parsed: dict[str, list[dict[str, Any]]] = {}
    errors: list[RowError] = []
    for name in present:
        rows, file_errors = read_file(folder / name, known)
        if name == "products.csv":
            known |= {r["sku"] for r in rows}
        parsed[name] = rows
        errors.extend(file_errors)
    if errors:
        raise KbImportError(errors)
    summary = ImportSummary()
    with db.atomic():
        for name in present:
            table, pk = TABLES[name]
            counts = {"added": 0, "changed": 0, "unchanged": 0}
            existing = {r[pk]: r for r in db.table(table).rows}
            for row in parsed[name]:
                old = existing.get(row[pk])
                if old is None:
                    counts["added"] += 1
                elif {k: old.get(k) for k in row} != row:
                    counts["changed"] += 1
                else:
                    counts["unchanged"] += 1
            db.table(table).upsert_all(parsed[name], pk=pk)
            summary.counts[name] = counts
    return summary


class _TrialOver(Exception):
    """Ends a trial import: its transaction rolls back."""


def embed_ahead(
    db: Store,
    folder: Path,
    encoder: Callable[[], Encoder],
    *,
    batch: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed the texts an import of ``folder`` will add, before importing it (``kefu kb import``).

    The import is tried in a transaction that is rolled back, to see the catalogue it makes; the new
    texts are embedded with no lock held, and their vectors stored. When the real import then commits,
    a running server finds every vector ready and swaps the index in within a refresh interval,
    instead of embedding thousands of texts itself. ``encoder`` is called (loading the model) only
    after the files passed validation. Raises KbImportError like import_dir.
    """
    try:
        with db.atomic():
            import_dir(db, folder)  # its own atomic() becomes a savepoint of this transaction
            docs = store.search_docs(store.all_products(db), store.all_faq(db))
            raise _TrialOver
    except _TrialOver:
        pass  # rolled back: only the texts it would add were wanted
    if not docs:
        return 0
    model = encoder()  # only now: files with errors were refused above without loading the model
    stored = store.stored_vectors(db, model.name)
    todo = [d for d in docs if (d.kind, d.ref, store.text_hash(d.text)) not in stored]
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        vectors = model.encode([d.text for d in chunk])
        store.add_vectors(db, model.name, list(zip(chunk, vectors, strict=True)))
        if progress:
            progress(start + len(chunk), len(todo))
    return len(todo)


def _export_value(table: str, column: str, row: dict[str, Any]) -> str:
    if table == "products" and column == "price":
        fen = int(row["price_fen"])
        return f"{fen // 100}.{fen % 100:02d}"
    value = row.get(column)
    return "" if value is None else str(value)


def export_dir(db: Store, folder: Path) -> list[Path]:
    """Write the three CSV files in the import format."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns in COLUMNS.items():
        table, pk = TABLES[name]
        path = folder / name
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in db.table(table).rows_where(order_by=pk):
                writer.writerow([_export_value(table, c, row) for c in columns])
        written.append(path)
    return written
