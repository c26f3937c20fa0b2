"""Slow replies go out through the customer-service API from a durable outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot import store
from bot.dispatch import Reply
from bot.metrics import Metrics
from bot.outbox import Outbox, WeChatAPI, WeChatAPIError
from bot.wechat import Inbound
from storage.db import DbRunner, open_db
from storage.outbox import backoff
from tests.conftest import Clock
from tests.fakes import APPID, SECRET
from tests.helpers import NewDb, wait_for
from tests.pushes import fixture, signed_query


async def slow_responder(inbound: Inbound) -> Reply:
    await asyncio.sleep(0.4)
    return Reply("慢慢来的回答", intent="slow")


async def test_slow_reply_answers_success_then_sends_through_api(wechat_client: Any, clock: Clock, fake_wechat: Any) -> None:
    fake, _ = fake_wechat
    client = await wechat_client(slow_responder, inband_deadline=0.1)
    resp = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    assert await resp.text() == "success"
    await wait_for(lambda: len(fake.sent) == 1)
    assert fake.sent[0] == {"touser": "oShopperA", "msgtype": "text", "text": {"content": "慢慢来的回答"}}
    assert fake.typing == [{"touser": "oShopperA", "command": "Typing"}]
    # WeChat's retry of the same message while or after it was answered: still one answer
    retry = await client.post("/wechat", params=signed_query(int(clock())), data=fixture("text.xml").encode())
    assert await retry.text() == "success"
    await asyncio.sleep(0.6)
    assert len(fake.sent) == 1
    assert fake.token_fetches == 1


@pytest.fixture
async def outbox(
    new_db: NewDb, fake_wechat: Any, clock: Clock, make_runner: Callable[..., DbRunner]
) -> AsyncIterator[tuple[DbRunner, Outbox]]:
    """An outbox on its own database, sending to the fake WeChat API."""
    _, srv = fake_wechat
    runner = make_runner(open_db(new_db("o.db"), [store.migrations]))
    async with aiohttp.ClientSession() as session:
        api = WeChatAPI(session, runner, base_url=str(srv.make_url("")).rstrip("/"), appid=APPID, secret=SECRET, clock=clock)
        yield runner, Outbox(runner, api, Metrics(), clock)


async def test_expired_token_refreshed_and_retried_once(outbox: tuple[DbRunner, Outbox], clock: Clock, fake_wechat: Any) -> None:
    fake, _ = fake_wechat
    runner, box = outbox
    first = await runner.run(store.enqueue_text, openid="o1", text="一", sender="agent", now=clock())
    await box.deliver_due()
    fake.expire_all_tokens()
    second = await runner.run(store.enqueue_text, openid="o1", text="二", sender="agent", now=clock())
    await box.deliver_due()
    assert [m["text"]["content"] for m in fake.sent] == ["一", "二"]
    assert fake.token_fetches == 2
    for oid in (first, second):
        assert (await runner.run(store.outbound_state, oid))["state"] == "sent"


async def test_window_closed_and_quota_are_recorded_not_retried(
    outbox: tuple[DbRunner, Outbox], clock: Clock, fake_wechat: Any
) -> None:
    fake, _ = fake_wechat
    runner, box = outbox
    fake.closed_windows.add("o-late")
    late = await runner.run(store.enqueue_text, openid="o-late", text="你好", sender="agent", now=clock())
    await box.deliver_due()
    row = await runner.run(store.outbound_state, late)
    assert row["state"] == "window_closed"
    assert row["last_error"].startswith("45015")
    fake.quota_exceeded = True
    busy = await runner.run(store.enqueue_text, openid="o2", text="你好", sender="agent", now=clock())
    await box.deliver_due()
    assert (await runner.run(store.outbound_state, busy))["state"] == "quota"
    clock.now += 3600
    assert await box.deliver_due() == 0
    assert fake.sent == []


async def test_transient_failures_retried_with_backoff(outbox: tuple[DbRunner, Outbox], clock: Clock, fake_wechat: Any) -> None:
    fake, _ = fake_wechat
    runner, box = outbox
    fake.server_errors = 2
    oid = await runner.run(store.enqueue_text, openid="o3", text="稍后送达", sender="agent", now=clock())
    await box.deliver_due()
    row = await runner.run(store.outbound_state, oid)
    assert row["state"] == "pending"
    assert row["next_attempt_at"] == clock() + backoff(0)
    assert await box.deliver_due() == 0  # not due yet
    clock.now += backoff(0)
    await box.deliver_due()
    clock.now += backoff(1)
    await box.deliver_due()
    row = await runner.run(store.outbound_state, oid)
    assert row["state"] == "sent"
    assert row["attempts"] == 3
    assert fake.sent[0]["text"]["content"] == "稍后送达"


async def test_processes_share_one_token(
    new_db: NewDb, clock: Clock, fake_wechat: Any, make_runner: Callable[..., DbRunner]
) -> None:
    fake, srv = fake_wechat
    db_path = new_db("shared.db")
    runners = [make_runner(open_db(db_path, [store.migrations])) for _ in range(3)]
    async with aiohttp.ClientSession() as session:
        apis = [
            WeChatAPI(session, r, base_url=str(srv.make_url("")).rstrip("/"), appid=APPID, secret=SECRET, clock=clock)
            for r in runners
        ]
        await asyncio.gather(*(api.send_text(f"o{i}", "hi") for i, api in enumerate(apis)))
    assert fake.token_fetches == 1
    assert len(fake.sent) == 3


async def test_wrong_secret_is_a_clear_error(
    new_db: NewDb, clock: Clock, fake_wechat: Any, make_runner: Callable[..., DbRunner]
) -> None:
    _, srv = fake_wechat
    runner = make_runner(open_db(new_db("s.db"), [store.migrations]))
    async with aiohttp.ClientSession() as session:
        api = WeChatAPI(session, runner, base_url=str(srv.make_url("")).rstrip("/"), appid=APPID, secret="wrong", clock=clock)
        try:
            await api.send_text("o1", "hi")
        except WeChatAPIError as exc:
            assert exc.errcode == 40125
        else:
            raise AssertionError("expected WeChatAPIError")
