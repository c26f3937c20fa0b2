"""Faults and attacks on the shopper side: a slow database, huge or deeply nested pushes, replays."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

import server
from bot import store
from bot.dispatch import Dispatcher, Reply
from bot.metrics import Metrics
from bot.wechat import Inbound
from storage.db import open_db
from tests.fakes import FakeEncoder, FakeWeChatAPI
from tests.helpers import NewDb
from tests.pushes import fixture, signed_query


async def quick(inbound: Inbound) -> Reply:
    return Reply(f"答复:{inbound.text}", intent="echo", confidence=1.0)


async def live_client(
    aiohttp_client: Callable[..., Any],
    aiohttp_server: Callable[..., Any],
    make_settings: Callable[..., server.Settings],
    responder: Any = quick,
    **overrides: Any,
) -> tuple[TestClient, FakeWeChatAPI]:
    """The app on the real clock, its outbox sending to a fake WeChat API."""
    fake = FakeWeChatAPI(now=time.time())
    fake_srv: TestServer = await aiohttp_server(fake.app())
    settings = make_settings(wechat_api_base=str(fake_srv.make_url("")).rstrip("/"), **overrides)
    app = server.make_app(settings, responder=responder, encoder=FakeEncoder())
    return await aiohttp_client(app), fake


# WeChat's clock scaled down for the lock tests: WeChat gives up after 5 s and kefu answers in band by
# 4.0 s (stored by 4.5 s); here the client gives up after 1.5 s and kefu's deadline is 0.8 s (stored by
# 1.3 s), so a lock held 2-2.5 s outlasts a try as a 6-7 s one outlasts WeChat's.
GIVE_UP = 1.5
DEADLINE = 0.8


class WeChatLikeClient:
    """Pushes like WeChat's servers: give up after ``give_up`` s (WeChat: 5), then retry the same
    message, three tries in all."""

    def __init__(self, client: TestClient, give_up: float = 5.0) -> None:
        self.client = client
        self.give_up = give_up
        self.inband: list[str] = []  # reply bodies that arrived in time
        self.attempts = 0

    async def push(self, body: str) -> None:
        for _ in range(3):
            self.attempts += 1
            try:
                resp = await self.client.post(
                    "/wechat",
                    params=signed_query(int(time.time()), nonce=f"n{self.attempts}-{id(body)}"),
                    data=body.encode(),
                    timeout=aiohttp.ClientTimeout(total=self.give_up),
                )
                text = await resp.text()
            except TimeoutError:
                continue
            if resp.status != 200:
                continue
            if text != "success":
                self.inband.append(text)
            return


def openid_of(xml: str) -> str:
    return xml.split("<ToUserName><![CDATA[", 1)[1].split("]]>", 1)[0]


class WriteLock:
    """Another client's transaction that keeps kefu from writing messages and replies: SQLite's one
    write lock, or on PostgreSQL the two tables locked EXCLUSIVE (reads go on)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __enter__(self) -> WriteLock:
        if dialect_of(self.target) == "postgresql":
            import psycopg

            self.conn: Any = psycopg.connect(self.target)
            self.conn.execute("LOCK TABLE messages, outbound IN EXCLUSIVE MODE")
        else:
            self.conn = sqlite3.connect(self.target, timeout=30)
            self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def dialect_of(target: str) -> str:
    return "postgresql" if target.startswith("postgresql://") else "sqlite"


async def test_slow_database_every_shopper_gets_exactly_one_reply(
    aiohttp_client: Any, aiohttp_server: Any, make_settings: Any, new_db: NewDb
) -> None:
    client, fake = await live_client(aiohttp_client, aiohttp_server, make_settings, inband_deadline=DEADLINE)
    held = threading.Event()

    def hold_lock() -> None:
        # Another process's long write transaction (a backup, a big import) holds the lock past a try.
        with WriteLock(new_db("kefu.db")):
            held.set()
            time.sleep(2.5)

    locker = threading.Thread(target=hold_lock)
    locker.start()
    held.wait()
    wechat = WeChatLikeClient(client, GIVE_UP)
    openids = [f"oSlow{i}" for i in range(6)]
    bodies = [
        fixture("text.xml", FromUserName=openid, MsgId=str(9000 + i), Content=f"问题{i}") for i, openid in enumerate(openids)
    ]
    await asyncio.gather(*(wechat.push(body) for body in bodies))
    await asyncio.to_thread(locker.join)
    for _ in range(100):  # the outbox sends what could not go in band
        if len(fake.sent) + len(wechat.inband) >= len(openids):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # room for a wrong second reply to show up
    replies = Counter([openid_of(x) for x in wechat.inband] + [m["touser"] for m in fake.sent])
    assert replies == Counter(openids), replies
    assert wechat.attempts > len(openids)  # WeChat really gave up and retried while the lock was held


async def test_reply_ready_but_stored_too_late_goes_through_the_outbox(
    aiohttp_client: Any, aiohttp_server: Any, make_settings: Any, new_db: NewDb
) -> None:
    """The reply is quick, but the lock is taken just before it is stored: it must not count as in band."""
    held = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with WriteLock(new_db("kefu.db")):
            held.set()
            release.wait()
            time.sleep(2)

    locker = threading.Thread(target=hold_lock)

    async def lock_then_answer(inbound: Inbound) -> Reply:
        locker.start()
        await asyncio.to_thread(held.wait)
        release.set()
        return await quick(inbound)

    client, fake = await live_client(
        aiohttp_client, aiohttp_server, make_settings, responder=lock_then_answer, inband_deadline=DEADLINE
    )
    wechat = WeChatLikeClient(client, GIVE_UP)
    await wechat.push(fixture("text.xml", FromUserName="oLate", MsgId="9100", Content="在吗"))
    await asyncio.to_thread(locker.join)
    for _ in range(100):
        if fake.sent:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert wechat.inband == []
    assert [m["touser"] for m in fake.sent] == ["oLate"]


async def test_push_that_cannot_be_stored_is_not_acknowledged(
    aiohttp_client: Any, aiohttp_server: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = await live_client(aiohttp_client, aiohttp_server, make_settings)
    real = store.record_inbound
    failures = [sqlite3.OperationalError("disk I/O error")]

    def flaky(*args: Any, **kwargs: Any) -> int | None:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "record_inbound", flaky)
    body = fixture("text.xml", FromUserName="oDisk", MsgId="9200", Content="发货了吗").encode()
    first = await client.post("/wechat", params=signed_query(int(time.time()), nonce="d1"), data=body)
    assert first.status == 503  # WeChat retries a push that did not get 200
    retry = await client.post("/wechat", params=signed_query(int(time.time()), nonce="d2"), data=body)
    assert retry.status == 200
    assert "答复:发货了吗" in await retry.text()


async def test_plain_signature_cannot_carry_another_body(wechat_client: Any, clock: Any) -> None:
    client = await wechat_client(quick)
    query = signed_query(int(clock()), nonce="seen-once")
    first = fixture("text.xml", MsgId="9300", Content="第一条")
    assert "答复:第一条" in await (await client.post("/wechat", params=query, data=first.encode())).text()
    # WeChat's retry of the same push is fine (dedup answers it) ...
    assert (await client.post("/wechat", params=query, data=first.encode())).status == 200
    # ... a captured query with a forged body is not.
    forged = fixture("text.xml", MsgId="9301", Content="伪造的")
    resp = await client.post("/wechat", params=query, data=forged.encode())
    assert resp.status == 403
    assert "nonce" in await resp.text()


@pytest.mark.parametrize(("deadline", "stored_by"), [(4.0, 4.5), (DEADLINE, DEADLINE + 0.5), (4.8, 4.5)])
def test_an_in_band_reply_is_stored_by_half_a_second_after_the_deadline_and_never_past_4_5_s(
    deadline: float, stored_by: float, make_runner: Callable[..., Any], tmp_path: Path
) -> None:
    runner = make_runner(open_db(tmp_path / "kefu.db", server.MIGRATIONS))
    assert Dispatcher(runner, quick, Metrics(), time.time, inband_deadline=deadline).inband_limit == pytest.approx(stored_by)
