"""kefu kb import/export: exact CSV formats, row-level errors, nothing half-imported."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

import server
from kb import store
from kb.importer import KbImportError, embed_ahead, export_dir, import_dir
from kb.search import KnowledgeBase, refresh_if_changed
from storage.db import DbRunner, open_db
from tests.conftest import DEMO
from tests.fakes import FakeEncoder
from tests.helpers import NewDb


@pytest.fixture
def db(new_db: NewDb) -> Iterator[sqlite_utils.Database]:
    database = open_db(new_db("storage.db"), server.MIGRATIONS)
    yield database
    database.close()


def shop_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    shutil.copytree(DEMO, folder)
    return folder


def edit_csv(path: Path, row_index: int, **changes: str) -> None:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0].keys())
    rows[row_index].update(changes)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_import_counts_added_changed_unchanged(db: sqlite_utils.Database, tmp_path: Path) -> None:
    folder = shop_copy(tmp_path)
    first = import_dir(db, folder)
    assert first.lines() == [
        "products.csv: 44 added, 0 changed, 0 unchanged",
        "faq.csv: 82 added, 0 changed, 0 unchanged",
        "orders.csv: 50 added, 0 changed, 0 unchanged",
    ]
    edit_csv(folder / "products.csv", 0, price="358.00")
    second = import_dir(db, folder)
    assert second.counts["products.csv"] == {"added": 0, "changed": 1, "unchanged": 43}
    assert second.counts["faq.csv"] == {"added": 0, "changed": 0, "unchanged": 82}
    product = store.get_product(db, "TEA-001")
    assert product is not None and product.price == "358.00" and product.price_fen == 35800


@pytest.mark.parametrize(
    ("file", "row", "change", "column", "reason"),
    [
        ("products.csv", 2, {"price": "12.345"}, "price", "not a price"),
        ("products.csv", 3, {"price": "abc"}, "price", "not a price"),
        ("products.csv", 4, {"stock": "-1"}, "stock", "at least 0"),
        ("products.csv", 5, {"stock": "很多"}, "stock", "not a whole number"),
        ("products.csv", 6, {"name": ""}, "name", "must not be empty"),
        ("products.csv", 7, {"specs": "产地杭州"}, "specs", "not key:value"),
        ("products.csv", 8, {"sku": "TEA 001"}, "sku", "may only hold"),
        ("faq.csv", 9, {"sku": "NOPE-1"}, "sku", "unknown product"),
        ("faq.csv", 10, {"answer": ""}, "answer", "must not be empty"),
        ("faq.csv", 11, {"answer": "晒图好评返现5元"}, "answer", "好评"),
        ("orders.csv", 11, {"status": "在路上"}, "status", "is not one of"),
        ("orders.csv", 12, {"created_at": "11月11日"}, "created_at", "ISO 8601"),
        ("orders.csv", 13, {"quantity": "0"}, "quantity", "at least 1"),
        ("orders.csv", 14, {"sku": "GONE-9"}, "sku", "unknown product"),
    ],
)
def test_bad_row_is_reported_and_nothing_imported(
    db: sqlite_utils.Database, tmp_path: Path, file: str, row: int, change: dict[str, str], column: str, reason: str
) -> None:
    folder = shop_copy(tmp_path)
    edit_csv(folder / file, row - 2, **change)
    with pytest.raises(KbImportError) as caught:
        import_dir(db, folder)
    messages = [str(e) for e in caught.value.errors]
    assert any(m.startswith(f"{file}: row {row}, column {column}:") and reason in m for m in messages), messages
    assert db.table("products").count == 0
    assert db.table("faq").count == 0
    assert db.table("orders").count == 0


def test_earlier_data_untouched_when_a_later_import_fails(db: sqlite_utils.Database, tmp_path: Path) -> None:
    folder = shop_copy(tmp_path)
    import_dir(db, folder)
    edit_csv(folder / "products.csv", 0, price="1.00")
    edit_csv(folder / "products.csv", 1, stock="x")
    with pytest.raises(KbImportError):
        import_dir(db, folder)
    product = store.get_product(db, "TEA-001")
    assert product is not None and product.price == "368.00"


def test_header_duplicates_encoding_and_field_count(db: sqlite_utils.Database, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "products.csv").write_text("sku,name,price\nA,a,1\n", encoding="utf-8")
    with pytest.raises(KbImportError) as caught:
        import_dir(db, folder)
    assert "row 1, column header: missing category, stock" in str(caught.value)

    header = "sku,name,category,price,stock,description,specs,aliases,shipping\n"
    (folder / "products.csv").write_text(
        header + "A,甲,茶,1.00,1,,,,\nA,乙,茶,2.00,1,,,,\nB,丙,茶,3.00,1,,,,,extra\n", encoding="utf-8"
    )
    with pytest.raises(KbImportError) as caught:
        import_dir(db, folder)
    text = str(caught.value)
    assert "row 3, column sku: 'A' already on row 2" in text
    assert "row 4, column -: 10 fields, expected 9" in text

    (folder / "products.csv").write_bytes((header + "A,龙井,茶,1.00,1,,,,\n").encode("gbk"))
    with pytest.raises(KbImportError) as caught:
        import_dir(db, folder)
    assert "not UTF-8" in str(caught.value)
    assert "GBK" in str(caught.value) and "CSV UTF-8" in str(caught.value)  # and how to fix it


def test_export_round_trip(new_db: NewDb, db: sqlite_utils.Database, tmp_path: Path) -> None:
    import_dir(db, DEMO)
    out = tmp_path / "export"
    export_dir(db, out)
    again = open_db(new_db("again.db"), server.MIGRATIONS)
    import_dir(again, out)
    assert import_dir(again, DEMO).counts == {
        "products.csv": {"added": 0, "changed": 0, "unchanged": 44},
        "faq.csv": {"added": 0, "changed": 0, "unchanged": 82},
        "orders.csv": {"added": 0, "changed": 0, "unchanged": 50},
    }
    with (out / "products.csv").open(encoding="utf-8") as f:
        by_sku = {row["sku"]: row for row in csv.DictReader(f)}
    assert by_sku["TEA-001"]["price"] == "368.00"
    assert by_sku["SNK-004"]["price"] == "49.90"
    again.close()


def test_embeddings_recomputed_only_for_changed_text(db: sqlite_utils.Database) -> None:
    import_dir(db, DEMO)
    kb = KnowledgeBase(FakeEncoder())
    total = kb.load(db)
    assert total == db.table("kb_embeddings").count > 100
    assert kb.load(db) == 0  # nothing changed, nothing embedded
    faq = store.get_faq(db, "F001")
    assert faq is not None
    store.save_faq(db, store.Faq(faq.id, "付款以后多久发货？", faq.answer, faq.sku, faq.alt_questions))
    assert kb.load(db) == 2  # the question alone and the question with its answer; nothing else
    assert db.table("kb_embeddings").count == total  # the old question's vectors were dropped


def sold_out(db: sqlite_utils.Database, sku: str) -> None:
    with db.atomic():
        db.execute("UPDATE products SET stock = 0 WHERE sku = ?", [sku])


async def test_a_running_index_picks_up_an_import_from_another_connection(
    new_db: NewDb, tmp_path: Path, make_runner: Callable[..., DbRunner]
) -> None:
    path = new_db("storage.db")
    runner = make_runner(open_db(path, server.MIGRATIONS))
    kb = KnowledgeBase(FakeEncoder())
    await runner.run(kb.load)
    assert kb.products == {}
    assert not await refresh_if_changed(kb, runner)  # nothing changed yet

    other = open_db(path, server.MIGRATIONS)  # as `kefu kb import` would, from its own process
    folder = shop_copy(tmp_path)
    edit_csv(folder / "products.csv", 0, price="299.00")
    import_dir(other, folder)
    other.close()

    assert await refresh_if_changed(kb, runner)
    assert kb.products["TEA-001"].price_fen == 29900
    assert len(kb.faqs) == 82
    assert kb.search("西湖龙井多少钱").hits
    assert not await refresh_if_changed(kb, runner)  # loaded once, not again

    before = kb.generation
    await runner.run(sold_out, "TEA-001")
    assert await runner.run(store.generation) > before  # plain SQL counts too
    assert await refresh_if_changed(kb, runner)
    assert kb.products["TEA-001"].stock == 0


def test_cached_encoder_embeds_a_message_once() -> None:
    from kb.encoder import CachedEncoder

    calls: list[list[str]] = []

    class Counting(FakeEncoder):
        def encode(self, texts: list[str]) -> object:
            calls.append(list(texts))
            return super().encode(texts)

    cached = CachedEncoder(Counting(), size=2)
    first = cached.encode(["西湖龙井多少钱"])
    again = cached.encode(["西湖龙井多少钱"])
    assert (first == again).all() and calls == [["西湖龙井多少钱"]]
    cached.encode(["a"])
    cached.encode(["b"])  # the oldest falls out
    cached.encode(["西湖龙井多少钱"])
    cached.encode(["x", "y"])  # batches are never cached
    assert calls[-2:] == [["西湖龙井多少钱"], ["x", "y"]] and cached.name == "fake-bigram-hash"


def test_import_embedded_ahead_leaves_the_server_nothing_to_embed(db: sqlite_utils.Database) -> None:
    calls: list[int] = []

    class Counting(FakeEncoder):
        def encode(self, texts: list[str]) -> Any:
            calls.append(len(texts))
            return super().encode(texts)

    added = embed_ahead(db, DEMO, Counting, batch=100)
    assert added > 126 and sum(calls) == added  # every product, FAQ and spec line, in batches
    assert store.generation(db) == 0 and not list(db.table("products").rows)  # nothing imported yet
    import_dir(db, DEMO)
    server_side = KnowledgeBase(FakeEncoder())
    assert server_side.plan(db).todo == []  # a running server only swaps the index in
    # Files with errors are refused before the model is even loaded.
    with pytest.raises(KbImportError):
        embed_ahead(db, Path("/nonexistent"), lambda: pytest.fail("model loaded"))  # type: ignore[arg-type,return-value]
