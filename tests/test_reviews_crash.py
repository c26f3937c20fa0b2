"""Durable timers: kill -9 the server while deadlines pass; after restart each fires exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest

import server
from storage.db import open_db
from tests.conftest import stop_process
from tests.helpers import free_port
from tests.test_bot_crash import start_server, wait_healthy, wait_until

pytestmark = [pytest.mark.rasa, pytest.mark.model]


def timeline(db_path: str) -> tuple[list[str], list[tuple[str, str]], int]:
    db = open_db(db_path, server.MIGRATIONS)
    try:
        events = [r["kind"] for r in db.table("case_events").rows_where(order_by="id")]
        notes = [
            (r["source"], r["channel"]) for r in db.table("notifications").rows_where("source LIKE 'timer:%'", order_by="id")
        ]
        fired = db.execute("SELECT count(*) FROM case_timers WHERE fired_at IS NOT NULL").fetchone()[0]
        return events, notes, fired
    finally:
        db.close()


async def test_deadlines_passed_while_down_fire_once_after_restart(
    demo_db_path: str, tmp_path: Path, server_env: dict[str, str]
) -> None:
    env = {
        **server_env,
        "KEFU_REVIEWS_TOKEN": "tok",
        "KEFU_SLA_RESPONSE": "4",
        "KEFU_SLA_RESOLUTION": "8",
        "KEFU_INBAND_DEADLINE": "4",
        "KEFU_REPORT_PUSH": "",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = f"http://127.0.0.1:{free_port()}"
    proc = start_server(demo_db_path, port, api, env, tmp_path / "kefu.log")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base)
            review = {
                "review_id": "K1",
                "sku": "TEA-001",
                "openid": "oKill",
                "rating": 1,
                "content": "茶叶发霉了，很失望",
                "created_at": "2026-11-20T10:00:00+08:00",
            }
            async with http.post(base + "/api/reviews", data=json.dumps([review]), headers={"Authorization": "Bearer tok"}) as r:
                assert r.status == 200
                assert len((await r.json())["cases_opened"]) == 1
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await asyncio.sleep(9)  # every deadline passes while nothing runs

            proc = start_server(demo_db_path, port, api, env, tmp_path / "kefu.log")
            await wait_healthy(http, base)

            async def all_fired() -> bool:
                return timeline(demo_db_path)[2] == 4

            await wait_until(all_fired, 30)
            await asyncio.sleep(6)  # another workflow pass: nothing may fire twice
            events, notes, _ = timeline(demo_db_path)
            assert events[0] == "opened"
            assert sorted(events[1:]) == ["breach_resolution", "breach_response", "remind_resolution", "remind_response"]
            assert sorted(notes) == [(f"timer:{i}", "console") for i in range(1, 5)]

            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start_server(demo_db_path, port, api, env, tmp_path / "kefu.log")
            await wait_healthy(http, base)
            await asyncio.sleep(6)
            assert timeline(demo_db_path)[:2] == (events, notes)
    finally:
        stop_process(proc)
