"""The first run serves before the sentiment model exists: reviews wait, nothing is lost, then they are tagged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from console import jobs
from reviews.sentiment import SentimentModel
from tests.fakes import FakeEncoder, FakeNlu
from tests.helpers import NewDb, peek

REVIEW = {
    "review_id": "F1",
    "sku": "TEA-001",
    "openid": "oFirst",
    "rating": 1,
    "content": "茶叶发霉了，很失望",
    "created_at": "2026-11-20T10:00:00+08:00",
}


async def test_reviews_wait_for_the_sentiment_model_then_are_tagged(
    new_db: NewDb, tmp_path: Path, wechat_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "SENTIMENT_POLL", 0.1)
    model_path = tmp_path / "sentiment-shop.npz"
    client = await wechat_client(
        nlu=FakeNlu(), reviews_token="tok", sentiment_model=str(model_path), cache=str(tmp_path / "cache")
    )
    headers = {"Authorization": "Bearer tok"}
    resp = await client.post("/api/reviews", data=json.dumps([REVIEW]), headers=headers)
    assert resp.status == 503 and resp.headers["Retry-After"] == "60"
    assert "retry" in (await resp.json())["error"]
    assert peek(new_db("kefu.db"), "SELECT count(*) FROM reviews") == [(0,)]  # refused whole: the sender still has it

    # The background training finishes: a model lands where the server looks.
    texts = [
        "很好吃",
        "包装很好",
        "物流很快",
        "非常满意",
        "好评",
        "还会再买",
        "太差了",
        "发霉了",
        "很失望",
        "难吃",
        "差评",
        "退货",
    ]
    labels = [1] * 6 + [0] * 6
    SentimentModel.train(FakeEncoder(), texts, labels).save(model_path)
    for _ in range(100):
        resp = await client.post("/api/reviews", data=json.dumps([REVIEW]), headers=headers)
        if resp.status != 503:
            break
        await asyncio.sleep(0.1)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["added"] == 1
    [(sentiment, probability)] = peek(new_db("kefu.db"), "SELECT sentiment, probability FROM reviews WHERE review_id = 'F1'")
    assert sentiment in ("positive", "neutral", "negative") and probability is not None
