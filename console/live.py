"""Live updates for the console: every open page holds a WebSocket; events are broadcast to all.

On one process the hub hands an event straight to its pages. Replicas sharing a PostgreSQL
database publish through ``LISTEN/NOTIFY`` instead (``PgBus``): each replica listens on one
channel and passes what it hears to its own pages, so an agent's page on replica A sees a message
that replica B received. Live updates are hints (a page reloads what it shows from the database),
so an event lost while a connection is down costs a refresh, never data.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

logger = logging.getLogger(__name__)

CHANNEL = "kefu_console"
NOTIFY_BYTES = 7900  # PostgreSQL refuses a notification payload of 8000 bytes or more
RECONNECT = 2.0  # seconds between attempts to listen again after the connection dropped


class Bus(Protocol):
    """Where events go when more than this process must hear them."""

    def publish(self, text: str) -> None: ...


class LiveHub:
    """The set of open console sockets."""

    def __init__(self) -> None:
        self.sockets: set[web.WebSocketResponse] = set()
        self.bus: Bus | None = None

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every open page of every replica (fire and forget)."""
        if self.bus is None and not self.sockets:
            return  # one process, no page open: nothing to encode
        text = json.dumps(event, ensure_ascii=False)
        if self.bus is not None:
            if len(text.encode()) > NOTIFY_BYTES:  # a long review's text: the page reloads it by its id
                text = json.dumps({k: v for k, v in event.items() if k == "type" or k.endswith("_id")}, ensure_ascii=False)
            self.bus.publish(text)  # heard back by every replica, this one included
        else:
            self.broadcast(text)

    def broadcast(self, text: str) -> None:
        """Send an event's JSON to this process's open pages."""
        for ws in list(self.sockets):
            if ws.closed:
                self.sockets.discard(ws)
                continue
            task = asyncio.ensure_future(ws.send_str(text))
            task.add_done_callback(_log_failure)

    async def close_all(self) -> None:
        """Close every socket on shutdown, so teardown does not wait for aiohttp's timeouts."""
        for ws in list(self.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        self.sockets.clear()


class PgBus:
    """Console events through PostgreSQL ``LISTEN/NOTIFY`` on one channel (``CHANNEL``): one connection
    listens and hands each notification to the hub's pages, another sends, in order. Each connection
    comes back by itself after it dropped."""

    def __init__(self, url: str, hub: LiveHub, channel: str = CHANNEL) -> None:
        self.url = url
        self.hub = hub
        self.channel = channel
        self._sending: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # set while the listening connection is up
        self.listen_pid = 0  # that connection's server process

    async def start(self) -> None:
        """Listen and send in the background; returns once this replica listens (or the first try failed)."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-listen"),
            asyncio.create_task(self._send(), name="live-send"),
        ]
        try:
            await asyncio.wait_for(self.listening.wait(), 10)
        except TimeoutError:
            logger.warning("console live updates: not listening on PostgreSQL yet; retrying in the background")
        self.hub.bus = self

    def publish(self, text: str) -> None:
        self._sending.put_nowait(text)

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    self.listen_pid = conn.info.backend_pid
                    self.listening.set()
                    async for note in conn.notifies():
                        self.hub.broadcast(note.payload)
            except (psycopg.Error, OSError) as exc:
                logger.warning("console live updates: listening connection lost (%s)", exc)
            self.listening.clear()
            await asyncio.sleep(RECONNECT)

    async def _send(self) -> None:
        import psycopg

        text: str | None = None
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    while True:
                        if text is None:
                            text = await self._sending.get()
                        await conn.execute("SELECT pg_notify(%s, %s)", [self.channel, text])
                        text = None
            except (psycopg.Error, OSError) as exc:
                logger.warning("console live updates: sending connection lost (%s)", exc)
            await asyncio.sleep(RECONNECT)

    async def close(self) -> None:
        """Stop listening and sending (events not sent yet are dropped: pages reload on reconnect)."""
        self.hub.bus = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("live update not delivered: %r", task.exception())
