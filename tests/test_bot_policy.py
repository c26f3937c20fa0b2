"""Conversation policy with small fakes at the seams: clarifying, handoff rules, hours, escalation, orders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import server
from bot import conversations as conv_store
from bot import texts
from bot.dialogue import Dialogue
from bot.orders import HttpOrders, OrderSourceError, SqliteOrders
from bot.wechat import Inbound
from console.app import Console, escalate_unclaimed, template_env
from console.live import LiveHub
from intents.client import Parse
from kb.hours import BusinessHours
from storage.db import DbRunner, open_db
from tests.fakes import FakeNlu, stored_turns
from tests.helpers import NewDb

T0 = 1_764_036_000.0  # Tuesday 2025-11-25 10:00 China time


def unsure(text: str) -> Parse:
    return Parse(text, "nlu_fallback", 0.3, (("nlu_fallback", 0.3), ("ask_price", 0.25), ("ask_stock", 0.2)))


@pytest.fixture
def runner(new_db: NewDb, make_runner: Callable[..., DbRunner]) -> DbRunner:
    return make_runner(open_db(new_db("p.db"), server.MIGRATIONS))


def dialogue(runner: DbRunner, nlu: Any, now: list[float], hours: str = "mon-sun 09:00-22:00") -> Any:
    d = Dialogue(runner, nlu, None, SqliteOrders(runner), BusinessHours.parse(hours), lambda: now[0])
    return stored_turns(d, runner, lambda: now[0])


def said(text: str, n: int) -> Inbound:
    return Inbound(f"msg:{n}", "oPolicy", "gh", "text", text, int(T0))


async def test_two_misunderstandings_in_a_row_hand_off(runner: DbRunner) -> None:
    now = [T0]
    d = dialogue(runner, FakeNlu(unsure("嗯那个"), unsure("就是那个啊")), now)
    first = await d(said("嗯那个", 1))
    assert first.text == texts.CLARIFY_INTENT.format(a="问商品价格", b="问有没有货")
    second = await d(said("就是那个啊", 2))
    assert second.text is not None and "人工客服" in second.text
    conv = await runner.run(conv_store.conversation, 1)
    assert conv is not None and conv["state"] == "queued" and conv["handoff_reason"] == "misunderstood"


async def test_outside_hours_the_shopper_is_told_when_agents_are_back(runner: DbRunner) -> None:
    late = [T0 + 13 * 3600]  # 23:00
    d = dialogue(runner, FakeNlu(Parse("人工", "human_agent", 0.99)), late)
    reply = await d(said("人工", 1))
    assert reply.text == texts.HANDOFF_CLOSED_HOURS.format(hours="每天 09:00-22:00", back="明天 09:00")


async def test_queue_position_and_wait(runner: DbRunner) -> None:
    now = [T0]
    for i, openid in enumerate(["oA", "oB", "oC"]):
        d = dialogue(runner, FakeNlu(Parse("人工", "human_agent", 0.99)), now)
        reply = await d(Inbound(f"m{i}", openid, "gh", "text", "人工", int(T0)))
        now[0] += 1
    assert reply.text == texts.HANDOFF_QUEUED.format(ahead=2, minutes=6)


async def test_unclaimed_handoff_is_escalated_once(runner: DbRunner) -> None:
    now = [T0]
    d = dialogue(runner, FakeNlu(Parse("人工", "human_agent", 0.99)), now)
    await d(said("人工", 1))
    hub = LiveHub()
    console = Console(
        runner, None, hub, lambda: now[0], lambda: None, template_env(), handoff_wait=300, notify_channels=("console",)
    )
    assert await escalate_unclaimed(console) == 0
    now[0] += 301
    assert await escalate_unclaimed(console) == 1
    assert await escalate_unclaimed(console) == 0
    apologies = list(runner.db.query("SELECT text FROM outbound WHERE openid = 'oPolicy' AND state = 'pending'"))
    assert [r["text"] for r in apologies] == [texts.ESCALATION_APOLOGY]
    assert [r["source"] for r in runner.db.table("notifications").rows] == ["handoff:1"]


def test_business_hours_with_holidays() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-18:00, sat 10:00-16:00", "2025-11-26")
    assert hours.is_open(T0)
    assert not hours.is_open(T0 + 9 * 3600)  # 19:00
    nxt = hours.next_open(T0 + 9 * 3600)
    assert nxt is not None and nxt.isoformat() == "2025-11-27T09:00:00+08:00"  # Wednesday is a holiday
    assert (
        hours.describe()
        == "周一 09:00-18:00，周二 09:00-18:00，周三 09:00-18:00，周四 09:00-18:00，周五 09:00-18:00，周六 10:00-16:00"
    )


async def test_http_order_backend_keeps_only_the_shoppers_orders(aiohttp_server: Callable[..., Any]) -> None:
    async def orders(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer secret"
        mine = {
            "order_id": "A1",
            "openid": request.query["openid"],
            "sku": "TEA-001",
            "status": "shipped",
            "created_at": "2026-11-02",
        }
        theirs = {"order_id": "B1", "openid": "someone-else", "sku": "TEA-001", "status": "paid", "created_at": "2026-11-03"}
        return web.json_response({"orders": [mine, theirs]})

    app = web.Application()
    app.router.add_get("/orders", orders)
    srv = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        source = HttpOrders(session, str(srv.make_url("")), "secret")
        assert [o.order_id for o in await source.orders_of("oMe")] == ["A1"]
        assert await source.get_order("oMe", "B1") is None
        broken = HttpOrders(session, str(srv.make_url("/nowhere")), "secret")
        with pytest.raises(OrderSourceError):
            await broken.orders_of("oMe")


async def test_the_intent_model_is_asked_while_the_conversation_is_still_being_read(runner: DbRunner) -> None:
    import asyncio
    import threading

    asked = asyncio.Event()

    class WatchedNlu:
        async def parse(self, text: str) -> Parse:
            asked.set()
            return Parse(text, "greet", 0.95, (("greet", 0.95),))

    now = [T0]
    d = Dialogue(runner, WatchedNlu(), None, SqliteOrders(runner), BusinessHours.parse("mon-sun 09:00-22:00"), lambda: now[0])
    # Hold the database thread, so the conversation cannot be read yet.
    release = threading.Event()
    holding = asyncio.ensure_future(runner.run(lambda db: release.wait(10)))
    turn = asyncio.ensure_future(d(said("你好", 1)))
    await asyncio.wait_for(asked.wait(), 5)  # the parse began though the conversation is not read
    assert not turn.done()
    release.set()
    await holding
    reply = await turn
    assert reply.intent == "greet" and reply.text == texts.GREET
