"""The Store interface means the same on SQLite and PostgreSQL: placeholders, row helpers, nested
transactions, numbering of new rows. Under `make test-postgres` these run on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from storage.db import open_db
from storage.pg import translate
from tests.helpers import NewDb


def test_placeholders_become_psycopgs_outside_literals_names_and_comments() -> None:
    assert translate("SELECT * FROM t WHERE a = ? AND b = ?") == "SELECT * FROM t WHERE a = %s AND b = %s"
    # psycopg reads every % of a statement with parameters, in literals too: each is doubled.
    assert translate("SELECT '100%', 'is it?' FROM t WHERE a LIKE ?") == "SELECT '100%%', 'is it?' FROM t WHERE a LIKE %s"
    assert translate("SELECT 'it''s ?', \"odd?name\" FROM t -- why?\nWHERE a = ?") == (
        "SELECT 'it''s ?', \"odd?name\" FROM t -- why?\nWHERE a = %s"
    )
    assert translate("SELECT /* a ? here */ a FROM t WHERE b = ?") == "SELECT /* a ? here */ a FROM t WHERE b = %s"


@pytest.fixture
def db(new_db: NewDb) -> Iterator[Any]:
    database = open_db(new_db("backends.db"))
    database.table("notes").create({"id": int, "text": str, "n": int}, pk="id", defaults={"n": 0})
    yield database
    database.close()


def test_question_marks_and_percent_signs_in_literals_are_text(db: Any) -> None:
    db.table("notes").insert_all([{"text": "a?b"}, {"text": "100%"}, {"text": "plain"}])
    rows = db.execute("SELECT text FROM notes WHERE text LIKE '%?%' OR (text LIKE ? AND text != '?') ORDER BY id", ["1%"])
    assert [r[0] for r in rows] == ["a?b", "100%"]
    assert [r["text"] for r in db.query("SELECT text FROM notes WHERE text LIKE '%\\%%' ESCAPE '\\'")] == ["100%"]


def test_integer_primary_keys_number_new_rows(db: Any) -> None:
    assert db.table("notes").insert({"text": "one"}).last_pk == 1
    assert db.execute("INSERT INTO notes (text) VALUES (?) RETURNING id", ["two"]).fetchone()[0] == 2
    db.table("notes").insert_all([{"text": "three"}, {"text": "four"}])
    assert [(r["id"], r["text"], r["n"]) for r in db.table("notes").rows_where(order_by="id")] == [
        (1, "one", 0),
        (2, "two", 0),
        (3, "three", 0),
        (4, "four", 0),
    ]
    assert db.table("notes").get(3)["text"] == "three"
    db.table("notes").upsert({"id": 3, "text": "drei"}, pk="id")
    db.table("notes").upsert({"id": 5, "text": "five"}, pk="id")
    assert [r["text"] for r in db.table("notes").rows_where("id >= ?", [3], order_by="id")] == ["drei", "four", "five"]
    assert db.table("notes").count == 5


def test_a_nested_atomic_block_rolls_back_alone(db: Any) -> None:
    with db.atomic():
        db.table("notes").insert({"text": "kept"})
        with pytest.raises(RuntimeError), db.atomic():
            db.table("notes").insert({"text": "undone"})
            raise RuntimeError("this step fails")
        db.table("notes").insert({"text": "also kept"})
    with pytest.raises(RuntimeError), db.atomic():
        db.table("notes").insert({"text": "all undone"})
        raise RuntimeError("the whole block fails")
    assert [r["text"] for r in db.table("notes").rows_where(order_by="id")] == ["kept", "also kept"]


def test_sums_and_averages_come_back_as_numbers(db: Any) -> None:
    db.table("notes").insert_all([{"text": "a", "n": 1}, {"text": "b", "n": 2}])
    total, mean = db.execute("SELECT sum(n), avg(n) FROM notes").fetchone()
    assert (total, mean) == (3, 1.5) and isinstance(total, int) and isinstance(mean, float)
