"""The WeChat notification channel: template messages to the managers' openids."""

from __future__ import annotations

from typing import Any

from bot.outbox import TransientSendError, WeChatAPI, WeChatAPIError
from storage.outbox import DeliveryError


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
            raise DeliveryError("KEFU_MANAGER_OPENIDS and KEFU_WECHAT_TEMPLATE_ID are needed for WeChat notifications")
        for openid in self.openids:
            try:
                await self.api.send_template(openid, self.template_id, {"first": title, "keyword1": body})
            except (WeChatAPIError, TransientSendError) as exc:
                raise DeliveryError(f"WeChat template message to {openid}: {exc}") from exc
