"""The sentiment model asks the encoder only about texts its character n-gram head is unsure of."""

from __future__ import annotations

from typing import Any

import numpy as np

from reviews import sentiment
from reviews.sentiment import SentimentModel
from tests.fakes import FakeEncoder


class CountingEncoder(FakeEncoder):
    """The fake encoder, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> Any:
        self.seen.extend(texts)
        return super().encode(texts)


POSITIVE = ["很好很满意", "质量很好", "非常满意好评", "很好用", "满意很好", "好评很好"]
NEGATIVE = ["太差了很差", "质量很差", "非常失望差评", "很难用", "失望很差", "差评太差"]


def test_the_encoder_runs_only_where_the_ngram_head_is_unsure() -> None:
    encoder = CountingEncoder()
    model = SentimentModel.train(encoder, POSITIVE * 5 + NEGATIVE * 5, [1] * 30 + [0] * 30)
    texts = ["很好很满意质量很好好评", "太差了很差非常失望差评", "收到了"]
    p_ngram = sentiment._logistic(model._ngram_scores(texts))
    unsure = [t for t, p in zip(texts, p_ngram, strict=True) if sentiment.NGRAM_SURE < p < 1 - sentiment.NGRAM_SURE]
    assert unsure == ["收到了"]  # the two clear texts are sure, the neutral one is not
    encoder.seen.clear()
    probabilities = model.predict_proba(texts)
    assert encoder.seen == unsure
    assert probabilities[0] == np.float64(p_ngram[0]) and probabilities[1] == np.float64(p_ngram[1])
    embedded = sentiment._logistic(encoder.encode(["收到了"]) @ model.embed_coef + model.embed_bias)[0]
    expected = sentiment.EMBED_WEIGHT * embedded + (1 - sentiment.EMBED_WEIGHT) * p_ngram[2]
    assert abs(probabilities[2] - expected) < 1e-9
