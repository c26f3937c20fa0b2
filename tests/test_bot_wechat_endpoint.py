"""The WeChat endpoint: verification, formats, encryption, bad input, one answer per message."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import pytest

from bot.dispatch import Reply
from bot.wechat import Inbound
from tests.conftest import Clock
from tests.pushes import decrypt_json_reply, decrypt_xml_reply, encrypt_json, encrypt_xml, fixture, signed_query


def content_of(xml: str) -> str:
    match = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", xml, re.S)
    assert match, xml
    return match.group(1)


class Recorder:
    """A responder that echoes what it understood, so tests see the parsed dataclass."""

    def __init__(self, delay: float = 0.0) -> None:
        self.seen: list[Inbound] = []
        self.delay = delay

    async def __call__(self, inbound: Inbound) -> Reply:
        self.seen.append(inbound)
        if self.delay:
            await asyncio.sleep(self.delay)
        return Reply(f"收到[{inbound.kind}]{inbound.text}", intent="echo", confidence=1.0)


async def test_get_verification_echoes(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder())
    resp = await client.get("/wechat", params=signed_query(int(clock()), echostr="hello123"))
    assert resp.status == 200
    assert await resp.text() == "hello123"


async def test_forged_signature_is_403_and_server_keeps_serving(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder())
    query = signed_query(int(clock()), echostr="x")
    query["signature"] = "0" * 40
    assert (await client.get("/wechat", params=query)).status == 403
    resp = await client.post("/wechat", params=query, data=fixture("text.xml").encode())
    assert resp.status == 403
    good = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    assert good.status == 200


async def test_stale_timestamp_rejected(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder())
    resp = await client.post("/wechat", params=signed_query(int(clock()) - 3600), data=fixture("text.xml").encode())
    assert resp.status == 403
    assert "timestamp" in await resp.text()


async def test_plain_xml_text_answered_in_band(wechat_client: Any, clock: Clock) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder)
    resp = await client.post(
        "/wechat",
        params=signed_query(int(clock())),
        data=fixture("text.xml").encode(),
        headers={"Content-Type": "text/xml"},
    )
    assert resp.status == 200
    body = await resp.text()
    assert content_of(body) == "收到[text]你好，在吗"
    assert "<ToUserName><![CDATA[oShopperA]]></ToUserName>" in body
    assert "<FromUserName><![CDATA[gh_kefu_demo]]></FromUserName>" in body


@pytest.mark.parametrize(
    ("name", "kind", "text"),
    [
        ("voice.xml", "text", "我的快递到哪了"),
        ("image.xml", "image", ""),
        ("location.xml", "location", "浙江省杭州市西湖区"),
        ("link.xml", "link", "明前龙井礼盒"),
        ("subscribe.xml", "event:subscribe", ""),
        ("shortvideo.xml", "unsupported", ""),
    ],
)
async def test_message_kinds_become_inbound(wechat_client: Any, clock: Clock, name: str, kind: str, text: str) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder)
    resp = await client.post("/wechat", params=signed_query(int(clock())), data=fixture(name).encode())
    assert resp.status == 200
    assert recorder.seen[0].kind == kind
    assert recorder.seen[0].text == text
    assert recorder.seen[0].openid == "oShopperA"


async def test_safe_mode_xml_round_trip(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder(), wechat_mode="safe")
    body, query = encrypt_xml(fixture("text.xml"), int(clock()))
    resp = await client.post("/wechat", params=query, data=body.encode())
    assert resp.status == 200
    reply = decrypt_xml_reply(await resp.text())
    assert content_of(reply) == "收到[text]你好，在吗"


async def test_safe_mode_rejects_plaintext_and_bad_msg_signature(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder(), wechat_mode="safe")
    plain = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    assert plain.status == 400
    body, query = encrypt_xml(fixture("text.xml"), int(clock()))
    query["msg_signature"] = "f" * 40
    forged = await client.post("/wechat", params=query, data=body.encode())
    assert forged.status == 403


async def test_compat_mode_accepts_both(wechat_client: Any, clock: Clock) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder, wechat_mode="compat")
    plain = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    assert content_of(await plain.text()) == "收到[text]你好，在吗"
    body, query = encrypt_xml(fixture("text.xml", MsgId=99), int(clock()))
    enc = await client.post("/wechat", params=query, data=body.encode())
    assert content_of(decrypt_xml_reply(await enc.text())) == "收到[text]你好，在吗"


async def test_miniprogram_json_plain_even_when_labelled_xml(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder(), wechat_format="json")
    resp = await client.post(
        "/wechat",
        params=signed_query(int(clock())),
        data=fixture("miniprogram_text.json").encode(),
        headers={"Content-Type": "text/xml"},
    )
    assert resp.status == 200
    data = json.loads(await resp.text())
    assert data["Content"] == "收到[text]这个有现货吗"
    assert data["ToUserName"] == "oShopperB"


async def test_miniprogram_json_safe_mode_and_product_card(wechat_client: Any, clock: Clock) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder, wechat_mode="safe", wechat_format="json")
    body, query = encrypt_json(fixture("miniprogram_card.json"), int(clock()))
    resp = await client.post("/wechat", params=query, data=body.encode(), headers={"Content-Type": "application/json"})
    assert resp.status == 200
    reply = decrypt_json_reply(await resp.text())
    assert reply["Content"] == "收到[product_card]西湖龙井 明前特级 250g"
    assert recorder.seen[0].product_hint == "pages/product/index?sku=TEA-001"


async def test_enter_tempsession_event(wechat_client: Any, clock: Clock) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder, wechat_format="json")
    resp = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("miniprogram_enter.json").encode())
    assert resp.status == 200
    assert recorder.seen[0].kind == "event:user_enter_tempsession"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<xml><ToUserName>broken", "malformed XML"),
        (b'{"ToUserName": "x", "MsgType": ', "malformed JSON"),
        (b"[1, 2, 3]", "malformed XML"),
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><xml><Content>&lol;</Content></xml>', "DOCTYPE"),
        (b"", "empty body"),
        (b"\xff\xfe<xml/>", "UTF-8"),
        (b"<xml><MsgType>text</MsgType></xml>", "FromUserName"),
    ],
)
async def test_bad_bodies_get_400_and_are_not_stored(wechat_client: Any, clock: Clock, body: bytes, reason: str) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder)
    resp = await client.post("/wechat", params=signed_query(int(clock())), data=body)
    assert resp.status == 400
    assert reason in await resp.text()
    assert recorder.seen == []
    ok = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    assert ok.status == 200


async def test_oversized_body_is_413(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder())
    big = fixture("text.xml", Content="长" * 400_000).encode()
    assert len(big) > 1024 * 1024
    resp = await client.post("/wechat", params=signed_query(int(clock())), data=io.BytesIO(big))
    assert resp.status == 413


async def test_same_msgid_three_times_gives_one_reply(wechat_client: Any, clock: Clock) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder)
    answers = []
    for _ in range(3):
        resp = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
        answers.append(await resp.text())
    assert len(recorder.seen) == 1
    assert content_of(answers[0]) == "收到[text]你好，在吗"
    assert answers[1:] == ["success", "success"]


async def test_repeated_event_deduplicated_by_sender_time_and_event(wechat_client: Any, clock: Clock) -> None:
    recorder = Recorder()
    client = await wechat_client(recorder)
    for _ in range(2):
        await client.post("/wechat", params=signed_query(int(clock())), data=fixture("subscribe.xml").encode())
    await client.post("/wechat", params=signed_query(int(clock())), data=fixture("subscribe.xml", CreateTime=1700000001).encode())
    assert len(recorder.seen) == 2


async def test_metrics_count_messages_and_errors(wechat_client: Any, clock: Clock) -> None:
    client = await wechat_client(Recorder())
    await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    await client.post("/wechat", params=signed_query(int(clock())), data=b"<xml>")
    text = await (await client.get("/metrics")).text()
    assert 'kefu_messages_in_total{kind="text"} 1.0' in text
    assert 'kefu_errors_total{kind="http_400"} 1.0' in text
    assert "kefu_reply_latency_seconds_bucket" in text
    health = await client.get("/healthz")
    assert (await health.json()) == {"status": "ok"}


@pytest.mark.parametrize("encrypt", ["!!!notbase64", "YWJj", "A" * 64])
async def test_mangled_ciphertext_is_400(wechat_client: Any, clock: Clock, encrypt: str) -> None:
    from bot.wechat import sign
    from tests.pushes import TOKEN

    client = await wechat_client(Recorder(), wechat_mode="safe")
    query = signed_query(
        int(clock()), "nonce123", encrypt_type="aes", msg_signature=sign(TOKEN, str(int(clock())), "nonce123", encrypt)
    )
    resp = await client.post("/wechat", params=query, data=f"<xml><Encrypt>{encrypt}</Encrypt></xml>".encode())
    assert resp.status == 400
    assert await resp.text() == "cannot decrypt message"
