"""kefu's intent model for real: the trained Rasa server and the dense classifier on the real encoder."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from intents.classifier import EmbeddingClassifier
from intents.client import RasaClient
from intents.ensemble import EnsembleNlu
from intents.training import classifier_path, default_cache
from kb.encoder import Encoder
from tests.conftest import RasaServer

pytestmark = [pytest.mark.rasa, pytest.mark.model]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("你好，请问这款空气炸锅能做蛋挞吗？谢谢", "ask_product_info"),
        ("在吗在吗 发票抬头开错了 麻烦重开一下 谢谢亲", "ask_invoice"),
        ("亲 你好 我想把收货地址改一下", "change_order"),
        ("您好 我买的羽绒服还没发货 能不能催一下 谢谢", "order_status"),
        ("你好 在吗", "greet"),
        ("好的 谢谢你", "thanks"),
    ],
)
async def test_a_greeting_or_thanks_around_a_request_does_not_win(
    rasa_server: RasaServer, real_encoder: Encoder, text: str, intent: str
) -> None:
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    dense = EmbeddingClassifier.load(classifier_path(cache, real_encoder.name), real_encoder.name)
    async with aiohttp.ClientSession() as session:
        nlu = EnsembleNlu(RasaClient(session, [rasa_server.url], rasa_server.token, 10.0), dense, real_encoder.encode)
        parse = await nlu.parse(text)
    assert parse.intent == intent, parse.ranking[:3]


async def test_a_pasted_order_card_steers_nothing(rasa_server: RasaServer, real_encoder: Encoder) -> None:
    cache = Path(os.environ.get("KEFU_CACHE", default_cache()))
    dense = EmbeddingClassifier.load(classifier_path(cache, real_encoder.name), real_encoder.name)
    async with aiohttp.ClientSession() as session:
        nlu = EnsembleNlu(RasaClient(session, [rasa_server.url], rasa_server.token, 10.0), dense, real_encoder.encode)
        parse = await nlu.parse("咨询订单号:261103457821 订单金额:299.00 下单时间:2026-11-03 10:21:09 发票什么时候开")
    assert parse.intent == "ask_invoice"
    assert parse.entity("order_id") == "261103457821"
