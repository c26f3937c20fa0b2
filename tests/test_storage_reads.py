"""Heavy reads go to the read pool: the dashboard, its downloads and the knowledge base's reloads go
on while the writer is busy (here: held by a write that waits for them)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sqlite_utils
from aiohttp.test_utils import TestClient, make_mocked_request

import server
from console import auth
from console.app import USER
from console.report_views import DASHBOARD, dashboard_view, export_view
from kb.importer import import_dir
from kb.search import KnowledgeBase, refresh_if_changed
from storage.db import DbRunner, open_db
from tests.conftest import DEMO
from tests.fakes import FakeEncoder
from tests.helpers import NewDb
from tests.test_bot_hardening import quick


async def held_writer(runner: DbRunner, release: threading.Event) -> asyncio.Future[bool]:
    """Occupy the writer thread until ``release`` is set; the future says whether it was (or the wait ran out)."""
    holding = threading.Event()

    def hold(db: sqlite_utils.Database) -> bool:
        holding.set()
        # The limit only keeps a broken runner from hanging the suite.
        return release.wait(60)

    held = asyncio.ensure_future(runner.run(hold))
    assert await asyncio.to_thread(holding.wait, 60)
    return held


@pytest.mark.parametrize(
    ("view", "path"),
    [
        (dashboard_view, "/console/dashboard?since=2025-11-01&until=2025-11-30"),
        (export_view, "/console/dashboard/export?format=xlsx"),
    ],
)
async def test_the_dashboard_reads_beside_a_busy_writer(wechat_client: Any, view: Callable[..., Any], path: str) -> None:
    client: TestClient = await wechat_client(quick)
    runner = client.app[DASHBOARD].runner
    request = make_mocked_request("GET", path, app=client.app)
    request[USER] = auth.User("boss", "manager", "csrf-token")  # what the console's login middleware sets
    done = threading.Event()
    held = await held_writer(runner, done)
    response = await view(request)
    done.set()
    assert await held  # the page was ready while the writer was still held
    assert response.status == 200 and response.body


async def test_a_catalogue_reload_reads_beside_a_busy_writer(new_db: NewDb, make_runner: Callable[..., DbRunner]) -> None:
    db = open_db(new_db("kb.db"), server.MIGRATIONS)
    import_dir(db, DEMO)
    runner = make_runner(db)
    embedding = threading.Event()

    class Signalling(FakeEncoder):
        def encode(self, texts: list[str]) -> np.ndarray:
            embedding.set()  # the catalogue has been read: the plan's texts are being embedded
            return super().encode(texts)

    kb = KnowledgeBase(Signalling())
    held = await held_writer(runner, embedding)
    assert await refresh_if_changed(kb, runner)  # its new vectors wait for the writer; everything else does not
    assert await held  # read and embedded while the writer was held
    assert len(kb.products) == 44 and len(kb.faqs) == 82
    assert kb.search("西湖龙井多少钱").hits
    assert (await runner.read(KnowledgeBase(FakeEncoder()).plan)).todo == []  # its vectors went in through the writer
