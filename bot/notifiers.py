"""Notification channels that live on the bot side: the console's live updates and WeChat messages."""

from __future__ import annotations

from typing import Any

from bot.live import LiveHub
from bot.outbox import TransientSendError, WeChatAPI, WeChatAPIError
from reviews.notify import NotifyError


class ConsoleNotifier:
    """A banner on every open console page."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    async def send(self, title: str, body: str, payload: dict[str, Any]) -> None:
        """Broadcast to the console."""
        self.hub.publish({"type": "case" if "case_id" in payload else "notification", "title": title, "body": body, **payload})


class WeChatTemplateNotifier:
    """A WeChat template message to each manager's openid.

    https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Template_Message_Interface.html
    """

    def __init__(self, api: WeChatAPI, template_id: str, openids: list[str]) -> None:
        self.api = api
        self.template_id = template_id
        self.openids = openids

    async def send(self, title: str, body: str, payload: dict[str, Any]) -> None:
        """Send to every manager; any failure makes the whole notification retry."""
        if not self.openids or not self.template_id:
            raise NotifyError("KEFU_MANAGER_OPENIDS and KEFU_WECHAT_TEMPLATE_ID are needed for WeChat notifications")
        for openid in self.openids:
            try:
                await self.api.send_template(openid, self.template_id, {"first": title, "keyword1": body})
            except (WeChatAPIError, TransientSendError) as exc:
                raise NotifyError(f"WeChat template message to {openid}: {exc}") from exc
