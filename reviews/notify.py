"""Delivering workflow notifications from their durable outbox through pluggable channels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp

from kb.db import DbRunner
from reviews import store

logger = logging.getLogger(__name__)


class NotifyError(Exception):
    """A channel could not deliver (retried with backoff)."""


class Notifier(Protocol):
    """One way to reach managers and agents (console, WeChat message, WeCom robot)."""

    async def send(self, title: str, body: str, payload: dict[str, Any]) -> None: ...


class WeComRobotNotifier:
    """A WeCom (企业微信) group robot: POST JSON to its webhook URL.

    https://developer.work.weixin.qq.com/document/path/91770
    """

    def __init__(self, session: aiohttp.ClientSession, webhook_url: str, timeout: float = 5.0) -> None:
        self.session = session
        self.url = webhook_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, title: str, body: str, payload: dict[str, Any]) -> None:
        """Post a markdown message; a non-zero errcode is a failure."""
        message = {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n{body}"}}
        try:
            async with self.session.post(self.url, json=message, timeout=self.timeout) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise NotifyError(f"WeCom robot unreachable: {exc!r}") from exc
        if not isinstance(data, dict) or data.get("errcode", 0) != 0:
            raise NotifyError(f"WeCom robot refused: {data}")


def backoff(attempts: int) -> float:
    """2, 4, 8 … seconds, at most 10 minutes."""
    return float(min(600, 2 ** (attempts + 1)))


class NotificationSender:
    """Sends queued notifications through their channel; failures retry with backoff."""

    MAX_ATTEMPTS = 10

    def __init__(self, runner: DbRunner, notifiers: Mapping[str, Notifier], clock: Callable[[], float]) -> None:
        self.runner = runner
        self.notifiers = notifiers
        self.clock = clock
        self.wake = asyncio.Event()

    async def deliver_due(self) -> int:
        """One pass over due notifications."""
        rows = await self.runner.run(store.claim_due_notifications, self.clock(), 60.0)
        for row in rows:
            notifier = self.notifiers.get(row["channel"])
            state, error, retry_at = "sent", None, None
            if notifier is None:
                state, error = "failed", f"channel {row['channel']} is not configured"
            else:
                try:
                    await notifier.send(row["title"], row["body"], store.notification_payload(row))
                except NotifyError as exc:
                    error = str(exc)
                    if row["attempts"] + 1 >= self.MAX_ATTEMPTS:
                        state = "failed"
                    else:
                        state, retry_at = "pending", self.clock() + backoff(row["attempts"])
                    logger.warning("notification %s via %s failed: %s", row["id"], row["channel"], error)
            await self.runner.run(
                store.mark_notification, row["id"], state=state, now=self.clock(), error=error, retry_at=retry_at
            )
        return len(rows)
