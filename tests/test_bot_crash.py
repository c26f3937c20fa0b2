"""A message once received is never lost: kill -9 the server with a reply queued, restart, delivered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import store
from bot.dispatch import Dispatcher, Reply
from bot.metrics import Metrics
from bot.wechat import Inbound
from storage.db import DbRunner, open_db
from storage.outbox import claim_due
from tests.conftest import stop_process
from tests.fakes import APPID, SECRET, FakeWeChatAPI
from tests.helpers import NewDb, free_port
from tests.pushes import TOKEN, fixture, signed_query

ROOT = Path(__file__).resolve().parent.parent


def start_server(
    db: str | Path, port: int, api_base: str, extra_env: dict[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Run ``kefu serve`` in its own process, logging to ``log`` (by default next to its database file)."""
    env = {
        **os.environ,
        "KEFU_DB": str(db),
        "KEFU_PORT": str(port),
        "KEFU_WECHAT_TOKEN": TOKEN,
        "KEFU_WECHAT_APPID": APPID,
        "KEFU_WECHAT_SECRET": SECRET,
        "KEFU_WECHAT_API_BASE": api_base,
        "KEFU_INBAND_DEADLINE": "0",  # every reply goes through the outbox
        "KEFU_LOG_FORMAT": "text",
        **extra_env,
    }
    with open(log or Path(db).with_suffix(".log"), "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=ROOT, env=env, stdout=out, stderr=out)


async def wait_healthy(http: aiohttp.ClientSession, base: str, timeout: float = 120) -> None:
    """Until ``kefu serve`` at ``base`` answers /healthz."""

    async def healthy() -> bool:
        try:
            async with http.get(base + "/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(healthy, timeout)


async def wait_until(predicate: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.mark.rasa
@pytest.mark.model  # kefu serve loads the real embedding model
async def test_sigkill_with_reply_queued_loses_nothing(
    new_db: NewDb, tmp_path: Path, aiohttp_server: Any, server_env: dict[str, str]
) -> None:
    db, log = new_db("crash.db"), tmp_path / "crash.log"
    port = free_port()
    dead_api = f"http://127.0.0.1:{free_port()}"  # nothing listens: delivery fails, the reply stays queued
    proc = start_server(db, port, dead_api, server_env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base)
            async with http.post(base + "/wechat", params=signed_query(int(time.time())), data=fixture("text.xml").encode()) as r:
                assert await r.text() == "success"

            def queued() -> bool:
                check = open_db(db)
                try:
                    return store.pending_outbound_count(check) == 1
                finally:
                    check.close()

            async def is_queued() -> bool:
                return queued()

            await wait_until(is_queued, 60)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

            fake = FakeWeChatAPI(now=time.time())
            fake_srv = await aiohttp_server(fake.app())
            proc = start_server(db, port, str(fake_srv.make_url("")).rstrip("/"), server_env, log)
            await wait_healthy(http, base)

            async def delivered() -> bool:
                return len(fake.sent) == 1

            await wait_until(delivered, 60)  # a row the killed process had leased waits out its 20 s lease
            assert fake.sent[0]["touser"] == "oShopperA"
            # The retry WeChat makes after the restart still gets no second answer.
            async with http.post(base + "/wechat", params=signed_query(int(time.time())), data=fixture("text.xml").encode()) as r:
                assert await r.text() == "success"
            await asyncio.sleep(1.5)
            assert len(fake.sent) == 1
    finally:
        stop_process(proc)


async def test_message_abandoned_mid_processing_is_answered_later(new_db: NewDb, make_runner: Callable[..., DbRunner]) -> None:
    runner = make_runner(open_db(new_db("r.db"), [store.migrations]))
    now = [1000.0]
    woken: list[bool] = []

    async def responder(inbound: Inbound) -> Reply:
        return Reply(f"补发：{inbound.text}")

    # A process stored the message, took its lease, then died before answering.
    await runner.run(
        store.record_inbound,
        dedup_key="msg:1",
        channel="wechat",
        openid="o1",
        kind="text",
        text="在吗",
        payload={},
        now=now[0],
        lease_seconds=60,
    )
    dispatcher = Dispatcher(runner, responder, Metrics(), lambda: now[0], wake_outbox=lambda: woken.append(True))
    assert await dispatcher.recover() == 0  # its lease is still running
    now[0] += 61
    assert await dispatcher.recover() == 1
    assert woken == [True]
    due = await runner.run(claim_due, "outbound", now=now[0], lease_seconds=60)
    assert [(r["openid"], r["text"]) for r in due] == [("o1", "补发：在吗")]
    assert await dispatcher.recover() == 0
