"""The shop's intent corrections: stored once per message, exported for kefu intents eval."""

from __future__ import annotations

from pathlib import Path

import pytest

import server
from intents import corrections
from intents.evaluate import read_labelled
from storage.db import open_db
from tests.helpers import NewDb


def test_a_second_verdict_replaces_the_first_and_exports(new_db: NewDb, tmp_path: Path) -> None:
    db = open_db(new_db("k.db"), server.MIGRATIONS)
    corrections.record_correction(db, message_id=7, text="那个事呢", intent="greet", predicted="greet", agent="a", now=1.0)
    corrections.record_correction(db, message_id=7, text="那个事呢", intent="order_status", predicted="greet", agent="b", now=2.0)
    corrections.record_correction(db, message_id=None, text="发票呢", intent="ask_invoice", predicted=None, agent="a", now=3.0)
    assert corrections.training_pairs(db) == [("发票呢", "ask_invoice"), ("那个事呢", "order_status")]
    out = tmp_path / "out" / "c.csv"
    assert corrections.export_csv(db, out) == 2
    assert read_labelled(out) == [("发票呢", "ask_invoice"), ("那个事呢", "order_status")]
    with pytest.raises(corrections.CorrectionError):
        corrections.record_correction(db, message_id=8, text="x", intent="nonsense", predicted=None, agent="a", now=4.0)
    with pytest.raises(corrections.CorrectionError):
        corrections.record_correction(db, message_id=9, text="  ", intent="greet", predicted=None, agent="a", now=4.0)
    db.close()
