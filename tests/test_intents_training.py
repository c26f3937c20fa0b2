"""Training data: shipped files, composed wrappers and the shop's corrections, merged and normalised."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from intents import training
from intents.classifier import EmbeddingClassifier
from intents.client import FALLBACK, Parse
from intents.ensemble import EnsembleNlu, combine
from intents.evaluate import INTENTS
from tests.fakes import FakeEncoder


def test_every_intent_has_at_least_150_shipped_examples() -> None:
    counts = Counter(e.intent for e in training.read_examples())
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 150, counts.most_common()[-3:]


def test_wrappers_keep_the_request_intent() -> None:
    examples = [training.Example("发票抬头写错了", "ask_invoice"), training.Example("你好", "greet")]
    composed = training.compose(examples, per_intent=30)
    assert composed and {e.intent for e in composed} == {"ask_invoice"}  # small talk is never wrapped
    assert all("发票抬头写错了" in e.text and e.text != "发票抬头写错了" for e in composed)
    assert training.compose(examples, per_intent=30) == composed  # seeded


def test_corrections_join_the_training_set_and_change_the_hash() -> None:
    base = training.training_set()
    merged = training.training_set([("咨询订单号:123456789012 那个事咋样了", "order_status")])
    added = [e for e in merged[len(base) :]]
    assert [e.plain for e in added] == ["那个事咋样了"] * training.CORRECTION_WEIGHT  # normalised like live traffic
    assert training.project_hash() != training.project_hash([("那个事咋样了", "order_status")])
    assert all("[" not in e.text or "](" in e.text for e in base)  # no stray entity markup for Rasa


def test_rasa_data_file_is_valid_yaml_with_every_intent(tmp_path: Path) -> None:
    import yaml

    training.write_rasa_data(training.training_set(), tmp_path)
    data = yaml.safe_load((tmp_path / "nlu.yml").read_text(encoding="utf-8"))
    intents = {item["intent"] for item in data["nlu"] if "intent" in item}
    assert intents == set(INTENTS)
    assert any("regex" in item for item in data["nlu"])


async def test_train_learns_a_correction(tmp_path: Path) -> None:
    seen: list[list[training.Example]] = []

    def fake_rasa(examples: list[training.Example], target: Path) -> Path:
        seen.append(examples)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"model")
        return target

    encoder = FakeEncoder()
    text = "上回那个东西的事怎么说"
    models = training.train(tmp_path, tmp_path, encoder=encoder, corrections=[(text, "exchange")], rasa_trainer=fake_rasa)
    assert models.rasa.name.startswith("nlu-") and models.rasa.exists()
    assert any(e.plain == text and e.intent == "exchange" for e in seen[0])
    assert models.dense is not None
    dense = EmbeddingClassifier.load(models.dense, encoder.name)
    assert dense.memory == {text: "exchange"}
    rasa = _Rasa(Parse("", "greet", 0.9, (("greet", 0.9),)))
    learnt = await EnsembleNlu(rasa, dense, encoder.encode).parse(f"咨询订单号:261103457821 {text}")
    assert (learnt.intent, learnt.confidence, rasa.seen) == ("exchange", 1.0, [])
    # Trained once: a second call with the same data trains nothing.
    training.train(tmp_path, tmp_path, encoder=encoder, corrections=[(text, "exchange")], rasa_trainer=fake_rasa)
    assert len(seen) == 1


def test_combine_averages_and_ignores_rasa_fallback() -> None:
    labels = ("ask_price", "greet", "order_status")
    rasa = Parse("x", FALLBACK, 0.4, ((FALLBACK, 0.4), ("greet", 0.4), ("ask_price", 0.2)))
    dense = np.array([0.7, 0.1, 0.2])
    ranking = combine(rasa, dense, labels, rasa_weight=0.5)
    assert ranking[0][0] == "ask_price"
    assert sum(c for _, c in ranking) == pytest.approx(1.0)
    assert combine(None, dense, labels, 0.5)[0] == ("ask_price", pytest.approx(0.7))


class _Rasa:
    def __init__(self, parse: Parse) -> None:
        self.parse_result = parse
        self.seen: list[str] = []

    async def parse(self, text: str) -> Parse:
        self.seen.append(text)
        return self.parse_result


async def test_ensemble_classifies_the_words_and_keeps_pasted_ids(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    texts = ["发票开错了", "发票抬头不对", "快递到哪了", "物流怎么不动"]
    dense = EmbeddingClassifier.train(encoder.encode(texts), ["ask_invoice"] * 2 + ["order_status"] * 2, encoder.name)
    rasa = _Rasa(Parse("", "ask_invoice", 0.9, (("ask_invoice", 0.9), ("order_status", 0.1))))
    nlu = EnsembleNlu(rasa, dense, encoder.encode, threshold=0.0)
    parse = await nlu.parse("咨询订单号:261103457821 订单金额:299.00 下单时间:2026-11-03 发票开错了")
    assert rasa.seen == ["发票开错了"]
    assert parse.intent == "ask_invoice"
    assert parse.entity("order_id") == "261103457821"
    card_only = await nlu.parse("咨询订单号:261103457821 订单金额:299.00")
    assert card_only.intent == "out_of_scope" and len(rasa.seen) == 1
    unsure = await EnsembleNlu(rasa, dense, encoder.encode, threshold=0.99).parse("发票开错了")
    assert unsure.intent == FALLBACK and unsure.ranking[0][0] == "ask_invoice"
