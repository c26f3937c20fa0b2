"""The console's own tables: agents and managers, their sessions, internal notes, canned replies."""

from __future__ import annotations

from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from storage.db import Store

migrations = Migrations("kefu.console")


@migrations()
def m001_console(db: sqlite_utils.Database) -> None:
    # Databases made before this package existed got these tables from the bot's third migration.
    if db.table("users").exists():
        return
    db.table("users").create({"username": str, "password_hash": str, "role": str, "created_at": float}, pk="username")
    db.table("sessions").create(
        {"token_hash": str, "username": str, "csrf": str, "created_at": float, "expires_at": float},
        pk="token_hash",
        foreign_keys=[("username", "users", "username")],
    )
    db.table("notes").create(
        {"id": int, "conversation_id": int, "author": str, "text": str, "at": float},
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db.table("canned_replies").create({"id": int, "title": str, "text": str}, pk="id")
    db.table("canned_replies").insert_all(
        [
            {"title": "问候", "text": "您好，我是人工客服，很高兴为您服务，请问有什么可以帮您？"},
            {"title": "稍等", "text": "好的，我这边帮您核实一下，请稍等片刻～"},
            {"title": "致歉", "text": "非常抱歉给您带来不便，我们马上为您处理。"},
            {"title": "补发", "text": "已为您安排补发，发货后会把运单号发给您，请留意。"},
            {"title": "结束", "text": "还有其他问题随时联系我们，祝您生活愉快！"},
        ]
    )


def notes_of(db: Store, conversation_id: int) -> list[dict[str, Any]]:
    """Internal notes, oldest first."""
    return list(db.table("notes").rows_where("conversation_id = ?", [conversation_id], order_by="at"))


def add_note(db: Store, conversation_id: int, author: str, text: str, now: float) -> None:
    """An internal note the shopper never sees."""
    with db.atomic():
        db.table("notes").insert({"conversation_id": conversation_id, "author": author, "text": text, "at": now})


def canned_replies(db: Store) -> list[dict[str, Any]]:
    """The agents' canned replies, in their order."""
    return list(db.table("canned_replies").rows_where(order_by="id"))
