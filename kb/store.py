"""The shop's catalogue, FAQ and orders in SQLite, with the embeddings of their texts."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import sqlite_utils
from sqlite_utils import Migrations

from storage.db import Store, dialect

migrations = Migrations("kefu.kb")

# Order states; CSV files may use these codes or the Chinese words shops export.
ORDER_STATES = {
    "pending_payment": "待付款",
    "paid": "待发货",
    "shipped": "已发货",
    "delivered": "已签收",
    "cancelled": "已取消",
    "refunding": "退款中",
    "refunded": "已退款",
}


@migrations()
def m001_catalogue(db: sqlite_utils.Database) -> None:
    db.table("products").create(
        {
            "sku": str,
            "name": str,
            "category": str,
            "price_fen": int,
            "stock": int,
            "description": str,
            "specs": str,
            "aliases": str,
            "shipping": str,
        },
        pk="sku",
        not_null={"name", "category", "price_fen", "stock"},
    )
    db.table("faq").create(
        {"id": str, "question": str, "answer": str, "sku": str, "alt_questions": str},
        pk="id",
        not_null={"question", "answer"},
    )
    db.table("orders").create(
        {
            "order_id": str,
            "openid": str,
            "sku": str,
            "quantity": int,
            "status": str,
            "carrier": str,
            "tracking_no": str,
            "address": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="order_id",
        not_null={"openid", "sku", "quantity", "status"},
    )
    db.table("orders").create_index(["openid", "created_at"])
    db.table("kb_embeddings").create(
        {"kind": str, "ref": str, "text": str, "text_hash": str, "model": str, "vector": bytes},
        pk=("kind", "ref", "text_hash", "model"),
    )


@migrations()
def m002_catalogue_generation(db: sqlite_utils.Database) -> None:
    """A counter that every change to products or FAQ bumps, whoever writes it (``kefu kb import``,
    the console, plain SQL), so a running server knows to re-read the catalogue."""
    db.table("kb_generation").create({"id": int, "n": int}, pk="id")
    db.table("kb_generation").insert({"id": 1, "n": 0})
    postgres = dialect(db) == "postgresql"
    if postgres:  # a PostgreSQL trigger runs a function; SQLite's carries its statement
        db.execute(
            "CREATE FUNCTION kb_generation_bump() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN UPDATE kb_generation SET n = n + 1 WHERE id = 1; RETURN NULL; END $$"
        )
    for table in ("products", "faq"):
        for event in ("INSERT", "UPDATE", "DELETE"):
            action = (
                "FOR EACH ROW EXECUTE FUNCTION kb_generation_bump()"
                if postgres
                else "BEGIN UPDATE kb_generation SET n = n + 1 WHERE id = 1; END"
            )
            db.execute(f"CREATE TRIGGER kb_generation_{table}_{event.lower()} AFTER {event} ON {table} {action}")


def generation(db: Store) -> int:
    """How many times products and FAQ have changed since the database was made."""
    return int(db.execute("SELECT n FROM kb_generation WHERE id = 1").fetchone()[0])


@dataclass(frozen=True)
class Product:
    """One catalogue row, as answers are composed from it."""

    sku: str
    name: str
    category: str
    price_fen: int
    stock: int
    description: str
    specs: tuple[tuple[str, str], ...]
    aliases: tuple[str, ...]
    shipping: str

    @property
    def price(self) -> str:
        """Price in yuan with two decimals."""
        return f"{self.price_fen // 100}.{self.price_fen % 100:02d}"


@dataclass(frozen=True)
class Faq:
    """One FAQ entry."""

    id: str
    question: str
    answer: str
    sku: str | None
    alt_questions: tuple[str, ...]


@dataclass(frozen=True)
class Order:
    """One order line of a shopper."""

    order_id: str
    openid: str
    sku: str
    quantity: int
    status: str
    carrier: str
    tracking_no: str
    address: str
    created_at: str
    updated_at: str


ID_PATTERN = re.compile(r"[A-Za-z0-9_\-.]{1,64}")
ID_RULE = "may only hold letters, digits, '-', '_' and '.' (1 to 64 of them)"


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a SKU, FAQ id or order id (the importer's and the editor's one rule), or None."""
    if ID_PATTERN.fullmatch(value):
        return None
    return f"'{value[:80]}' {ID_RULE}"


def split_list(value: str | None) -> tuple[str, ...]:
    """``a|b|c`` into its non-empty parts."""
    return tuple(p.strip() for p in (value or "").split("|") if p.strip())


def parse_specs(value: str | None) -> tuple[tuple[str, str], ...]:
    """``key:value; key:value`` into pairs (full-width colons accepted)."""
    pairs = []
    for part in (value or "").replace("；", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.replace("：", ":").partition(":")
        if not sep:
            raise ValueError(f"spec '{part}' is not key:value")
        pairs.append((key.strip(), val.strip()))
    return tuple(pairs)


def _product(row: dict[str, object]) -> Product:
    return Product(
        sku=str(row["sku"]),
        name=str(row["name"]),
        category=str(row["category"]),
        price_fen=int(row["price_fen"]),  # type: ignore[call-overload]
        stock=int(row["stock"]),  # type: ignore[call-overload]
        description=str(row["description"] or ""),
        specs=parse_specs(str(row["specs"] or "")),
        aliases=split_list(str(row["aliases"] or "")),
        shipping=str(row["shipping"] or ""),
    )


def _faq(row: dict[str, object]) -> Faq:
    return Faq(
        id=str(row["id"]),
        question=str(row["question"]),
        answer=str(row["answer"]),
        sku=str(row["sku"]) if row["sku"] else None,
        alt_questions=split_list(str(row["alt_questions"] or "")),
    )


def _order(row: dict[str, object]) -> Order:
    return Order(**{k: (int(v) if k == "quantity" else str(v or "")) for k, v in row.items()})  # type: ignore[arg-type,call-overload]


def all_products(db: Store) -> list[Product]:
    """Every product, by SKU."""
    return [_product(r) for r in db.table("products").rows_where(order_by="sku")]


def get_product(db: Store, sku: str) -> Product | None:
    """One product as it is now (answers are composed from the live row)."""
    rows = list(db.table("products").rows_where("sku = ?", [sku]))
    return _product(rows[0]) if rows else None


def in_stock_alternatives(db: Store, category: str, exclude: str, limit: int = 3) -> list[Product]:
    """Products of the same category that can be shipped now, most stock first."""
    rows = db.table("products").rows_where(
        "category = ? AND sku != ? AND stock > 0", [category, exclude], order_by="stock DESC", limit=limit
    )
    return [_product(r) for r in rows]


def all_faq(db: Store) -> list[Faq]:
    """Every FAQ entry, by id."""
    return [_faq(r) for r in db.table("faq").rows_where(order_by="id")]


def get_faq(db: Store, faq_id: str) -> Faq | None:
    """One FAQ entry."""
    rows = list(db.table("faq").rows_where("id = ?", [faq_id]))
    return _faq(rows[0]) if rows else None


def save_faq(db: Store, faq: Faq) -> None:
    """Insert or replace one FAQ entry (the console's editor)."""
    db.table("faq").upsert(
        {
            "id": faq.id,
            "question": faq.question,
            "answer": faq.answer,
            "sku": faq.sku,
            "alt_questions": "|".join(faq.alt_questions),
        },
        pk="id",
    )


def orders_of(db: Store, openid: str) -> list[Order]:
    """A shopper's own orders, newest first (never anyone else's)."""
    return [_order(r) for r in db.table("orders").rows_where("openid = ?", [openid], order_by="created_at DESC")]


def get_order(db: Store, openid: str, order_id: str) -> Order | None:
    """An order by number, only if it belongs to this shopper."""
    rows = list(db.table("orders").rows_where("order_id = ? AND openid = ?", [order_id, openid]))
    return _order(rows[0]) if rows else None


def text_hash(text: str) -> str:
    """Key of an embedded text."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Doc:
    """One text that stands for a product or an FAQ entry in search."""

    kind: str  # "faq", "product" or "spec"
    ref: str
    text: str


SPEC_SEP = "\t"


def search_docs(products: Iterable[Product], faqs: Iterable[Faq]) -> list[Doc]:
    """The texts embedded for search: each FAQ's questions and question with answer; each product's
    names, aliases and spec lines (kind ``spec``, ref ``SKU<TAB>key``), so a question about a spec
    finds its product and its line."""
    docs: list[Doc] = []
    for faq in faqs:
        for text in dict.fromkeys((faq.question, *faq.alt_questions, f"{faq.question} {faq.answer}")):
            docs.append(Doc("faq", faq.id, text))
    for product in products:
        for text in dict.fromkeys((product.name, *product.aliases)):
            docs.append(Doc("product", product.sku, text))
        for key, value in product.specs:
            docs.append(Doc("spec", f"{product.sku}{SPEC_SEP}{key}", f"{product.name} {key}：{value}"))
    return docs


def stored_vectors(db: Store, model: str) -> dict[tuple[str, str, str], np.ndarray]:
    """Embeddings already computed with ``model``, by (kind, ref, text hash)."""
    out = {}
    for row in db.table("kb_embeddings").rows_where("model = ?", [model]):
        out[(row["kind"], row["ref"], row["text_hash"])] = np.frombuffer(row["vector"], dtype=np.float32)
    return out


def add_vectors(db: Store, model: str, new: list[tuple[Doc, np.ndarray]]) -> None:
    """Store embeddings computed ahead of an import (nothing is dropped)."""
    with db.atomic():
        db.table("kb_embeddings").upsert_all(
            [
                {
                    "kind": doc.kind,
                    "ref": doc.ref,
                    "text": doc.text,
                    "text_hash": text_hash(doc.text),
                    "model": model,
                    "vector": np.asarray(vec, dtype=np.float32).tobytes(),
                }
                for doc, vec in new
            ],
            pk=("kind", "ref", "text_hash", "model"),
        )


def replace_vectors(db: Store, model: str, keep: set[tuple[str, str, str]], new: list[tuple[Doc, np.ndarray]]) -> None:
    """Store new embeddings and drop those of texts that no longer exist."""
    with db.atomic():
        for row in list(db.table("kb_embeddings").rows_where("model = ?", [model], select="kind, ref, text_hash")):
            if (row["kind"], row["ref"], row["text_hash"]) not in keep:
                db.execute(
                    "DELETE FROM kb_embeddings WHERE kind = ? AND ref = ? AND text_hash = ? AND model = ?",
                    [row["kind"], row["ref"], row["text_hash"], model],
                )
        add_vectors(db, model, new)
