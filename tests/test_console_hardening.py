"""The console under attack: login floods and guessing, foreign origins, headers, odd URLs."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

import server
from tests.conftest import Clock, add_users
from tests.fakes import FakeEncoder
from tests.helpers import NewDb, peek
from tests.pushes import fixture, signed_query
from tests.test_bot_hardening import quick


async def signed_in(client: TestClient, username: str = "boss", password: str = "manager-pass-1") -> str:
    """Log in; returns the CSRF token of the session."""
    resp = await client.post("/console/login", data={"username": username, "password": password}, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    page = await (await client.get("/console")).text()
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


@pytest.fixture
async def console_client(new_db: NewDb, wechat_client: Any) -> TestClient:
    add_users(new_db("kefu.db"))
    client: TestClient = await wechat_client(quick)
    return client


async def test_login_flood_does_not_hold_up_shoppers(
    new_db: NewDb, aiohttp_client: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    add_users(new_db("kefu.db"))
    app = server.make_app(make_settings(), responder=quick, encoder=FakeEncoder())  # the real clock
    client: TestClient = await aiohttp_client(app)
    finished: dict[str, float] = {}

    async def wrong_login(i: int) -> int:
        resp = await client.post("/console/login", data={"username": "xiaomei", "password": f"guess-{i:04d}"})
        finished[f"login{i}"] = time.monotonic()
        return resp.status

    async def shopper(i: int) -> str:
        await asyncio.sleep(0.05)  # after the flood has started
        body = fixture("text.xml", FromUserName=f"oFlood{i}", MsgId=str(7000 + i), Content=f"在吗{i}")
        resp = await client.post("/wechat", params=signed_query(int(time.time()), nonce=f"f{i}"), data=body.encode())
        finished[f"push{i}"] = time.monotonic()
        return await resp.text()

    with caplog.at_level(logging.WARNING, logger="console.app"):
        results = await asyncio.gather(*(wrong_login(i) for i in range(30)), *(shopper(i) for i in range(3)))
    statuses, replies = results[:30], results[30:]
    assert all(f"在吗{i}" in reply for i, reply in enumerate(replies)), replies  # answered in band, not "success"
    # The shoppers were answered while the flood was still being dealt with, not after it.
    assert max(finished[f"push{i}"] for i in range(3)) < max(finished[f"login{i}"] for i in range(30))
    assert set(statuses) <= {401, 429, 503} and 429 in statuses
    assert statuses.count(503) >= 30 - 8  # beyond the hashing queue's 8 places the burst is turned away unhashed
    assert any("console login locked" in r.getMessage() for r in caplog.records)


async def test_guessing_locks_the_account_and_tells_the_managers(new_db: NewDb, console_client: TestClient, clock: Clock) -> None:
    for i in range(5):
        resp = await console_client.post("/console/login", data={"username": "xiaomei", "password": f"wrong-{i}"})
        assert resp.status == (429 if i == 4 else 401)
    # Now even the right password is refused, with a clear message.
    resp = await console_client.post(
        "/console/login", data={"username": "xiaomei", "password": "agent-pass-1"}, allow_redirects=False
    )
    assert resp.status == 429
    assert "已暂时锁定" in await resp.text()
    # Another account is not locked out by xiaomei's failures.
    await signed_in(console_client)
    titles = [row[0] for row in peek(new_db("kefu.db"), "SELECT title FROM notifications")]
    assert "控制台登录已锁定" in titles
    clock.now += 16 * 60  # the lock ends
    assert (await signed_in(console_client, "xiaomei", "agent-pass-1")).strip()


async def test_cookie_secure_behind_a_trusted_tls_proxy(new_db: NewDb, wechat_client: Any) -> None:
    add_users(new_db("kefu.db"))
    form = {"username": "boss", "password": "manager-pass-1"}
    plain = await wechat_client(quick)
    resp = await plain.post("/console/login", data=form, headers={"X-Forwarded-Proto": "https"}, allow_redirects=False)
    assert "Secure" not in resp.headers["Set-Cookie"]  # the header means nothing without a trusted proxy
    proxied = await wechat_client(quick, trust_proxy=True)
    resp = await proxied.post("/console/login", data=form, headers={"X-Forwarded-Proto": "https"}, allow_redirects=False)
    assert resp.status == 302
    assert "Secure" in resp.headers["Set-Cookie"]
    assert "HttpOnly" in resp.headers["Set-Cookie"]


async def test_security_headers_on_pages_and_errors(console_client: TestClient) -> None:
    for path in ("/console/login", "/console/nope", "/healthz"):
        resp = await console_client.get(path)
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_websocket_from_another_origin_is_refused(console_client: TestClient) -> None:
    await signed_in(console_client)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await console_client.ws_connect("/console/ws", origin="https://evil.example")
    assert caught.value.status == 403
    own = f"http://{console_client.host}:{console_client.port}"
    ws = await console_client.ws_connect("/console/ws", origin=own)
    await ws.close()


async def test_metrics_only_for_loopback_or_the_token(wechat_client: Any) -> None:
    open_client = await wechat_client(quick)
    assert (await open_client.get("/metrics")).status == 200  # the test client is loopback
    proxied = await wechat_client(quick, trust_proxy=True)
    resp = await proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 403
    guarded = await wechat_client(quick, metrics_token="s3cret-metrics")
    assert (await guarded.get("/metrics")).status == 401
    resp = await guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert resp.status == 200
    assert "kefu_messages_in_total" in await resp.text()


async def test_history_search_takes_percent_and_underscore_literally(console_client: TestClient, clock: Clock) -> None:
    for i, text in enumerate(["满100%减20吗", "满100元减20吗", "订单号a_b", "订单号axb", "单号KF2026A的发票"]):
        body = fixture("text.xml", FromUserName=f"oH{i}", MsgId=str(7100 + i), Content=text)
        await console_client.post("/wechat", params=signed_query(int(clock()), nonce=f"h{i}"), data=body.encode())
    await signed_in(console_client)
    page = await (await console_client.get("/console/history", params={"q": "100%"})).text()
    assert "满100%减20吗" in page and "满100元减20吗" not in page
    page = await (await console_client.get("/console/history", params={"q": "a_b"})).text()
    assert "订单号a_b" in page and "订单号axb" not in page
    page = await (await console_client.get("/console/history", params={"q": "kf2026a"})).text()
    assert "单号KF2026A的发票" in page  # either case, on SQLite and PostgreSQL alike


async def test_faq_editor_takes_only_ids_the_importer_takes(new_db: NewDb, console_client: TestClient, tmp_path: Path) -> None:
    csrf = await signed_in(console_client)
    bad = ["a/b", "x" * 300, "<b>x</b>", "编号一"]
    for faq_id in bad:
        form = {"csrf": csrf, "id": faq_id, "question": "能开发票吗", "answer": "可以开电子发票"}
        resp = await console_client.post("/console/kb/new", data=form, allow_redirects=False)
        assert resp.status == 302
        assert "problem=" in resp.headers["Location"], faq_id
    form = {
        "csrf": csrf,
        "id": "fapiao-1",
        "question": '能开发票吗, "电子"的?',
        "answer": "可以\n开电子发票",
        "alt_questions": "要发票|开票",
    }
    resp = await console_client.post("/console/kb/new", data=form, allow_redirects=False)
    assert "flash=" in resp.headers["Location"]
    # Whatever the editor saved, export then import takes back unchanged.
    from kb import store as kb_store
    from kb.importer import export_dir, import_dir
    from storage.db import open_db

    db = open_db(new_db("kefu.db"), server.MIGRATIONS)
    before = kb_store.all_faq(db)
    export_dir(db, tmp_path / "out")
    import_dir(db, tmp_path / "out")
    assert kb_store.all_faq(db) == before
    assert [f.id for f in before] == ["fapiao-1"]
    db.close()
