"""Delivery of replies through WeChat's customer-service message API, from a durable outbox.

API rules (shared/notes/wechat.md): one shared access_token, refreshed by one process at a
time; 40001/40014/42001 mean refresh and retry once; 45015 (48-hour window closed) and
45047 (quota) are final for the message; anything else transient is retried with backoff.
https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from bot import store
from bot.metrics import Metrics
from storage.db import DbRunner
from storage.outbox import Delivered, DeliveryError, OutboxWorker

logger = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
WINDOW_CLOSED = 45015
QUOTA = 45047
TOKEN_MARGIN = 300.0  # a new token invalidates the old after ~5 minutes: refresh early


class WeChatAPIError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class TransientSendError(Exception):
    """The API could not be reached or answered with a server error."""


class MessageSender(Protocol):
    """Something that can push a text to a shopper (the WeChat API, or a fake in tests)."""

    async def send_text(self, openid: str, text: str) -> None: ...

    async def typing(self, openid: str, on: bool) -> None: ...


class WeChatAPI:
    """The few WeChat API calls kefu makes, over aiohttp, sharing one access_token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        runner: DbRunner,
        *,
        base_url: str,
        appid: str,
        secret: str,
        clock: Callable[[], float],
        timeout: float = 5.0,
    ) -> None:
        self.session = session
        self.runner = runner
        self.base_url = base_url.rstrip("/")
        self.appid = appid
        self.secret = secret
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _request(self, method: str, path: str, *, params: dict[str, str], json: Any = None) -> dict[str, Any]:
        try:
            async with self.session.request(method, self.base_url + path, params=params, json=json, timeout=self.timeout) as resp:
                if resp.status >= 500:
                    raise TransientSendError(f"HTTP {resp.status} from {path}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientSendError(f"{path}: {exc!r}") from exc
        if not isinstance(data, dict):
            raise TransientSendError(f"{path}: unexpected answer")
        errcode = int(data.get("errcode", 0) or 0)
        if errcode:
            raise WeChatAPIError(errcode, str(data.get("errmsg", "")))
        return data

    async def access_token(self) -> str:
        """A valid token: the shared one, or a fresh one if this process wins the refresh."""
        for _ in range(100):
            now = self.clock()
            token = await self.runner.run(store.read_token, self.appid, now, TOKEN_MARGIN)
            if token:
                return token
            if await self.runner.run(store.claim_token_refresh, self.appid, now, 15.0, TOKEN_MARGIN):
                try:
                    data = await self._request(
                        "GET",
                        "/cgi-bin/token",
                        params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
                    )
                except BaseException:
                    await self.runner.run(store.store_token, self.appid, "", 0.0)
                    raise
                token = str(data["access_token"])
                expires = self.clock() + float(data.get("expires_in", 7200))
                await self.runner.run(store.store_token, self.appid, token, expires)
                return token
            await asyncio.sleep(0.1)  # another process is refreshing: wait for its token
        raise TransientSendError("no access_token after waiting for another refresher")

    async def _call(self, path: str, payload: dict[str, Any]) -> None:
        token = await self.access_token()
        try:
            await self._request("POST", path, params={"access_token": token}, json=payload)
        except WeChatAPIError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            logger.info("access_token rejected (%s), refreshing once", exc.errcode)
            await self.runner.run(store.forget_token, self.appid, token)
            token = await self.access_token()
            await self._request("POST", path, params={"access_token": token}, json=payload)

    async def send_text(self, openid: str, text: str) -> None:
        """Send a customer-service text message."""
        await self._call("/cgi-bin/message/custom/send", {"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def send_template(self, openid: str, template_id: str, fields: dict[str, str]) -> None:
        """Send a template message (notifications to managers)."""
        data = {key: {"value": value} for key, value in fields.items()}
        await self._call("/cgi-bin/message/template/send", {"touser": openid, "template_id": template_id, "data": data})

    async def typing(self, openid: str, on: bool) -> None:
        """Show or hide "typing…" to the shopper (only within 30 s of their message)."""
        await self._call("/cgi-bin/message/custom/typing", {"touser": openid, "command": "Typing" if on else "CancelTyping"})


class Outbox(OutboxWorker):
    """Delivers queued texts to shoppers from the durable ``outbound`` queue."""

    MAX_ATTEMPTS = 12

    def __init__(self, runner: DbRunner, sender: MessageSender, metrics: Metrics, clock: Callable[[], float]) -> None:
        super().__init__(runner, "outbound", self._send, clock, max_attempts=self.MAX_ATTEMPTS)
        self.sender = sender
        self.metrics = metrics

    async def _send(self, row: dict[str, Any]) -> Delivered:
        try:
            await self.sender.send_text(row["openid"], row["text"])
        except WeChatAPIError as exc:
            error = f"{exc.errcode} {exc.errmsg}"
            state = {WINDOW_CLOSED: store.WINDOW_CLOSED, QUOTA: store.QUOTA}.get(exc.errcode, store.FAILED)
            logger.warning("outbound %s to %s not delivered: %s", row["id"], row["openid"], error)
            self.metrics.errors.labels(kind=f"wechat_{exc.errcode}").inc()
            return Delivered(state, error)
        except TransientSendError as exc:
            self.metrics.errors.labels(kind="wechat_transient").inc()
            raise DeliveryError(str(exc)) from exc
        self.metrics.replies_out.labels(via="api").inc()
        return Delivered()
