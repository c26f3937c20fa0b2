"""The agent console: authorization, and a real handoff taken over in headless Chromium."""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from tests.browser import chromium, font_of, login, screenshot
from tests.fakes import FakeWeChatAPI
from tests.pushes import fixture, signed_query

pytestmark = [pytest.mark.rasa, pytest.mark.model]  # the live demo shop: the real Rasa server and model
_ids = itertools.count(5_000_000)


async def shopper_says(srv: TestServer, openid: str, text: str) -> str:
    body = fixture("text.xml", Content=text, MsgId=next(_ids)).replace("oShopperA", openid)
    async with aiohttp.ClientSession() as http:  # a separate client, as WeChat is
        async with http.post(srv.make_url("/wechat"), params=signed_query(int(time.time())), data=body.encode()) as resp:
            return await resp.text()


async def test_no_console_page_without_login(console_server: tuple[TestServer, FakeWeChatAPI]) -> None:
    import aiohttp

    srv, _ = console_server
    async with aiohttp.ClientSession() as http:
        for path in (
            "/console",
            "/console/kb",
            "/console/cases",
            "/console/history",
            "/console/dashboard",
            "/console/c/1",
        ):
            async with http.get(srv.make_url(path), allow_redirects=False) as resp:
                assert resp.status == 302, path
                assert resp.headers["Location"] == "/console/login"
        async with http.post(srv.make_url("/console/c/1/reply"), data={"text": "hi"}, allow_redirects=False) as resp:
            assert resp.status == 401
        async with http.get(srv.make_url("/console/ws")) as resp:
            assert resp.status == 401


async def test_wrong_password_and_csrf(console_server: tuple[TestServer, FakeWeChatAPI]) -> None:
    import aiohttp

    srv, _ = console_server
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(srv.make_url("/console/login"), data={"username": "xiaomei", "password": "wrong-pass"}) as resp:
            assert resp.status == 401
            assert "用户名或密码错误" in await resp.text()
        async with http.post(srv.make_url("/console/login"), data={"username": "xiaomei", "password": "agent-pass-1"}) as resp:
            assert resp.status == 200  # followed the redirect to the queue
        async with http.post(
            srv.make_url("/console/c/1/note"), data={"text": "x", "csrf": "forged"}, allow_redirects=False
        ) as resp:
            assert resp.status == 403
        async with http.get(srv.make_url("/console/dashboard")) as resp:
            assert resp.status == 403  # agents cannot open manager pages


@pytest.mark.browser
async def test_agent_takes_over_a_handoff_in_the_browser(console_server: tuple[TestServer, FakeWeChatAPI]) -> None:
    srv, fake = console_server
    base = str(srv.make_url("")).rstrip("/")
    handoff = await shopper_says(srv, "oBrowser1", "转人工，我要找真人客服")
    assert "人工客服" in handoff
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(base + "/console")
        await expect(page).to_have_url(re.compile(r"/console/login$"))
        await page.fill("input[name=username]", "xiaomei")
        await page.fill("input[name=password]", "agent-pass-1")
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("会话队列")
        assert "Noto Sans CJK SC" in await font_of(page, "h1")
        row = page.locator("#queue tr", has_text="oBrowser1")
        await expect(row).to_contain_text("顾客要求人工")
        await expect(page.locator("#live-status")).to_have_attribute("data-connected", "1")

        # A second shopper hands off while the page is open: the queue updates live over the WebSocket.
        await shopper_says(srv, "oBrowser2", "我要投诉，东西坏了没人管")
        await expect(page.locator("#queue tr", has_text="oBrowser2")).to_be_visible()

        await row.get_by_role("link", name="打开").click()
        transcript = page.locator("#transcript")
        await expect(transcript).to_contain_text("转人工，我要找真人客服")
        await expect(transcript).to_contain_text(re.compile(r"转人工客服 · \d+%"))  # what the bot understood, how sure
        await page.click("#claim")
        await page.select_option("#canned", label="问候")
        await expect(page.locator("#reply-text")).to_have_value(re.compile("人工客服"))
        await page.fill("#reply-text", "您好，我是小美，请问有什么可以帮您？")
        await page.click("#send")
        for _ in range(100):
            if any(m["text"]["content"] == "您好，我是小美，请问有什么可以帮您？" for m in fake.sent):
                break
            await asyncio.sleep(0.05)
        sent = [m for m in fake.sent if m["touser"] == "oBrowser1"]
        assert sent and sent[-1]["text"]["content"] == "您好，我是小美，请问有什么可以帮您？"
        # The send form's redirect must land before the reload, or the reload races the navigation.
        await expect(page).to_have_url(re.compile(r"/console/c/\d+$"))
        await page.wait_for_load_state()
        await page.reload()
        await expect(transcript).to_contain_text("已送达")

        # While the agent owns the conversation the bot stays silent; the page shows the message live.
        assert await shopper_says(srv, "oBrowser1", "西湖龙井多少钱") == "success"
        await expect(transcript).to_contain_text("西湖龙井多少钱")

        # A reply that offers a reward for a good review is blocked and explained.
        await page.fill("#reply-text", "给个五星好评返现10元哦")
        await page.click("#send")
        await expect(page.locator(".flash.error")).to_contain_text("这条回复没有发送")
        assert not any("返现" in m["text"]["content"] for m in fake.sent)

        await screenshot(page, "console-conversation")
        await page.click("#resolve")
        await expect(page.locator(".flash")).to_have_text("会话已结束")
        await expect(page.locator("#queue tr", has_text="oBrowser1")).to_have_count(0)
        await page.close()


@pytest.mark.browser
async def test_faq_editor_and_history_in_the_browser(console_server: tuple[TestServer, FakeWeChatAPI]) -> None:
    srv, _ = console_server
    base = str(srv.make_url("")).rstrip("/")
    before = await shopper_says(srv, "oHistory", "西湖龙井多少钱")
    assert "368.00" in before
    async with chromium() as browser:
        page = await browser.new_page()
        await login(page, base, "xiaomei", "agent-pass-1")
        await page.click("text=历史记录")
        await page.fill("input[name=q]", "西湖龙井")
        await page.click("button:has-text('搜索')")
        await expect(page.locator("table")).to_contain_text("oHistory")
        await expect(page.locator("table")).to_contain_text("368.00")

        await page.click("text=知识库")
        await page.fill("input[name=q]", "付款后几天能发货")
        await page.click("button:has-text('搜索')")
        first = page.locator("form.faq").first
        await expect(first.locator("h2")).to_contain_text("F001")
        new_answer = "现货商品付款后24小时内发货（双十一期间48小时内），预售商品以商品页时间为准。"
        await first.locator("textarea[name=answer]").fill(new_answer)
        await first.locator("button[type=submit]").click()
        await expect(page.locator(".flash")).to_contain_text("已保存 F001")
        await page.close()
    # The bot answers from the edited entry at once.
    reply = await shopper_says(srv, "oHistory2", "下单以后几天能发货")
    assert reply and new_answer in reply
