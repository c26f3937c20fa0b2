"""Console live updates across replicas: an event published on one reaches the pages of every one."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from console.live import NOTIFY_BYTES, LiveHub, PgBus

URL = os.environ.get("KEFU_TEST_DB", "")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not URL.startswith("postgresql://"), reason="PostgreSQL only: make test-postgres"),
]


class Page:
    """A console page's socket: what it was sent."""

    closed = False

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    async def send_str(self, text: str) -> None:
        self.got.append(json.loads(text))


async def until(predicate: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not reached in time")


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[tuple[LiveHub, PgBus, Page], tuple[LiveHub, PgBus, Page]]]:
    """Two replicas' hubs on one database and one channel (its own, so other tests do not hear it)."""
    channel = f"kefu_test_{uuid.uuid4().hex[:12]}"
    made = []
    for _ in range(2):
        hub, page = LiveHub(), Page()
        hub.sockets.add(page)  # type: ignore[arg-type]
        bus = PgBus(URL, hub, channel)
        await bus.start()
        made.append((hub, bus, page))
    yield made[0], made[1]
    for _, bus, _ in made:
        await bus.close()


async def test_an_event_on_one_replica_reaches_every_replicas_pages_in_order(replicas: Any) -> None:
    (hub_a, _, page_a), (_, _, page_b) = replicas
    for n in range(5):
        hub_a.publish({"type": "message", "conversation_id": n})
    await until(lambda: len(page_b.got) == 5 and len(page_a.got) == 5)
    assert [e["conversation_id"] for e in page_b.got] == [0, 1, 2, 3, 4]
    assert page_a.got == page_b.got


async def test_a_replica_that_lost_its_connection_listens_again(replicas: Any) -> None:
    import psycopg

    (hub_a, _, _), (_, bus_b, page_b) = replicas
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as admin:
        cursor = await admin.execute("SELECT pg_terminate_backend(%s)", [bus_b.listen_pid])
        assert (await cursor.fetchone()) == (True,)
    await until(lambda: not bus_b.listening.is_set())
    await until(bus_b.listening.is_set)
    hub_a.publish({"type": "queue", "conversation_id": 7})
    await until(lambda: any(e.get("conversation_id") == 7 for e in page_b.got))


async def test_an_event_too_long_for_a_notification_goes_by_its_ids(replicas: Any) -> None:
    (hub_a, _, _), (_, _, page_b) = replicas
    hub_a.publish({"type": "case", "case_id": 12, "body": "差评" * NOTIFY_BYTES})
    await until(lambda: len(page_b.got) == 1)
    assert page_b.got == [{"type": "case", "case_id": 12}]
