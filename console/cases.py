"""Replying to a negative review's shopper: the case and the message change together."""

from __future__ import annotations

from bot import conversations as conv_store
from bot import store as bot_store
from reviews import store as review_store
from reviews import workflow
from storage.db import Store


def reply_to_case(db: Store, case_id: int, agent: str, text: str, now: float) -> int:
    """Record the response on the case and queue the WeChat message, in one write transaction.

    A case that was resolved meanwhile (CaseError), a closed 48-hour window (CaseError) or a text
    that breaks a compliance rule (ComplianceError) leaves both untouched: nothing is sent.
    """
    with db.atomic():
        case = review_store.get_case(db, case_id)
        if case is None:
            raise workflow.CaseError("没有这个工单")
        workflow.record_response(db, case_id, now, agent, f"微信消息：{text}")
        if not case["openid"] or not conv_store.window_open(db, case["openid"], now):
            raise workflow.CaseError("48小时客服消息窗口已关闭，无法通过微信发送")
        return bot_store.enqueue_text(db, openid=case["openid"], text=text, sender=agent, now=now)
