"""Every bad input the probe found answers 400 or 404 with a clear message, and the server keeps serving."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Clock, add_users
from tests.helpers import NewDb, peek
from tests.pushes import fixture, signed_query
from tests.test_bot_hardening import quick
from tests.test_console_hardening import signed_in


@pytest.fixture
async def client(new_db: NewDb, wechat_client: Any, tmp_path: Path) -> TestClient:
    add_users(new_db("kefu.db"))
    c: TestClient = await wechat_client(quick, reviews_token="reviews-secret")
    return c


def nested_xml(depth: int) -> str:
    return "<xml><ToUserName>gh</ToUserName>" + "<a>" * depth + "x" + "</a>" * depth + "</xml>"


WECHAT_BODIES = {
    "doctype after 4 KB": (
        '<?xml version="1.0"?>' + "<!-- " + "x" * 5000 + " -->"
        '<!DOCTYPE xml [<!ENTITY e "boom">]><xml><Content>&e;</Content></xml>',
        "DOCTYPE",
    ),
    "20,000 nested elements": (nested_xml(20_000), "nested deeper"),
    "nested JSON": ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested deeper"),
    "lone surrogate in JSON": ('{"FromUserName": "o1", "MsgType": "text", "Content": "\\ud800"}', "invalid Unicode"),
    "invalid UTF-8": (b"<xml><Content>\xff\xfe</Content></xml>", "not UTF-8"),
    "unclosed XML": ("<xml><Content>hi</xml>", "malformed XML"),
}


@pytest.mark.parametrize("name", list(WECHAT_BODIES))
async def test_bad_wechat_push_is_400_with_a_reason(
    new_db: NewDb, client: TestClient, clock: Clock, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, reason = WECHAT_BODIES[name]
    raw = body.encode() if isinstance(body, str) else body
    with caplog.at_level(logging.ERROR):
        resp = await client.post("/wechat", params=signed_query(int(clock()), nonce="bad1"), data=raw)
    assert resp.status == 400
    assert reason in await resp.text()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    good = await client.post("/wechat", params=signed_query(int(clock()), nonce="good1"), data=fixture("text.xml").encode())
    assert "答复:你好，在吗" in await good.text()
    assert peek(new_db("kefu.db"), "SELECT COUNT(*) FROM messages") == [(1,)]  # only the good one


async def test_deepest_legal_push_is_stored_and_answered(new_db: NewDb, client: TestClient, clock: Clock, tmp_path: Path) -> None:
    # A scan-code event nests three levels: well inside the limit, stored whole.
    body = (
        "<xml><ToUserName>gh_kefu_demo</ToUserName><FromUserName>oScan</FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType>event</MsgType><Event>scancode_push</Event><ScanCodeInfo><ScanType>qrcode</ScanType>"
        "<ScanResult>1</ScanResult></ScanCodeInfo></xml>"
    )
    resp = await client.post("/wechat", params=signed_query(int(clock()), nonce="scan1"), data=body.encode())
    assert resp.status == 200
    [(payload,)] = peek(new_db("kefu.db"), "SELECT payload FROM messages WHERE openid = 'oScan'")
    assert json.loads(payload)["ScanCodeInfo"]["ScanType"] == "qrcode"


REVIEW_BODIES = {
    "nested JSON": ('[{"a":' * 40_000 + "1" + "}]" * 40_000, "nested deeper"),
    "invalid UTF-8": (b'[{"review_id": "r1", "text": "\xff\xfe"}]', "not UTF-8"),
    "malformed JSON": ('[{"review_id": "r1",]', "malformed JSON"),
}


@pytest.mark.parametrize("name", list(REVIEW_BODIES))
async def test_bad_reviews_api_body_is_400(client: TestClient, name: str) -> None:
    body, reason = REVIEW_BODIES[name]
    raw = body.encode() if isinstance(body, str) else body
    resp = await client.post(
        "/api/reviews",
        data=raw,
        headers={"Authorization": "Bearer reviews-secret", "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert reason in (await resp.json())["error"]


@pytest.mark.parametrize(
    "path", ["/console/c/12345678901234567890123", "/console/cases/12345678901234567890123", "/console/c/١٢"]
)
async def test_huge_or_foreign_digit_ids_are_404(client: TestClient, path: str) -> None:
    await signed_in(client)
    resp = await client.get(path)
    assert resp.status == 404


@pytest.mark.parametrize("path", ["/console/dashboard", "/console/dashboard/export"])
@pytest.mark.parametrize("since", ["0001-01-01", "9999-12-31", "2026-02-30"])
async def test_out_of_range_report_dates_are_400(client: TestClient, path: str, since: str) -> None:
    await signed_in(client)
    resp = await client.get(path, params={"since": since, "until": "2026-12-01", "format": "csv"})
    assert resp.status == 400
    assert "日期" in await resp.text()
