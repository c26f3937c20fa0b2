"""The NLU inbox: agents confirm or correct intents in headless Chromium; kefu train learns them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

import server
from intents import corrections, training
from intents.classifier import EmbeddingClassifier
from intents.ensemble import EnsembleNlu
from intents.evaluate import read_labelled
from storage.db import open_db
from tests.browser import chromium, login, screenshot
from tests.fakes import FakeEncoder, FakeWeChatAPI
from tests.test_console import shopper_says

pytestmark = [pytest.mark.rasa, pytest.mark.model]


async def _login(http: aiohttp.ClientSession, srv: TestServer, user: str, password: str) -> str:
    async with http.post(srv.make_url("/console/login"), data={"username": user, "password": password}) as resp:
        assert resp.status == 200
    async with http.get(srv.make_url("/console/nlu")) as resp:
        page = await resp.text()
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def test_inbox_is_for_signed_in_staff_with_csrf(
    console_server: tuple[TestServer, FakeWeChatAPI], demo_db_path: str
) -> None:
    srv, _ = console_server
    await shopper_says(srv, "oInbox0", "我要投诉，东西坏了没人管")  # handed off: lands in the inbox
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(srv.make_url("/console/nlu"), allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, "/console/login")
        async with anonymous.post(srv.make_url("/console/nlu/1"), data={"intent": "greet"}, allow_redirects=False) as resp:
            assert resp.status == 401
    for user, password in (("xiaomei", "agent-pass-1"), ("boss", "manager-pass-1")):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            csrf = await _login(http, srv, user, password)
            async with http.get(srv.make_url("/console/nlu")) as resp:
                assert "我要投诉，东西坏了没人管" in await resp.text()
            async with http.post(
                srv.make_url("/console/nlu/1"), data={"intent": "greet", "csrf": "forged"}, allow_redirects=False
            ) as resp:
                assert resp.status == 403
            async with http.post(
                srv.make_url("/console/nlu/999999"), data={"intent": "greet", "csrf": csrf}, allow_redirects=False
            ) as resp:
                assert resp.status == 404
            async with http.post(
                srv.make_url("/console/nlu/1"), data={"intent": "no_such_intent", "csrf": csrf}, allow_redirects=False
            ) as resp:
                assert resp.status == 302 and "problem=" in resp.headers["Location"]
    db = open_db(demo_db_path, server.MIGRATIONS)
    assert corrections.training_pairs(db) == []  # nothing stored by the refused posts
    db.close()


@pytest.mark.browser
async def test_agent_corrects_an_intent_and_train_learns_it(
    console_server: tuple[TestServer, FakeWeChatAPI], demo_db_path: str, tmp_path: Path
) -> None:
    srv, _ = console_server
    base = str(srv.make_url("")).rstrip("/")
    await shopper_says(srv, "oInbox1", "我要投诉，东西坏了没人管")
    await shopper_says(srv, "oInbox2", "转人工，我要找真人客服")
    async with chromium() as browser:
        page = await browser.new_page()
        await login(page, base, "xiaomei", "agent-pass-1")
        await page.click("text=意图纠正")
        await expect(page.locator("h1")).to_have_text("意图纠正")
        complaint = page.locator(".nlu-row", has_text="我要投诉，东西坏了没人管")
        await expect(complaint.locator(".nlu-predicted")).to_have_attribute("data-intent", "complaint")
        await expect(complaint).to_contain_text("转人工")
        # Correct it to another intent with the list and the button.
        await complaint.locator("select[name=intent]").select_option("return_refund")
        await complaint.get_by_role("button", name="改正").click()
        await expect(page.locator(".flash")).to_contain_text(re.compile(r"已改正为「.+」（return_refund）"))
        await expect(page.locator("#nlu-done .nlu-verdict").first).to_have_attribute("data-intent", "return_refund")
        await expect(page.locator(".nlu-row", has_text="我要投诉，东西坏了没人管")).to_have_count(0)
        # Confirm the next one from the keyboard: the first row has focus, y confirms.
        human = page.locator(".nlu-row", has_text="转人工，我要找真人客服")
        await human.focus()
        await page.keyboard.press("y")
        await expect(page.locator(".flash")).to_contain_text(re.compile(r"已确认「.+」（human_agent）"))
        await screenshot(page, "console-nlu-inbox")
        await page.close()

    db_path = str(demo_db_path)
    db = open_db(db_path, server.MIGRATIONS)
    pairs = corrections.training_pairs(db)
    db.close()
    assert pairs == [("我要投诉，东西坏了没人管", "return_refund"), ("转人工，我要找真人客服", "human_agent")]

    # kefu intents export writes them for kefu intents eval.
    out = tmp_path / "shop.csv"
    assert server.main(["intents", "export", "--out", str(out), "--db", db_path]) == 0
    assert read_labelled(out) == pairs

    # kefu train learns them (Rasa's own training replaced by a recorder; the dense side is real).
    trained: list[list[training.Example]] = []

    def record(examples: list[training.Example], target: Path) -> Path:
        trained.append(examples)
        target.write_bytes(b"model")
        return target

    encoder = FakeEncoder()
    models = training.train(tmp_path, tmp_path, encoder=encoder, corrections=pairs, rasa_trainer=record)
    assert sum(e.plain == "我要投诉，东西坏了没人管" and e.intent == "return_refund" for e in trained[0]) >= 1
    assert models.dense is not None
    dense = EmbeddingClassifier.load(models.dense, encoder.name)

    class Unused:
        async def parse(self, text: str) -> Any:
            raise AssertionError("a learnt message needs no Rasa call")

    learnt = await EnsembleNlu(Unused(), dense, encoder.encode).parse("我要投诉，东西坏了没人管")
    assert learnt.intent == "return_refund"
