"""Live updates for the console: every open page holds a WebSocket; events are broadcast to all."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, web

logger = logging.getLogger(__name__)


class LiveHub:
    """The set of open console sockets."""

    def __init__(self) -> None:
        self.sockets: set[web.WebSocketResponse] = set()

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every open page (fire and forget)."""
        if not self.sockets:
            return
        text = json.dumps(event, ensure_ascii=False)
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


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("live update not delivered: %r", task.exception())
