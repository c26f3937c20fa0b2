"""Reviews through the API with the real sentiment model, the case pages and the dashboard in Chromium."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openpyxl import load_workbook
from playwright.async_api import expect

from kb.encoder import Encoder
from tests.browser import chromium, font_of, login, screenshot
from tests.conftest import RasaServer
from tests.fakes import FakeWeChatAPI
from tests.pushes import fixture, signed_query

pytestmark = [pytest.mark.rasa, pytest.mark.model]  # the live demo shop: the real Rasa server and model
TOKEN = "review-api-token"


@pytest.fixture
async def shop(live_shop: Callable[..., Any], rasa_server: RasaServer, real_encoder: Encoder) -> tuple[TestServer, FakeWeChatAPI]:
    result: tuple[TestServer, FakeWeChatAPI] = await live_shop(
        rasa_server, real_encoder, reviews_token=TOKEN, notify_channels="console"
    )
    return result


def review(review_id: str, rating: int, content: str, openid: str = "oReviewer", sku: str = "TEA-001") -> dict[str, Any]:
    return {
        "review_id": review_id,
        "order_id": "KF202611100000",
        "sku": sku,
        "openid": openid,
        "rating": rating,
        "content": content,
        "created_at": "2026-11-20T10:00:00+08:00",
    }


async def post_reviews(srv: TestServer, body: Any, token: str = TOKEN) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        data = body if isinstance(body, bytes | io.BytesIO) else __import__("json").dumps(body, ensure_ascii=False).encode()
        async with http.post(srv.make_url("/api/reviews"), data=data, headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.json()


async def test_review_api_tags_and_opens_cases(shop: tuple[TestServer, FakeWeChatAPI]) -> None:
    srv, _ = shop
    status, answer = await post_reviews(
        srv,
        [
            review("A1", 5, "茶叶很香，包装精美，物流也很快，下次还来"),
            review("A2", 1, "收到的茶叶都碎了，包装破损，客服也不理人"),
            review("A3", 5, "太差了，完全是假货，再也不买了"),
            review("A4", 9, "评分不对"),
            {"review_id": "A5"},
        ],
    )
    assert status == 200
    assert answer["added"] == 3
    assert len(answer["cases_opened"]) == 2  # the 1-star review and the 5-star one that says 太差了
    assert answer["flagged_for_review"] == ["A3"]
    assert [e["row"] for e in answer["errors"]] == [4, 5]
    again_status, again = await post_reviews(srv, [review("A1", 5, "茶叶很香")])
    assert again_status == 200 and again["duplicates"] == 1 and again["added"] == 0


async def test_review_api_refuses_bad_requests(shop: tuple[TestServer, FakeWeChatAPI]) -> None:
    srv, _ = shop
    assert (await post_reviews(srv, [review("B1", 5, "好")], token="wrong"))[0] == 401
    status, answer = await post_reviews(srv, b'[{"review_id": ')
    assert status == 400 and "malformed JSON" in answer["error"]
    status, answer = await post_reviews(srv, [review(f"C{i}", 5, "好") for i in range(501)])
    assert status == 413 and answer["max_batch"] == 500
    status, answer = await post_reviews(srv, {"items": []})
    assert status == 400


@pytest.mark.browser
async def test_case_pages_in_the_browser(shop: tuple[TestServer, FakeWeChatAPI]) -> None:
    srv, fake = shop
    base = str(srv.make_url("")).rstrip("/")
    # The reviewer wrote to the shop recently, so WeChat's 48-hour window is open for them.
    async with aiohttp.ClientSession() as http:
        body = fixture("text.xml", Content="你好", MsgId=7_000_001).replace("oShopperA", "oReviewer")
        async with http.post(srv.make_url("/wechat"), params=signed_query(int(time.time())), data=body.encode()) as resp:
            assert resp.status == 200
    _, answer = await post_reviews(
        srv,
        [
            review("D1", 1, "包装破了，茶叶撒了一地，太失望了"),
            review("D2", 2, "物流太慢了，等了一个星期", openid="oSilent"),
        ],
    )
    first_case, second_case = answer["cases_opened"]
    async with chromium() as browser:
        page = await browser.new_page()
        await login(page, base, "xiaomei", "agent-pass-1")
        await page.click("text=差评工单")
        await expect(page.locator("#cases tbody tr")).to_have_count(2)
        await page.select_option("select[name=state]", "open")
        await page.click("#case-filter button")
        await expect(page.locator("#cases tbody tr")).to_have_count(2)
        await page.check("input[name=overdue]")
        await page.click("#case-filter button")
        await expect(page.locator("#cases")).to_contain_text("没有符合条件的工单")  # nothing is 30 minutes old yet

        await page.goto(f"{base}/console/cases/{first_case}")
        await expect(page.locator("#review")).to_contain_text("包装破了")
        await expect(page.locator("#review")).to_contain_text("包装 · 差评 · 包装破损")
        await expect(page.locator("#timeline")).to_contain_text("建单")
        await page.fill("#respond-form textarea", "给个好评返现10元，麻烦改一下评价")
        await page.click("#respond-form button")
        await expect(page.locator(".flash.error")).to_contain_text("没有发送")
        await page.fill("#respond-form textarea", "非常抱歉！我们已为您安排补发，今天寄出。")
        await page.click("#respond-form button")
        await expect(page.locator("h1")).to_contain_text("已响应")
        for _ in range(100):
            if any(m["touser"] == "oReviewer" for m in fake.sent):
                break
            await asyncio.sleep(0.05)
        assert [m["text"]["content"] for m in fake.sent if m["touser"] == "oReviewer"][
            -1
        ] == "非常抱歉！我们已为您安排补发，今天寄出。"
        await page.select_option("#resolve-form select", "replacement")
        await page.click("#resolve-form button")
        await expect(page.locator("h1")).to_contain_text("已解决")
        await expect(page.locator("#timeline")).to_contain_text("replacement")
        await screenshot(page, "case-detail")

        await page.goto(f"{base}/console/cases/{second_case}")
        await expect(page.locator("#window-closed")).to_contain_text("48小时")
        await page.close()


@pytest.mark.browser
async def test_dashboard_in_the_browser(shop: tuple[TestServer, FakeWeChatAPI]) -> None:
    srv, _ = shop
    base = str(srv.make_url("")).rstrip("/")
    await post_reviews(
        srv,
        [
            review("E1", 5, "物流很快，包装很好"),
            review("E2", 5, "物流快，客服很专业"),
            review("E3", 1, "质量太差了", sku="CLO-001"),
        ],
    )
    async with chromium() as browser:
        page = await browser.new_page()
        await login(page, base, "boss", "manager-pass-1")
        await page.goto(base + "/console/dashboard?since=2026-11-01&until=2026-11-30")
        await expect(page.locator("#good-rate")).to_have_text("66.7%")
        assert await page.locator("svg.chart").count() == 3
        await expect(page.locator("#keywords")).to_contain_text("物流快")
        assert "Noto Sans CJK SC" in await font_of(page, "#report h1")
        await screenshot(page, "dashboard")
        async with page.expect_download() as info:
            await page.click("a.download[href*='format=xlsx']")
        download = await info.value
        assert download.suggested_filename == "kefu-report-2026-11-01-2026-11-30.xlsx"
        book = load_workbook(io.BytesIO(Path(await download.path()).read_bytes()))
        overview = {row[0]: row[1] for row in book["概览"].iter_rows(min_row=2, values_only=True)}
        assert overview["评价数"] == 3
        await page.goto(base + "/console/dashboard?since=2026-11-01&until=2026-11-30&category=服装")
        await expect(page.locator("#good-rate")).to_have_text("0.0%")
        await page.close()
