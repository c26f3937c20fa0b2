"""Delivering workflow notifications from their durable outbox through pluggable channels."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp

from storage.db import DbRunner
from storage.outbox import FAILED, Delivered, DeliveryError, OutboxWorker, notification_payload

logger = logging.getLogger(__name__)


class NotifyError(DeliveryError):
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


class NotificationSender(OutboxWorker):
    """Sends queued notifications through their channel from the durable ``notifications`` queue."""

    MAX_ATTEMPTS = 10

    def __init__(self, runner: DbRunner, notifiers: Mapping[str, Notifier], clock: Callable[[], float]) -> None:
        super().__init__(runner, "notifications", self._send, clock, max_attempts=self.MAX_ATTEMPTS)
        self.notifiers = notifiers

    async def _send(self, row: dict[str, Any]) -> Delivered:
        notifier = self.notifiers.get(row["channel"])
        if notifier is None:
            return Delivered(FAILED, f"channel {row['channel']} is not configured")
        await notifier.send(row["title"], row["body"], notification_payload(row))
        return Delivered()
