"""Notifications leave the durable outbox through each channel, and failures are retried."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

import server
from bot.notifiers import WeChatTemplateNotifier
from bot.outbox import WeChatAPI
from console.live import LiveHub
from console.notifiers import ConsoleNotifier
from reviews.notify import NotificationSender, WeComRobotNotifier
from storage.db import DbRunner, open_db
from storage.outbox import backoff, queue_notification
from tests.fakes import APPID, SECRET
from tests.helpers import NewDb


def wecom_robot(received: list[dict[str, Any]], failures: list[int]) -> web.Application:
    """A stand-in for WeCom's group-robot webhook (errcode 0 on success)."""

    async def send(request: web.Request) -> web.Response:
        if failures and failures[0] > 0:
            failures[0] -= 1
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        received.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    app = web.Application()
    app.router.add_post("/cgi-bin/webhook/send", send)
    return app


async def test_channels_deliver_and_retry(
    new_db: NewDb, aiohttp_server: Callable[..., Any], fake_wechat: Any, make_runner: Callable[..., DbRunner]
) -> None:
    fake, fake_srv = fake_wechat
    received: list[dict[str, Any]] = []
    failures = [1]
    robot = await aiohttp_server(wecom_robot(received, failures))
    runner = make_runner(open_db(new_db("n.db"), server.MIGRATIONS))
    now = [time.time()]
    fake.now = now[0]
    async with aiohttp.ClientSession() as session:
        api = WeChatAPI(
            session, runner, base_url=str(fake_srv.make_url("")).rstrip("/"), appid=APPID, secret=SECRET, clock=lambda: now[0]
        )
        hub = LiveHub()
        notifiers = {
            "console": ConsoleNotifier(hub),
            "wecom": WeComRobotNotifier(session, str(robot.make_url("/cgi-bin/webhook/send?key=abc"))),
            "wechat": WeChatTemplateNotifier(api, "TPL1", ["oManager"]),
        }
        sender = NotificationSender(runner, notifiers, lambda: now[0])
        added = await runner.run(
            queue_notification,
            source="timer:7",
            channels=["console", "wecom", "wechat"],
            title="差评超过30分钟未响应，已升级",
            body="工单 #3｜1星",
            payload={"case_id": 3},
            now=now[0],
        )
        assert added == 3
        again = await runner.run(
            queue_notification, source="timer:7", channels=["console"], title="x", body="x", payload={}, now=now[0]
        )
        assert again == 0  # one notification per event and channel
        assert await sender.deliver_due() == 3
        states = {r["channel"]: r["state"] for r in runner.db.table("notifications").rows}
        assert states == {"console": "sent", "wecom": "pending", "wechat": "sent"}
        assert fake.templates[0]["touser"] == "oManager" and fake.templates[0]["template_id"] == "TPL1"
        assert fake.templates[0]["data"]["first"]["value"] == "差评超过30分钟未响应，已升级"
        assert await sender.deliver_due() == 0  # the failed one waits for its backoff
        now[0] += backoff(0)
        assert await sender.deliver_due() == 1
        assert received == [{"msgtype": "markdown", "markdown": {"content": "**差评超过30分钟未响应，已升级**\n工单 #3｜1星"}}]
